"""Store exceptions and the redaction every store message passes through.

Messages name the store by its display URL (never with credentials) and are scrubbed of any secret value found in
the environment, so that an error or log line can be pasted into an issue safely.
"""

from __future__ import annotations

import errno
import os
import re

# Environment variables whose values are secrets wherever they appear (AWS names plus the generic kind).
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)
_MIN_SECRET_LENGTH = 6  # shorter values (e.g. "1", "true") would blank out ordinary words
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_URL_QUERY_SECRET = re.compile(
    r"(?P<name>[?&][^=&\s]*(?:secret|token|signature|credential|password|access[_-]?key|api[_-]?key)[^=&\s]*=)"
    r"[^&\s\"']+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Remove secrets from ``text``: environment secret values, URL userinfo and secret-looking query values."""
    for name, value in os.environ.items():
        if len(value) >= _MIN_SECRET_LENGTH and (_SECRET_NAME.search(name) or name == "AWS_ACCESS_KEY_ID"):
            text = text.replace(value, "***")
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _URL_QUERY_SECRET.sub(r"\g<name>***", text)


def describe(error: BaseException) -> str:
    """One redacted line naming an exception's type and message."""
    message = str(error).strip() or "(no message)"
    return redact(f"{type(error).__name__}: {message}")


class StoreError(Exception):
    """Base class of every error the artifact store raises; the message is always redacted."""

    def __init__(self, message: str):
        super().__init__(redact(message))


class StoreAccessError(StoreError):
    """A permanent failure to use the store: no bucket, access denied, unreachable endpoint, local I/O error."""


class StoreFullError(StoreAccessError):
    """The store's device (or quota) has no space left for a write."""


OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(url: str, operation: str) -> StoreFullError:
    """The one-line error for an ``operation`` (e.g. "write artifacts/…") that found no space left in store ``url``."""
    return StoreFullError(f"store {url} is out of space (no space left on its device to {operation}): free some "
                          "space and run again; every finished step is reused")  # fmt: skip


class StoreRetryError(StoreError):
    """A transient failure that persisted through every retry."""


class ArtifactNotFoundError(StoreError, LookupError):
    """No complete artifact (no manifest) exists under the key."""


class CorruptArtifactError(StoreError):
    """An artifact failed verification; ``quarantined_to`` says where it was moved (None if it was not moved)."""

    def __init__(self, message: str, key: str, quarantined_to: str | None):
        super().__init__(message)
        self.key = key
        self.quarantined_to = quarantined_to


class DigestMismatchError(StoreError):
    """The artifact under a reference's key no longer has the reference's digest (it was recomputed differently)."""
