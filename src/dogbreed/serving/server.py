"""A SageMaker-compatible model server: `GET /ping`, `POST /invocations` on 127.0.0.1:8080.

    python -m dogbreed.serving.server MODEL_DIR [--port 8080] [--max-batch-size 16] [--max-wait-ms 5]

It loads the inference module the way the inference toolkit does (`MODEL_DIR/code/inference.py`
or `--entry-point`; `model_fn` once, then per request `input_fn -> predict_fn -> output_fn`, or
`transform_fn`) and adds what a CPU endpoint needs to be fast and hard to break:

- Dynamic batching. Each request decodes and preprocesses in its own thread (input_fn), off the
  model's critical path. When input_fn returns a torch.Tensor, one model thread concatenates the
  tensors of concurrent requests along dim 0 (up to --max-batch-size rows), calls predict_fn once
  and hands each request its slice of the prediction. It waits for more rows (up to --max-wait-ms)
  only while other requests are still decoding, so a lone client never pays the wait.
- One thread for the model: model_fn, predict_fn and transform_fn all run on the model thread,
  so the process keeps a single OpenMP thread team. (A second team, e.g. from loading the model
  on the main thread, pushes libgomp over its thread budget on a small machine; it then stops
  spin-waiting between parallel regions: ~14 ms more per ResNet50 forward on 2 cores.)
- Every error answers JSON `{"error": ...}`: the exception's `status_code` when it has one (the
  toolkit's rule), 413 over the body limit, 500 otherwise; the server keeps serving.
- `/ping` answers 200 only while the model thread is alive.
- SIGTERM/SIGINT shut down cleanly (listening socket closed, exit 0).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from dogbreed.serving.errors import ModelLoadError

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit (6 MB)
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # oversized bodies up to this are read and dropped before the 413
DEFAULT_ACCEPT = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
REQUEST_TIMEOUT_S = float(os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))
TEXT_TYPES = ("application/json", "text/csv", "text/plain")  # reach input_fn as str, as in the toolkit
HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


# -- the user module -----------------------------------------------------------------------------
class InferenceModule:
    """The entry point's handler functions, validated like the toolkit's Transformer."""

    def __init__(self, entry_point: str | Path):
        path = Path(entry_point)
        if not path.is_file():
            raise ModelLoadError(f"inference entry point {path} does not exist")
        sys.path.insert(0, str(path.parent))  # the toolkit puts code/ on PYTHONPATH
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        fns = {n: getattr(module, n, None) for n in HANDLER_NAMES}
        self.path = path
        self.model_fn = fns["model_fn"]
        self.transform_fn = fns["transform_fn"]
        self.input_fn, self.predict_fn, self.output_fn = fns["input_fn"], fns["predict_fn"], fns["output_fn"]
        trio = [n for n in ("input_fn", "predict_fn", "output_fn") if fns[n]]
        if self.model_fn is None:
            raise ModelLoadError(f"{path} defines no model_fn(model_dir): implement it to load the model")
        if self.transform_fn and trio:
            raise ModelLoadError(f"{path} defines transform_fn and {', '.join(trio)}: use one or the other")
        if not self.transform_fn and len(trio) < 3:
            missing = sorted({"input_fn", "predict_fn", "output_fn"} - set(trio))
            raise ModelLoadError(f"{path} lacks {', '.join(missing)}: implement them (or transform_fn)")


# -- batching ------------------------------------------------------------------------------------
@dataclass
class Pending:
    data: Any
    rows: int | None  # None: not batchable, predict alone
    call: Callable[[], Any] | None = None  # run this on the model thread instead of predict
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    batch_rows: int = 0


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

    def __init__(self, predict, *, max_batch_size: int = 16, max_wait_ms: float = 5.0):
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._queue: deque[Pending] = deque()
        self._cond = threading.Condition()
        self._decoding = 0  # requests inside input_fn: more rows may be on their way
        self._stopping = False
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

    def decoding(self, delta: int) -> None:
        with self._cond:
            self._decoding += delta
            self._cond.notify_all()

    def submit(self, data, *, was_decoding: bool = False) -> Pending:
        """Queue `data`; `was_decoding` ends this request's `decoding(+1)` in the same step, so
        the model thread never sees "nothing decoding" while the rows are not yet queued."""
        import torch

        rows = int(data.shape[0]) if isinstance(data, torch.Tensor) and data.dim() > 0 else None
        return self._enqueue(Pending(data, rows), was_decoding)

    def submit_call(self, fn: Callable[[], Any]) -> Pending:
        """Queue `fn` to run alone on the model thread (loading the model, transform_fn)."""
        return self._enqueue(Pending(None, None, fn))

    def _enqueue(self, item: Pending, was_decoding: bool = False) -> Pending:
        with self._cond:
            if was_decoding:
                self._decoding -= 1
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
            self.batches += 1
            rows = sum(p.rows or 1 for p in batch)
            for p in batch:
                p.batch_rows = rows
                p.done.set()


# -- the application -----------------------------------------------------------------------------
class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelServer:
    def __init__(self, model_dir: str | Path, *, entry_point: str | Path | None = None,
                 max_batch_size: int = 16, max_wait_ms: float = 5.0, max_body_bytes: int = MAX_BODY_BYTES):
        self.model_dir = Path(model_dir)
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
        self.load_seconds = time.time() - started

    def healthy(self) -> bool:
        return self.batcher.alive()

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str, int]:
        """input_fn (this thread) -> predict_fn (model thread, batched) -> output_fn (this thread)."""
        m = self.module
        if not self.batcher.alive():
            raise HttpError(503, "the model worker is not running: redeploy the endpoint")
        if m.transform_fn:
            job = self.batcher.submit_call(lambda: m.transform_fn(self.model, body, content_type, accept))
            out = self._wait(job)
            return _encode(out, accept) + (job.batch_rows,)
        self.batcher.decoding(+1)
        try:
            data = m.input_fn(body, content_type)
        except BaseException:
            self.batcher.decoding(-1)
            raise
        job = self.batcher.submit(data, was_decoding=True)
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


def _error_status(exc: BaseException) -> int:
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection
    server_version = "dogbreed-model-server"
    timeout = REQUEST_TIMEOUT_S  # a client that stalls mid-body (or idles) cannot hold a thread forever
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    app: ModelServer  # set on the subclass made by make_http_server

    def log_message(self, fmt, *args):  # one line per error only; access logs would cost CPU
        pass

    def _send_json(self, status: int, doc: dict, extra: dict | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", extra)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            return self._send(200, prediction_page(), "text/html; charset=utf-8")
        if path != "/ping":
            return self._send_json(404, {"error": f"no such path {self.path}: use GET /ping or POST /invocations"})
        if self.app.healthy():
            return self._send_json(200, {"status": "healthy"})
        return self._send_json(503, {"status": "unhealthy", "error": "the model worker is not running"})

    def do_POST(self):
        if self.path.split("?")[0] != "/invocations":
            self._discard_body()
            return self._send_json(404, {"error": f"no such path {self.path}: use POST /invocations"})
        try:
            body = self._read_body()
            ctype = self.headers.get("Content-Type", "")
            accept = self.headers.get("Accept") or DEFAULT_ACCEPT
            if accept.strip() in ("*/*", ""):
                accept = DEFAULT_ACCEPT
            if ctype.split(";")[0].strip().lower() in TEXT_TYPES:
                try:
                    body = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise HttpError(400, f"the {ctype} body is not UTF-8 text") from None
            out, out_type, rows = self.app.invoke(body, ctype, accept)
            self._send(200, out, out_type, {"X-Batch-Size": rows})
        except Exception as exc:
            status = _error_status(exc)
            if status >= 500:
                print(f"invocation failed ({status}):\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                message = f"internal error: {type(exc).__name__}: {exc}"
            else:
                message = str(exc)
            self._send_json(status, {"error": message, "status": status})

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HttpError(411, "chunked bodies are not accepted: send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise HttpError(411, "a Content-Length header is required")
        n = int(length)
        if n > self.app.max_body_bytes:
            # Drain (without keeping) a moderately oversized body so that the client, still
            # sending, gets to read the 413; beyond that, just close the connection.
            if n <= DRAIN_LIMIT_BYTES:
                left = n
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
            self.close_connection = True
            raise HttpError(413, f"request body is {n} bytes, over the {self.app.max_body_bytes} byte limit "
                                 "(6 MB, as SageMaker): send a smaller image")
        try:
            body = self.rfile.read(n)
        except TimeoutError:
            self.close_connection = True
            raise HttpError(408, f"timed out after {REQUEST_TIMEOUT_S:.0f} s reading the {n}-byte body") from None
        if len(body) < n:
            self.close_connection = True
            raise HttpError(400, f"the body ended after {len(body)} of {n} bytes (Content-Length)")
        return body

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= self.app.max_body_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


@functools.lru_cache(maxsize=1)
def prediction_page() -> bytes:
    """GET /: a self-contained page (no external assets) to try the endpoint in a browser."""
    return (Path(__file__).with_name("page.html")).read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def make_http_server(app: ModelServer, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    return _Server((host, port), handler)


def serve(model_dir, *, host: str = "127.0.0.1", port: int = 8080, entry_point=None, max_batch_size: int = 16,
          max_wait_ms: float = 5.0, lifetime_s: float | None = None, log=print) -> None:
    """Load, listen, serve until SIGTERM/SIGINT (or `lifetime_s` has passed); then close the
    socket and stop the model thread."""
    app = ModelServer(model_dir, entry_point=entry_point, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
    try:
        httpd = make_http_server(app, host, port)
    except OSError as exc:
        app.close()
        raise ModelLoadError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port") from None

    def stop(signum, _frame):
        log(f"received signal {signum}, shutting down")
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    if lifetime_s:  # deploy --auto-delete-after: the endpoint removes itself
        expiry = threading.Timer(lifetime_s, lambda: (log(f"lifetime of {lifetime_s:g} s reached"), httpd.shutdown()))
        expiry.daemon = True
        expiry.start()
    log(f"model loaded in {app.load_seconds:.1f} s; serving http://{host}:{httpd.server_address[1]} "
        f"(max batch {max_batch_size}, max wait {max_wait_ms:g} ms)")
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        httpd.server_close()
        app.close()
        log("server stopped")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="SageMaker-compatible model server (/ping, /invocations)",
                                add_help=add_help)
    p.add_argument("model_dir", help="extracted model.tar.gz (weights at the root, code/inference.py)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080)),
                   help="port (default: 8080, or $SAGEMAKER_BIND_TO_PORT)")
    p.add_argument("--entry-point", default=None,
                   help="inference script (default: MODEL_DIR/code/$SAGEMAKER_PROGRAM or inference.py)")
    p.add_argument("--max-batch-size", type=int, default=16, help="rows per model call (default: 16)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a batch waits for requests still decoding (default: 5)")
    p.add_argument("--lifetime-s", type=float, default=None,
                   help="shut down after this many seconds (default: run until stopped)")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        serve(args.model_dir, host=args.host, port=args.port, entry_point=args.entry_point,
              max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, lifetime_s=args.lifetime_s,
              log=lambda m: print(m, flush=True))
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
