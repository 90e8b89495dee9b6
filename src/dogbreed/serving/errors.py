"""Errors a request can cause. Each carries the HTTP status the server answers with,
like the inference toolkit's BaseInferenceToolkitError."""


class RequestError(Exception):
    status_code = 400

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class UnsupportedMediaType(RequestError):
    status_code = 415


class NotAcceptable(RequestError):
    status_code = 406


class PayloadTooLarge(RequestError):
    status_code = 413
