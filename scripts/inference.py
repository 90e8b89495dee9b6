"""SageMaker serving entry point: the inference toolkit (or the local server) calls these.

Thin wrappers over `dogbreed.serving.handler`; the model is loaded once by model_fn.
It never fetches URLs from a request body.
"""

from dogbreed.serving import handler


def model_fn(model_dir):
    return handler.model_fn(model_dir)


def input_fn(request_body, content_type):
    return handler.input_fn(request_body, content_type)


def predict_fn(data, model):
    return {"logits": handler.predict_fn(data, model), "breeds": model.breeds}


def output_fn(prediction, accept):
    return handler.output_fn(prediction["logits"], accept, prediction["breeds"])
