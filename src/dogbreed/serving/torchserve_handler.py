"""TorchServe's handler for a dogbreed SageMaker endpoint: `deploy` names it in the container's
environment (TS_DEFAULT_SERVICE_HANDLER, which TorchServe reads over the `default_service_handler`
the inference toolkit writes into its config), so each TorchServe batch is one forward pass with
every request answered on its own status (`dogbreed.serving.batched`) instead of going through the
toolkit's per-request loop. The container finds this module in /opt/ml/model/code (the source dir
deploy ships holds the torch-only part of the dogbreed package; the toolkit puts that folder on
PYTHONPATH). Without that variable the toolkit's own handler runs scripts/inference.py.
"""

from __future__ import annotations

from dogbreed.serving import batched, handler

_loaded = None  # the model, loaded once per worker


def handle(data, context):
    """TorchServe calls this first with data None when the worker starts (load the model, or fail
    loudly), then with each batch: a list of {"body": bytes} with the headers on `context`."""
    global _loaded
    if _loaded is None:
        _loaded = batched.load(context.system_properties.get("model_dir"))
        size = int(context.system_properties.get("batch_size") or 1)
        handler.warm_up_batches(_loaded, range(1, size + 1))
        print("dogbreed TorchServe handler: " + (f"one forward per batch of up to {size} requests" if size > 1
                                                 else "one request per forward (TorchServe batching off)"), flush=True)
    if data is None:
        return None
    headers = [rp.get_request_properties() for rp in context.request_processor]
    return batched.answer_through(context, batched.answer_batch(_loaded, [d.get("body") for d in data], headers))
