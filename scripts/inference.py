"""SageMaker serving entry point: the inference toolkit (or dogbreed's local server) calls these.

Thin wrappers over `dogbreed.serving.handler`. model_fn runs once; input_fn then decodes
*and* preprocesses with the loaded model's eval preset, so that this work happens in the
request's own thread and only the forward pass waits for the model (the local server
batches tensors from concurrent requests). Nothing is ever fetched from a URL.

The trailing `context` is passed only by AWS's inference toolkit (it calls a handler with one
more argument when the signature has room for it): there a bad request is answered with its
4xx status and JSON body through the context (`handler.Refused`), never the toolkit's 500 with
a traceback. The local server calls without it and answers the raised RequestError itself.

model_fn fails at load, with one line saying why, when the model cannot serve a prediction.
(An endpoint `deploy` configures with TorchServe batching does not come here: TorchServe calls
`dogbreed.serving.torchserve_handler`, which answers a whole batch in one forward pass.)
"""

from dogbreed.serving import handler
from dogbreed.serving.errors import RequestError

_loaded = None  # the model model_fn loaded; its preset preprocesses in input_fn


def model_fn(model_dir, context=None):
    global _loaded
    from dogbreed.serving import batched

    _loaded = batched.load(model_dir)
    return _loaded


def input_fn(request_body, content_type, context=None):
    try:
        return handler.input_fn(request_body, content_type, transform=_loaded.transform if _loaded else None)
    except RequestError as exc:
        if context is None:
            raise
        return handler.Refused(exc)


def predict_fn(data, model, context=None):
    if isinstance(data, handler.Refused):
        return data
    return {"logits": handler.predict_fn(data, model), "breeds": model.breeds}


def output_fn(prediction, accept, context=None):
    if isinstance(prediction, handler.Refused):
        return prediction.answer(context)
    try:
        return handler.output_fn(prediction["logits"], accept, prediction["breeds"])
    except RequestError as exc:
        if context is None:
            raise
        return handler.Refused(exc).answer(context)
