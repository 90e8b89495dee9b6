"""Errors a request can cause. Each carries the HTTP status the server answers with,
like the inference toolkit's BaseInferenceToolkitError (which sets its own status code)."""

import json


class RequestError(Exception):
    """The request is malformed or unusable (400 unless a subclass says otherwise)."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


    def document(self) -> str:
        """The JSON body every server answers this error with (the local server and a SageMaker endpoint)."""
        return json.dumps({"error": str(self), "status": self.status_code})


class UnsupportedMediaType(RequestError):
    """Raised for a Content-Type no decoder handles; the message lists the accepted ones."""

    status_code = 415


class NotAcceptable(RequestError):
    """Raised when no type in the Accept header can be produced."""

    status_code = 406


class PayloadTooLarge(RequestError):
    """Raised for bodies over the size limit and images over the pixel limit."""

    status_code = 413


class ModelLoadError(Exception):
    """Raised when the model directory or the inference module cannot be loaded."""


class HttpError(Exception):
    """Raised by the server itself with the status to answer: a request the HTTP layer refuses
    (408, 411, 413, ...), or a model thread that is down (503) or too slow (504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
