"""A SageMaker-compatible model server process: `GET /ping`, `POST /invocations` on 127.0.0.1:8080.

    python -m dogbreed.serving.server MODEL_DIR [--port 8080] [--max-batch-size 16] [--max-wait-ms 5]
        [--allow-host NAME ...] [--log-file server.log] [--decode-budget-mb 1024]

It loads the inference module the way the inference toolkit does (`MODEL_DIR/code/inference.py`
or `--entry-point`; `model_fn` once, then per request `input_fn -> predict_fn -> output_fn`, or
`transform_fn`) and adds what a CPU endpoint needs to be fast and hard to break. The parts:

- `inference_module`: the user's module, validated like the toolkit's Transformer.
- `batcher`: dynamic batching of concurrent requests on one model thread.
- `app`: `ModelServer`, the handler functions behind the batcher, all torch work on the model
  thread (a single OpenMP thread team).
- `http_server`: the HTTP contract; every error answers JSON, and the server keeps serving.
- this module: bind first (the port is this process's or it exits 1 before loading anything), load,
  serve; SIGTERM/SIGINT shut down cleanly (listening socket closed, exit 0). The endpoint's
  identity token comes from $DOGBREED_ENDPOINT_TOKEN (set by `deploy`, kept out of the command line).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from dogbreed.serving.app import ModelServer
from dogbreed.serving.errors import ModelLoadError
from dogbreed.serving.http_server import make_http_server
from dogbreed.serving.limits import DECODE_BUDGET_BYTES, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS, MAX_LOG_BYTES
from dogbreed.serving.page import PageInfo
from dogbreed.training.device import shorten_openmp_spin

ENV_TOKEN = "DOGBREED_ENDPOINT_TOKEN"


def log_rotator(path, max_bytes: int = MAX_LOG_BYTES):
    """A tick that moves `path` (this process's stdout and stderr) to `path`.1 once it passes
    `max_bytes` and reopens it, so a stream of failing requests cannot fill the disk."""
    def tick() -> None:
        try:
            if os.fstat(1).st_size <= max_bytes:
                return
            os.replace(path, f"{path}.1")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    return tick


def serve(model_dir, *, host: str = "127.0.0.1", port: int = 8080, entry_point=None,
          max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
          lifetime_s: float | None = None, allowed_hosts=(), token: str | None = None, log_file=None,
          decode_budget_bytes: int = DECODE_BUDGET_BYTES, page_info: PageInfo | None = None, log=print) -> None:
    """Bind, load, serve until SIGTERM/SIGINT (or `lifetime_s` has passed); then close the
    socket and stop the model thread. `page_info`: what the prediction page shows."""
    try:  # bind before loading: two servers on one port fail here, before either looks healthy
        httpd = make_http_server(None, host, port, token=token or os.environ.get(ENV_TOKEN, ""),
                                 allowed_hosts=allowed_hosts, tick=log_rotator(log_file) if log_file else None,
                                 page_info=page_info)
    except OSError as exc:
        raise ModelLoadError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port") from None
    try:
        httpd.RequestHandlerClass.app = app = ModelServer(
            model_dir, entry_point=entry_point, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
            decode_budget_bytes=decode_budget_bytes)
    except BaseException:
        httpd.server_close()
        raise

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
    p.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                   help=f"rows per model call (default: {DEFAULT_MAX_BATCH_SIZE})")
    p.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS,
                   help=f"how long a batch waits for requests still decoding (default: {DEFAULT_MAX_WAIT_MS:g})")
    p.add_argument("--lifetime-s", type=float, default=None,
                   help="shut down after this many seconds (default: run until stopped)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME ('*': any); default: the bound "
                        "address (loopback names for 127.0.0.1)")
    p.add_argument("--log-file", default=None,
                   help="the file stdout/stderr go to; rotated to FILE.1 past 5 MB (default: no rotation)")
    p.add_argument("--decode-budget-mb", type=float, default=DECODE_BUDGET_BYTES / 2**20,
                   help=f"memory for decoding images across concurrent requests "
                        f"(default: {DECODE_BUDGET_BYTES >> 20}, or $DOGBREED_DECODE_BUDGET_MB)")
    p.add_argument("--name", default=None, help="endpoint name, shown on the prediction page (GET /)")
    p.add_argument("--job", default=None, help="training job of the model, shown on the prediction page")
    p.add_argument("--report", type=Path, default=None, help="report.html of that job, served at GET /report")
    return p


def main(argv=None) -> int:
    shorten_openmp_spin()
    args = get_args_parser().parse_args(argv)
    try:
        serve(args.model_dir, host=args.host, port=args.port, entry_point=args.entry_point,
              max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, lifetime_s=args.lifetime_s,
              allowed_hosts=args.allow_host, log_file=args.log_file,
              decode_budget_bytes=int(args.decode_budget_mb * 2**20),
              page_info=PageInfo(args.name, args.job, args.report), log=lambda m: print(m, flush=True))
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
