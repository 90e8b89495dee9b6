"""A stdlib-only client for the container API (`GET /ping`, `POST /invocations`).

`dogbreed predict` against a local endpoint uses only this, so it starts in milliseconds:
no torch, no requests, no boto3.

With the endpoint's `token` (from `deploy`), every answer must carry it in `X-Dogbreed-Endpoint`:
a server that does not is another process on the port, and `WrongEndpoint` says so.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from dogbreed.errors import EndpointError

TOKEN_HEADER = "X-Dogbreed-Endpoint"


class WrongEndpoint(EndpointError):
    """Raised when the server at the endpoint's address is not that endpoint (its token differs)."""


class EndpointClient:
    """One keep-alive connection to a model server at `url` (http://host:port)."""

    def __init__(self, url: str, timeout: float = 65.0, token: str | None = None):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise EndpointError(f"endpoint URL {url!r} is not http://host:port")
        self.url = url
        self.token = token
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in (1, 2):  # a kept-alive connection the server closed gets one retry
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                resp = self._conn.getresponse()
                data = resp.read()
                if self.token and resp.getheader(TOKEN_HEADER) != self.token:
                    self._conn.close()
                    raise WrongEndpoint(f"the server at {self.url} is not this endpoint (another process took "
                                        "its port): `dogbreed endpoints` shows its state; redeploy it")
                return resp.status, resp.getheader("Content-Type", ""), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                if attempt == 2:
                    raise EndpointError(f"the endpoint at {self.url} closed the connection: "
                                        "check `dogbreed endpoints`") from None
            except OSError as exc:
                self._conn.close()
                raise EndpointError(f"cannot reach the endpoint at {self.url} ({exc.strerror or exc}): "
                                    "is it deployed? check `dogbreed endpoints` or run `dogbreed deploy`") from None

    def ping(self) -> bool:
        """True when this endpoint (with its token, when given) answers healthy."""
        try:
            status, _, _ = self._request("GET", "/ping")
        except EndpointError:
            return False
        return status == 200

    def invoke(self, body: bytes, content_type: str, accept: str = "application/json") -> tuple[bytes, str]:
        status, ctype, data = self._request("POST", "/invocations", body,
                                            {"Content-Type": content_type, "Accept": accept})
        if status != 200:
            raise EndpointError(f"the endpoint answered {status}: {error_message(data)}")
        return data, ctype

    def close(self) -> None:
        self._conn.close()


def error_message(data: bytes) -> str:
    try:
        return str(json.loads(data)["error"])
    except (ValueError, KeyError, TypeError):
        return data[:300].decode("utf-8", "replace")
