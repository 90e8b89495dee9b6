"""SageMaker serving entry point: the inference toolkit (or dogbreed's local server) calls these.

Thin wrappers over `dogbreed.serving.handler`. model_fn runs once; input_fn then decodes
*and* preprocesses with the loaded model's eval preset, so that this work happens in the
request's own thread and only the forward pass waits for the model (the local server
batches tensors from concurrent requests). Nothing is ever fetched from a URL.

The trailing `context` is passed only by AWS's inference toolkit (it calls a handler with one
more argument when the signature has room for it): there a bad request is answered with its
4xx status and JSON body through the context (`handler.Refused`), never the toolkit's 500 with
a traceback. The local server calls without it and answers the raised RequestError itself.

Under the toolkit, model_fn also makes each TorchServe batch one forward pass with every request
answered on its own (`dogbreed.serving.batched`: the toolkit's own loop cannot), and it fails at
load, with one line saying why, when the model cannot serve a prediction.
"""

from dogbreed.serving import handler
from dogbreed.serving.errors import ModelLoadError, RequestError

_loaded = None  # the model model_fn loaded; its preset preprocesses in input_fn


def model_fn(model_dir, context=None):
    global _loaded
    from dogbreed.serving import batched

    try:
        _loaded = handler.model_fn(model_dir)
        batched.warm_up(_loaded)
    except Exception as exc:
        raise ModelLoadError(f"the model in {model_dir} cannot serve ({type(exc).__name__}: {exc}): "
                             "deploy a model.tar.gz written by `dogbreed train`") from exc
    if context is not None:
        batched.take_over_toolkit_batches()
    print(f"dogbreed model loaded: {_loaded.describe()}", flush=True)
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
