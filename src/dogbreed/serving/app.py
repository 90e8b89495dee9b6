"""The model server's application, independent of HTTP: the user's handler functions behind
one model thread.

`model_fn` runs once; then per request `input_fn` (in the request's thread) -> `predict_fn`
(on the model thread, batched) -> `output_fn` (in the request's thread), or `transform_fn`.

One thread for the model: model_fn, predict_fn and transform_fn all run on the model thread,
so the process keeps a single OpenMP thread team. (A second team, e.g. from loading the model
on the main thread, pushes libgomp over its thread budget on a small machine; it then stops
spin-waiting between parallel regions: ~14 ms more per ResNet50 forward on 2 cores.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dogbreed.serving import handler
from dogbreed.serving.batcher import Arrival, Batcher, Pending
from dogbreed.serving.budget import TRIM_AFTER_BYTES, DecodeBudget, decode_cost, give_back_freed_memory
from dogbreed.serving.errors import HttpError, ModelLoadError
from dogbreed.serving.inference_module import InferenceModule
from dogbreed.serving.limits import DECODE_BUDGET_BYTES, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS, MAX_BODY_BYTES
from dogbreed.training.device import forward_fills_the_cpu

REQUEST_TIMEOUT_S = float(os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))


class ModelServer:
    """The loaded model behind its batcher; `invoke` answers one request, from any thread."""

    def __init__(self, model_dir: str | Path, *, entry_point: str | Path | None = None,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
                 max_body_bytes: int = MAX_BODY_BYTES, decode_budget_bytes: int = DECODE_BUDGET_BYTES):
        self.model_dir = Path(model_dir)
        self.budget = DecodeBudget(decode_budget_bytes)
        program = os.environ.get("SAGEMAKER_PROGRAM", "inference.py")
        self.module = InferenceModule(entry_point or self.model_dir / "code" / program)
        self.max_body_bytes = max_body_bytes
        self.batcher = Batcher(lambda data: self.module.predict_fn(data, self.model),
                               max_batch_size=max_batch_size, max_wait_ms=max_wait_ms).start()
        started = time.time()
        load = self.batcher.submit_call(lambda: self.module.model_fn(str(self.model_dir)))
        load.done.wait()
        if load.error is not None:
            self.batcher.stop()
            exc = load.error
            raise ModelLoadError(f"model_fn({self.model_dir}) failed: {type(exc).__name__}: {exc}") from exc
        self.model = load.result
        # the fused forward optimises itself per batch size: before the first request, not during it
        warm = self.batcher.submit_call(lambda: handler.warm_up_batches(self.model, range(1, max_batch_size + 1)))
        warm.done.wait()
        if warm.error is not None:
            self.batcher.stop()
            exc = warm.error
            raise ModelLoadError(f"the model in {self.model_dir} loaded but cannot predict: "
                                 f"{type(exc).__name__}: {exc}") from exc
        self.batcher.decode_between_forwards = forward_fills_the_cpu("cuda" if _cuda_available() else "cpu")
        self.load_seconds = time.time() - started

    def healthy(self) -> bool:
        return self.batcher.alive()

    def arriving(self) -> Arrival:
        """Count a request as on its way to the model from its headers (see batcher.py); pass
        it to `invoke`, and to `left` when the request ends."""
        return self.batcher.arrive()

    def left(self, arrival: Arrival | None) -> None:
        self.batcher.leave(arrival)

    def invoke(self, body: bytes, content_type: str, accept: str,
               arrival: Arrival | None = None) -> tuple[bytes, str, int]:
        """input_fn (this thread) -> predict_fn (model thread, batched) -> output_fn (this thread)."""
        own = arrival is None
        arrival = arrival or self.arriving()
        try:
            return self._invoke(body, content_type, accept, arrival)
        finally:
            if own:
                self.left(arrival)

    def _invoke(self, body, content_type: str, accept: str, arrival: Arrival) -> tuple[bytes, str, int]:
        if not self.batcher.alive():
            raise HttpError(503, "the model worker is not running: redeploy the endpoint")
        cost = decode_cost(body, content_type)
        try:
            return self._answer(body, content_type, accept, arrival, cost)
        finally:
            if cost >= TRIM_AFTER_BYTES:
                give_back_freed_memory()

    def _answer(self, body, content_type: str, accept: str, arrival: Arrival, cost: int) -> tuple[bytes, str, int]:
        m = self.module
        with self.budget.admit(cost):
            if m.transform_fn:
                self.left(arrival)  # runs alone on the model thread: no batch waits for it
                job = self.batcher.submit_call(lambda: m.transform_fn(self.model, body, content_type, accept))
                out = self._wait(job)
                return _encode(out, accept) + (job.batch_rows,)
            self.batcher.wait_for_gap()
            try:
                data = m.input_fn(body, content_type)
            except RecursionError:  # e.g. JSON nested thousands deep: the client's mistake
                self.left(arrival)
                raise HttpError(400, "the request body is nested too deeply to decode") from None
            except BaseException:
                self.left(arrival)  # no rows are coming: a batch must not wait for this request
                raise
        job = self.batcher.submit(data, arrival=arrival)
        prediction = self._wait(job)
        return _encode(m.output_fn(prediction, accept), accept) + (job.batch_rows,)

    def _wait(self, job: Pending):
        if not job.done.wait(REQUEST_TIMEOUT_S):
            raise HttpError(504, f"the model did not answer within {REQUEST_TIMEOUT_S:.0f} s")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        self.batcher.stop()


def _encode(out, accept: str) -> tuple[bytes, str]:
    body, ctype = out if isinstance(out, tuple) else (out, accept)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return bytes(body), ctype


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
