"""Fault injection: wrap an fsspec filesystem and raise the exceptions s3fs raises on S3 trouble."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from s3fs.errors import translate_boto_error


def s3_error(code: str, status: int, message: str | None = None) -> Exception:
    """The exception s3fs raises for an S3 error answer (a translated ClientError that keeps it as cause)."""
    response = {"Error": {"Code": code, "Message": message or f"injected {code}"},
                "ResponseMetadata": {"HTTPStatusCode": status}}
    error = ClientError(response, "PutObject")
    return translate_boto_error(error)


TRANSIENT: dict[str, Callable[[], Exception]] = {
    "SlowDown": lambda: s3_error("SlowDown", 503, "Please reduce your request rate."),
    "InternalError": lambda: s3_error("InternalError", 500),
    "RequestTimeout": lambda: s3_error("RequestTimeout", 400),
    "connection reset": lambda: ConnectionResetError(104, "Connection reset by peer"),
    "read timeout": lambda: ReadTimeoutError(endpoint_url="http://127.0.0.1/x"),
    "endpoint blip": lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1/x"),
}

PERMANENT: dict[str, Callable[[], Exception]] = {
    "AccessDenied": lambda: s3_error("AccessDenied", 403, "Access Denied"),
    "InvalidAccessKeyId": lambda: s3_error("InvalidAccessKeyId", 403),
    "SignatureDoesNotMatch": lambda: s3_error("SignatureDoesNotMatch", 403),
}


class FaultyFilesystem:
    """Delegates to ``inner``; calls of the methods in ``plan`` first raise the planned exceptions, one per call.

    ``late`` methods run the real call and then raise (the request succeeded, its answer was lost). ``when`` limits
    the faults to the calls it accepts (given their arguments).
    """

    def __init__(self, inner: Any, plan: dict[str, list[Callable[[], Exception]]] | None = None,
                 late: dict[str, list[Callable[[], Exception]]] | None = None,
                 when: Callable[[tuple, dict], bool] = lambda args, kwargs: True):
        self._inner = inner
        self._plan = {name: list(faults) for name, faults in (plan or {}).items()}
        self._late = {name: list(faults) for name, faults in (late or {}).items()}
        self._when = when
        self.raised: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or (name not in self._plan and name not in self._late):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._when(args, kwargs):
                return attribute(*args, **kwargs)
            if self._plan.get(name):
                error = self._plan[name].pop(0)()
                self.raised.append(f"{name}: {type(error).__name__}")
                raise error
            result = attribute(*args, **kwargs)
            if self._late.get(name):
                error = self._late[name].pop(0)()
                self.raised.append(f"{name} (late): {type(error).__name__}")
                raise error
            return result

        return call

    def pending(self) -> int:
        """Planned faults not raised yet."""
        return sum(len(faults) for faults in [*self._plan.values(), *self._late.values()])
