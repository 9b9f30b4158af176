"""What every step task shares: JSON results, retries on transient storage errors only, one heavy task at a time per
device, and progress reported as log lines."""

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger

from tint_core.diffusion.backbone import resolve_device
from tint_core.diffusion.prompts import ProgressFn
from tint_core.store import StoreRetryError

_SLOTS: dict[str, threading.Lock] = {}
_SLOTS_LOCK = threading.Lock()


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only a storage error that outlasted the store's own retries (never bad input or out-of-memory)."""
    try:
        state.result()
    except StoreRetryError:
        return True
    except Exception:  # noqa: BLE001  (anything else is not transient)
        return False
    return False


# Options of every step task: references come back as JSON (readable, no pickle); retries only where they can help.
STEP_OPTIONS: dict[str, Any] = {
    "persist_result": True,
    "result_serializer": "json",
    "retries": 2,
    "retry_delay_seconds": 5,
    "retry_condition_fn": _transient,
}


@contextlib.contextmanager
def device_slot(device: str) -> Iterator[None]:
    """Hold ``device`` (``auto`` resolved) for one heavy task: tasks in this process take turns on it."""
    name = str(resolve_device(device))
    with _SLOTS_LOCK:
        lock = _SLOTS.setdefault(name, threading.Lock())
    with lock:
        yield


def progress_logger(what: str, every: float = 0.25) -> ProgressFn:
    """A library progress callback that logs ``what: stage done/total`` about every ``every`` of each stage."""
    logger = get_run_logger()
    reported: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        step = max(1, int(total * every))
        if done == total or done - reported.get(stage, 0) >= step:
            reported[stage] = done
            logger.info("%s: %s %d/%d", what, stage.replace("_", " "), done, total)

    return report
