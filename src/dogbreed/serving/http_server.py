"""The HTTP side of the model server: `GET /ping`, `POST /invocations` (and `GET /`, a page to
try the endpoint, with `GET /about` and `GET /report` behind it), the SageMaker contract over a `ModelServer`.

Every error answers JSON `{"error": ...}`: the exception's `status_code` when it has one (the
toolkit's rule), 413 over the body limit, 500 otherwise; the server keeps serving. `/ping`
answers 200 only while the model thread is alive.

Hardening: every response carries the endpoint's identity token (`X-Dogbreed-Endpoint`, given by
`deploy`), so a client can tell its own server from another process on the port. The `Host`
header must name the bound address (loopback names for a loopback server, plus `allowed_hosts`):
a web page that rebinds its DNS name to 127.0.0.1 gets 403. At most MAX_CONNECTIONS connections
are served at once (one more is answered 503 and closed), and a watchdog closes a connection
whose request line and headers take longer than HEADER_DEADLINE_S in all (408).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dogbreed.serving import page
from dogbreed.serving.app import REQUEST_TIMEOUT_S, ModelServer
from dogbreed.serving.errors import HttpError
from dogbreed.serving.limits import HEADER_DEADLINE_S, MAX_BODY_BYTES, MAX_CONNECTIONS, RETRY_AFTER_S

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # oversized bodies up to this are read and dropped before the 413
DEFAULT_ACCEPT = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
TEXT_TYPES = ("application/json", "text/csv", "text/plain")  # reach input_fn as str, as in the toolkit
TOKEN_HEADER = "X-Dogbreed-Endpoint"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")


def content_length(value: str | None) -> int | None:
    """The header's value as a byte count, or None unless it is plain ASCII digits ("²" is a digit to Python)."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


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
    token: str = ""
    allowed_hosts: frozenset = frozenset()  # empty: any Host
    host_ok = True  # False: a foreign Host, which is not told the endpoint's token
    page_info: page.PageInfo  # what GET /about and GET /report tell
    arrival = None  # this request, counted by the batcher from its headers until its rows are queued

    def log_message(self, fmt, *args):  # one line per error only; access logs would cost CPU
        pass

    def _send_json(self, status: int, doc: dict, extra: dict | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", extra)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.token and self.host_ok:
            self.send_header(TOKEN_HEADER, self.token)
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.watchdog.done(self.connection)  # the headers are in: the deadline is met
        if ok and self.command == "POST":  # from here a batch being formed waits for it (serving/batcher.py)
            self.arrival = self.app.arriving()
        if ok and not self._host_allowed():
            self.close_connection = True
            self.host_ok = False
            self._send_json(403, {"error": f"Host {self.headers.get('Host')!r} is not this server's address: "
                                           "connect to it by its address (or start it with --allow-host)"})
            return False
        return ok

    def handle_one_request(self):
        try:  # an idle keep-alive connection waits for its next request under the usual timeout
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except OSError:
            self.close_connection = True
            return
        self.server.watchdog.expect(self.connection)  # from its first byte, the request has a deadline
        try:
            super().handle_one_request()
        finally:
            self.app.left(self.arrival)
            self.arrival = None

    def _host_allowed(self) -> bool:
        host = self.headers.get("Host")
        if not self.allowed_hosts or host is None:  # HTTP/1.0 clients may send none; browsers always do
            return True
        name = host.strip().lower()
        if name.startswith("["):
            name = name[1:].split("]")[0]
        elif name.count(":") == 1:
            name = name.split(":")[0]
        return name in self.allowed_hosts

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
            out, out_type, rows = self.app.invoke(body, ctype, accept, self.arrival)
            self._send(200, out, out_type, {"X-Batch-Size": rows})
        except Exception as exc:
            status = _error_status(exc)
            if status >= 500:
                print(f"invocation failed ({status}):\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                message = f"internal error: {type(exc).__name__}: {exc}"
            else:
                message = str(exc)
            retry = getattr(exc, "retry_after", None)
            self._send_json(status, {"error": message, "status": status}, {"Retry-After": retry} if retry else None)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HttpError(411, "chunked bodies are not accepted: send Content-Length")
        n = content_length(self.headers.get("Content-Length"))
        if n is None:
            self.close_connection = True
            raise HttpError(411, "a Content-Length header with a byte count is required")
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
        n = content_length(self.headers.get("Content-Length", "0"))
        if n is not None and n <= self.app.max_body_bytes:
            self.rfile.read(n)
        else:
            self.close_connection = True



class Watchdog:
    """One thread for all connections: closes those whose headers miss their deadline (408), and
    calls `tick` (log rotation) about twice a second."""

    def __init__(self, deadline_s: float = HEADER_DEADLINE_S, tick=None):
        self.deadline_s = deadline_s
        self.tick = tick
        self._due: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="watchdog", daemon=True).start()

    def expect(self, conn: socket.socket) -> None:
        with self._lock:
            self._due[conn] = time.monotonic() + self.deadline_s

    def done(self, conn: socket.socket) -> None:
        with self._lock:
            self._due.pop(conn, None)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            with self._lock:
                late = [c for c, due in self._due.items() if due < now]
                for c in late:
                    del self._due[c]
            for conn in late:
                body = json.dumps({"error": f"the request headers did not arrive within {self.deadline_s:g} s"})
                _answer_and_close(conn, TIMEOUT_RESPONSE % (len(body), body.encode()))
            if self.tick:
                self.tick()


def _answer_and_close(conn: socket.socket, response: bytes) -> None:
    try:
        conn.send(response, socket.MSG_DONTWAIT)
    except OSError:
        pass
    try:
        conn.shutdown(socket.SHUT_RDWR)  # wakes the handler thread blocked reading it
    except OSError:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, *, max_connections: int = MAX_CONNECTIONS, tick=None):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)
        self.watchdog = Watchdog(tick=tick)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            body = json.dumps({"error": "too many connections: retry shortly"}).encode()
            _answer_and_close(request, BUSY_RESPONSE % (RETRY_AFTER_S, len(body), body))
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.watchdog.done(request)
            self.slots.release()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away (or the watchdog closed it): nothing to log
            return
        print(f"connection from {client_address[0]} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def server_close(self):
        self.watchdog.stop()
        super().server_close()


def allowed_host_names(host: str, extra=()) -> frozenset:
    """Host header names a server bound to `host` answers: loopback names for loopback, the address
    itself otherwise; "*" in `extra` (or a wildcard bind) turns the check off (empty set)."""
    extra = {h.strip().lower() for h in extra}
    if "*" in extra or host in ("0.0.0.0", "::", ""):
        return frozenset()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    names = set(LOOPBACK_NAMES) if loopback else {host.lower()}
    return frozenset(names | extra)


def make_http_server(app: ModelServer | None, host: str = "127.0.0.1", port: int = 8080, *, token: str = "",
                     allowed_hosts=(), max_connections: int = MAX_CONNECTIONS, tick=None,
                     page_info: page.PageInfo | None = None) -> ThreadingHTTPServer:
    """Bind now (the port is ours or this raises OSError); `app` may be set later, before serving.
    `page_info`: what the prediction page tells about the model."""
    handler = type("BoundHandler", (Handler,), {"app": app, "token": token,
                                                "allowed_hosts": allowed_host_names(host, allowed_hosts),
                                                "page_info": page_info or page.PageInfo()})
    return _Server((host, port), handler, max_connections=max_connections, tick=tick)
