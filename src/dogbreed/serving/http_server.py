"""The HTTP side of the model server: `GET /ping`, `POST /invocations` (and `GET /`, a page to
try the endpoint, with `GET /about` and `GET /report` behind it), the SageMaker contract over a `ModelServer`.

Every error answers JSON `{"error": ...}`: the exception's `status_code` when it has one (the
toolkit's rule), 413 over the body limit, 500 otherwise; the server keeps serving. `/ping`
answers 200 only while the model thread is alive.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dogbreed.serving import page
from dogbreed.serving.app import REQUEST_TIMEOUT_S, ModelServer
from dogbreed.serving.errors import HttpError
from dogbreed.serving.limits import MAX_BODY_BYTES

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # oversized bodies up to this are read and dropped before the 413
DEFAULT_ACCEPT = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
TEXT_TYPES = ("application/json", "text/csv", "text/plain")  # reach input_fn as str, as in the toolkit


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
    page_info: page.PageInfo  # what GET /about and GET /report tell

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
            return self._send(200, page.prediction_page(), "text/html; charset=utf-8")
        if path == "/about":
            return self._send_json(200, page.about(self.page_info, self.app.model_dir))
        if path == "/report":
            report = page.report_html(self.page_info)
            if report is None:
                return self._send_json(404, {"error": "this endpoint was deployed without a report"})
            return self._send(200, report, "text/html; charset=utf-8")
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
                                 f"({MAX_BODY_BYTES >> 20} MB, as SageMaker): send a smaller image")
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



class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def make_http_server(app: ModelServer, host: str = "127.0.0.1", port: int = 8080,
                     page_info: page.PageInfo | None = None) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app, "page_info": page_info or page.PageInfo()})
    return _Server((host, port), handler)
