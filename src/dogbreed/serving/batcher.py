"""Dynamic batching on one model thread.

Each request decodes and preprocesses in its own thread (input_fn), off the model's critical
path, then `submit`s its tensor. The model thread concatenates the tensors of concurrent
requests along dim 0 (up to `max_batch_size` rows), calls predict once and hands each request
its slice of the prediction. It waits for more rows (up to `max_wait_ms`) only while other
requests are on their way (an `Arrival`, taken by the HTTP server once a POST's headers are
in, before its body is read), so a lone client never pays the wait. Clients answered by one
model call come back together; a batch that starts before the slower of them have decoded
splits them into two half batches that keep alternating, each decoding next to the other's
forward pass. So the default wait (limits.DEFAULT_MAX_WAIT_MS) covers decoding a batch of
photo-sized requests on 2 cores. Work that must run alone on the model thread (loading the
model, transform_fn) goes through `submit_call`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from dogbreed.serving.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS


@dataclass
class Pending:
    """One queued request; the model thread fills `result` or `error`, then sets `done`."""

    data: Any
    rows: int | None  # None: not batchable, predict alone
    call: Callable[[], Any] | None = None  # run this on the model thread instead of predict
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    batch_rows: int = 0


class Arrival:
    """A request counted as on its way to the model until its rows are queued or it ends."""

    __slots__ = ("open",)

    def __init__(self):
        self.open = True


def split_prediction(pred, sizes: list[int]) -> list:
    """Cut a batched prediction back into per-request parts along dim 0."""
    import torch

    total = sum(sizes)
    if isinstance(pred, torch.Tensor):
        return list(pred.split(sizes))
    if isinstance(pred, dict):
        parts = [dict() for _ in sizes]
        for key, value in pred.items():
            pieces = split_prediction(value, sizes) if _has_rows(value, total) else [value] * len(sizes)
            for part, piece in zip(parts, pieces):
                part[key] = piece
        return parts
    if isinstance(pred, (list, tuple)) and len(pred) == total:
        out, start = [], 0
        for n in sizes:
            out.append(pred[start:start + n])
            start += n
        return out
    raise TypeError(f"cannot split a {type(pred).__name__} prediction into per-request parts")


def _has_rows(value, total: int) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == total


class Batcher:
    """One model thread; request threads `submit` and wait. Tensor inputs are batched together."""

    def __init__(self, predict, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 max_wait_ms: float = DEFAULT_MAX_WAIT_MS):
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._queue: deque[Pending] = deque()
        self._cond = threading.Condition()
        self._decoding = 0  # open Arrivals: more rows may be on their way
        self._stopping = False
        self._forwarding = False
        # a CPU forward on every core: decode between forward passes, not next to them (see wait_for_gap)
        self.decode_between_forwards = False
        self._thread = threading.Thread(target=self._run, name="model", daemon=True)
        self.batches = 0

    def start(self) -> "Batcher":
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def arrive(self) -> Arrival:
        """Count a request as on its way: a batch being formed waits for it (up to max_wait)."""
        with self._cond:
            self._decoding += 1
        return Arrival()

    def leave(self, arrival: Arrival | None) -> None:
        """The request ends without (more) rows for the model; no-op once its rows are queued."""
        if arrival is not None and arrival.open:
            with self._cond:
                self._close(arrival)
                self._cond.notify_all()

    def _close(self, arrival: Arrival | None) -> None:
        if arrival is not None and arrival.open:
            arrival.open = False
            self._decoding -= 1

    def wait_for_gap(self) -> None:
        """With `decode_between_forwards`, block until no forward pass is running. On a CPU whose
        cores all run the forward's OpenMP team, a decode thread beside it pre-empts one team
        thread and the others spin at the next barrier: decoding then costs the forward far more
        than its own CPU time. Requests decode together in the gap and ride the next batch."""
        if self.decode_between_forwards:
            with self._cond:
                while self._forwarding and not self._stopping:
                    self._cond.wait()

    def submit(self, data, *, arrival: Arrival | None = None) -> Pending:
        """Queue `data`; its `arrival` ends in the same step, so the model thread never sees
        "nothing on its way" while the rows are not yet queued."""
        import torch

        rows = int(data.shape[0]) if isinstance(data, torch.Tensor) and data.dim() > 0 else None
        return self._enqueue(Pending(data, rows), arrival)

    def submit_call(self, fn: Callable[[], Any]) -> Pending:
        """Queue `fn` to run alone on the model thread (loading the model, transform_fn)."""
        return self._enqueue(Pending(None, None, fn))

    def _enqueue(self, item: Pending, arrival: Arrival | None = None) -> Pending:
        with self._cond:
            self._close(arrival)
            if self._stopping:
                self._cond.notify_all()
                raise RuntimeError("the server is shutting down")
            self._queue.append(item)
            self._cond.notify_all()
        return item

    def _take_batch(self) -> list[Pending]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return []
            first = self._queue.popleft()
            if first.rows is None:
                return [first]
            batch, rows = [first], first.rows
            deadline = time.monotonic() + self.max_wait
            while rows < self.max_batch_size:
                if self._queue:
                    nxt = self._queue[0]
                    if nxt.rows is None or rows + nxt.rows > self.max_batch_size:
                        break
                    batch.append(self._queue.popleft())
                    rows += nxt.rows
                    continue
                left = deadline - time.monotonic()
                if self._decoding == 0 or left <= 0 or self._stopping:
                    break
                self._cond.wait(left)
            return batch

    def _run(self) -> None:
        import torch

        while True:
            batch = self._take_batch()
            if not batch:
                return
            with self._cond:
                self._forwarding = True
            try:
                if batch[0].call is not None:
                    results = [batch[0].call()]
                elif batch[0].rows is None:
                    results = [self.predict(batch[0].data)]
                else:
                    data = batch[0].data if len(batch) == 1 else torch.cat([p.data for p in batch])
                    results = split_prediction(self.predict(data), [p.rows for p in batch])
                for p, r in zip(batch, results):
                    p.result = r
            except BaseException as exc:  # one bad batch fails its requests, never the thread
                for p in batch:
                    p.error = exc
            with self._cond:
                self._forwarding = False
                self._cond.notify_all()
            self.batches += 1
            rows = sum(p.rows or 1 for p in batch)
            for p in batch:
                p.batch_rows = rows
                p.done.set()
