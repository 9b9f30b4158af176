"""Classify storage errors as transient or permanent and retry the transient ones with jittered backoff.

s3fs turns botocore ``ClientError``s into builtin exceptions (``PermissionError``, ``FileNotFoundError``, ``OSError``
with an errno) and keeps the original as ``__cause__``, so the classifier looks through the whole exception chain for
an S3 error code before it falls back to the exception types of the network stack.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from tint_core.store.errors import StoreRetryError, describe

logger = logging.getLogger("tint_core.store")

T = TypeVar("T")

# S3 error codes that mean "try again later" (throttling, server trouble); every other code is permanent.
TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "OperationAborted", "IDPCommunicationError", "EC2ThrottledException",
})


def _network_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]  # resets, refusals, socket timeouts
    # An exception of a library that was never imported cannot occur: look the types up only where loaded, so that
    # local stores do not pay for importing the S3 stack.
    if boto := sys.modules.get("botocore.exceptions"):
        types += [boto.ConnectionError, boto.HTTPClientError, boto.IncompleteReadError]
    if aiohttp := sys.modules.get("aiohttp"):
        types += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError]
    return tuple(types)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def s3_error_code(error: BaseException) -> str | None:
    """The S3 error code (e.g. ``"NoSuchBucket"``) carried anywhere in the exception chain, or None."""
    for link in _chain(error):
        response = getattr(link, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            code = response["Error"].get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return str(code or status or "")
    return None


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: throttling, 5xx answers, connection resets and timeouts."""
    code = s3_error_code(error)
    if code is not None:
        return code in TRANSIENT_S3_CODES or code in {"429", "500", "502", "503", "504"}
    network_errors = _network_error_types()
    return any(isinstance(link, network_errors) for link in _chain(error))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter.

    Attempt ``i`` (from 0) that fails transiently waits a uniform random time in ``[0, min(max_delay, base_delay·2^i)]``
    before attempt ``i + 1``; after ``attempts`` tries the error is raised as ``StoreRetryError``.
    """

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"delays must be non-negative, got base {self.base_delay}, max {self.max_delay}")

    def call(self, what: str, function: Callable[[], T]) -> T:
        """Run ``function``, retrying transient errors.

        Args:
            what: names the operation and the store in log lines and errors (must not contain secrets).
            function: the operation; permanent errors propagate unchanged.

        Raises:
            StoreRetryError: a transient error persisted through every attempt.
        """
        for attempt in range(self.attempts):
            try:
                return function()
            except Exception as error:
                if not is_transient(error):
                    raise
                if attempt == self.attempts - 1:
                    raise StoreRetryError(
                        f"{what} still failing after {self.attempts} attempts: {describe(error)}"
                    ) from None
                delay = self.rng.uniform(0.0, min(self.max_delay, self.base_delay * 2**attempt))
                logger.warning("%s: transient %s; retry %d/%d in %.2f s",
                               what, describe(error), attempt + 1, self.attempts - 1, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises
