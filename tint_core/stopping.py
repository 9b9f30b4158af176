"""Stopping on request: a process-wide flag that long loops check between small units of work.

A command or flow that receives SIGINT or SIGTERM calls :func:`request_stop`; every training, inversion, sampling
and inference loop calls :func:`check_stop` once per step or batch, so a heavy step ends within one small unit of
work instead of running its whole loop. What a stopped step had not finished is never stored (artifacts are written
whole or not at all), so a rerun redoes exactly that step.
"""

from __future__ import annotations

import threading

_requested = threading.Event()
_reason = ""


class StopRequested(RuntimeError):  # noqa: N818 — a request, not an error of the step
    """Raised inside a long loop once a stop was requested (by a signal, usually)."""


def request_stop(reason: str) -> None:
    """Ask every long loop of this process to stop at its next check."""
    global _reason
    _reason = reason
    _requested.set()


def stop_requested() -> bool:
    return _requested.is_set()


def check_stop() -> None:
    """Raise :class:`StopRequested` if a stop was requested; cheap enough for every step of a loop."""
    if _requested.is_set():
        raise StopRequested(f"stopped on request ({_reason})")


def clear_stop() -> None:
    """Forget a request (tests, and a process that goes on after handling one)."""
    _requested.clear()
