"""Hooks into every botocore session the CLI creates (it builds its own boto3.Session).

botocore copies `handlers.BUILTIN_HANDLERS` into each new session. A `before-call` handler
sees every API call before it is sent: returning None lets it through to moto (counting),
returning (http_response, parsed) answers it instead, as an AWS error (botocore stops at the
first answer for `before-call`, unlike `before-send` where moto would still run).
"""

from __future__ import annotations

import threading


def on_every_session(monkeypatch, event: str, handler) -> None:
    import botocore.handlers

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, (event, handler)])


def s3_error(code: str, message: str, status: int = 400):
    """A `before-call` answer: botocore raises it as ClientError and never sends the request."""
    from botocore.awsrequest import AWSResponse

    parsed = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse("https://s3.amazonaws.com/", status, {}, None), parsed


class PutCounter:
    """Counts PutObject requests; after `fail_after` successes, answers the rest with `code`."""

    def __init__(self, fail_after: int | None = None, code: str = "ExpiredToken"):
        self.fail_after, self.code = fail_after, code
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, **kwargs):
        with self._lock:
            if self.fail_after is not None and self.sent >= self.fail_after:
                self.failed += 1
                return s3_error(self.code, "The provided token has expired.")
            self.sent += 1
        return None

    def install(self, monkeypatch) -> "PutCounter":
        on_every_session(monkeypatch, "before-call.s3.PutObject", self)
        return self
