"""SageMaker serving entry point: the inference toolkit (or dogbreed's local server) calls these.

Thin wrappers over `dogbreed.serving.handler`. model_fn runs once; input_fn then decodes
*and* preprocesses with the loaded model's eval preset, so that this work happens in the
request's own thread and only the forward pass waits for the model (the local server
batches tensors from concurrent requests). Nothing is ever fetched from a URL.
"""

from dogbreed.serving import handler

_loaded = None  # the model model_fn loaded; its preset preprocesses in input_fn


def model_fn(model_dir):
    global _loaded
    _loaded = handler.model_fn(model_dir)
    print(f"dogbreed model loaded: {_loaded.describe()}", flush=True)
    return _loaded


def input_fn(request_body, content_type):
    return handler.input_fn(request_body, content_type, transform=_loaded.transform if _loaded else None)


def predict_fn(data, model):
    return {"logits": handler.predict_fn(data, model), "breeds": model.breeds}


def output_fn(prediction, accept):
    return handler.output_fn(prediction["logits"], accept, prediction["breeds"])
