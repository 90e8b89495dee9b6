"""One forward pass per TorchServe batch on a SageMaker endpoint, each request answered on its own.

With TorchServe batching on (SAGEMAKER_TS_BATCH_SIZE > 1), the PyTorch inference container hands
the handler a list of requests. AWS's sagemaker-inference 1.10.1 `Transformer.transform` then runs
the handler functions once per request (no batched forward) and, worse for a mixed batch, reads
every request's Content-Type and Accept from the first request's headers, UTF-8-decodes every
body when the first one is JSON, and answers the whole batch with one 500 (which TorchServe turns
into a 503 for every request) as soon as one request fails.

`answer_batch` decodes each request with its own headers, runs the model once on the images of all
the good ones, and gives every request its own status and body: the same JSON and the same 4xx as
the local server. `dogbreed.serving.torchserve_handler` is the TorchServe handler that calls it
(deploy names that handler in TS_DEFAULT_SERVICE_HANDLER, so the toolkit's loop is not used).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus

from dogbreed.serving import handler
from dogbreed.serving.errors import ModelLoadError, RequestError


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = handler.JSON_TYPE


def header(headers: dict, name: str) -> str | None:
    """A request header, case-insensitively (TorchServe passes the names as the client sent them)."""
    name = name.lower()
    return next((v for k, v in headers.items() if isinstance(v, str) and k.lower() == name), None)


def answer_batch(loaded, bodies: list, headers: list[dict]) -> list[Answer]:
    """Answers for requests (body, headers): one forward over every image of the decodable ones.
    The requests decode in parallel (PIL and numpy release the GIL), between forward passes."""
    import torch

    def decode(i: int):
        try:
            return handler.input_fn(bodies[i] if bodies[i] is not None else b"",
                                    header(headers[i], "content-type"), transform=loaded.transform)
        except RequestError as exc:
            return refusal(exc)

    indices = range(len(bodies))
    decoded = list(decoding_pool().map(decode, indices) if len(bodies) > 1 else map(decode, indices))
    answers: list[Answer | None] = [x if isinstance(x, Answer) else None for x in decoded]
    inputs = {i: x for i, x in enumerate(decoded) if not isinstance(x, Answer)}
    if inputs:
        logits = handler.predict_fn(torch.cat(list(inputs.values())), loaded)
        for i, part in zip(inputs, logits.split([x.shape[0] for x in inputs.values()])):
            try:
                body, ctype = handler.output_fn(part, header(headers[i], "accept"), loaded.breeds)
                answers[i] = Answer(200, body, ctype)
            except RequestError as exc:
                answers[i] = refusal(exc)
    return answers


@functools.cache
def decoding_pool():
    """One thread per core the worker's forward pass uses (its torch threads)."""
    import torch

    return ThreadPoolExecutor(torch.get_num_threads(), thread_name_prefix="decode")


def refusal(exc: RequestError) -> Answer:
    return Answer(exc.status_code, exc.document())


def answer_through(context, answers: list[Answer]) -> list[str]:
    """Set each request's status and content type on TorchServe's context; return the bodies."""
    for i, a in enumerate(answers):
        if a.status != 200:
            context.set_response_status(code=a.status, phrase=HTTPStatus(a.status).phrase, idx=i)
        context.set_response_content_type(i, a.content_type)
    return [a.body for a in answers]


def warm_up(loaded) -> None:
    """One prediction through the serving path at load, so a broken model fails there (loudly, before
    the worker takes traffic) and the first request does not pay for the first forward."""
    handler.output_fn(handler.predict_fn(handler.probe_batch(loaded.config.image_size)[:1], loaded),
                      None, loaded.breeds)


def load(model_dir):
    """The model in `model_dir`, checked by one prediction; ModelLoadError in one line naming the fix."""
    try:
        loaded = handler.model_fn(model_dir)
        warm_up(loaded)
    except Exception as exc:
        raise ModelLoadError(f"the model in {model_dir} cannot serve ({type(exc).__name__}: {exc}): "
                             "deploy a model.tar.gz written by `dogbreed train`") from exc
    print(f"dogbreed model loaded: {loaded.describe()}", flush=True)
    return loaded
