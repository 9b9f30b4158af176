"""What every step task shares: JSON results, retries on transient storage errors only, one heavy task at a time per
device, and progress reported as log lines."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prefect import get_run_logger

from tint_core.devices import resolve_device
from tint_core.progress import ProgressFn
from tint_core.store import StoreRetryError

CPU = "cpu"  # where the controls' augmentation and the digits backbone's training run
_DEVICES: dict[str, tuple[ThreadPoolExecutor, int]] = {}  # device → its threads, how many
_DEVICES_LOCK = threading.Lock()
_STEPS_PER_DEVICE = 1
_EXCLUSIVE: dict[str, threading.Lock] = {}  # device → held by its running exclusive step
T = TypeVar("T")


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


def set_steps_per_device(steps: int) -> None:
    """How many heavy steps this process runs side by side on each device (``ExecutionConfig.steps_per_device``);
    steps already queued finish on the threads they were given."""
    global _STEPS_PER_DEVICE
    if steps < 1:
        raise ValueError(f"steps per device must be at least 1, got {steps}")
    with _DEVICES_LOCK:
        _STEPS_PER_DEVICE = steps


def _alone(lock: threading.Lock, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with lock:
        return function(*args, **kwargs)


def on_device(device: str, function: Callable[..., T], *args: Any, exclusive: bool = False, **kwargs: Any) -> T:
    """Run one heavy step on one of ``device``'s own worker threads (``auto`` resolved) and return its result.

    Heavy tasks in this process take turns on a device, ``set_steps_per_device`` of them at once (one by default);
    ``exclusive`` steps, those sharing a loaded model whose state they change (the diffusion backbone: its scheduler,
    its token embeddings), also never run beside each other. They compute on the device's threads, not on the flow's
    pool threads: torch's CPU kernels keep a team of threads per calling thread, and the idle team of a finished task
    would spin and take the cores from the next one (measured here: a digits student trained 3× slower from a pool
    thread after another pool thread had computed).
    """
    name = str(resolve_device(device))
    with _DEVICES_LOCK:
        worker, width = _DEVICES.get(name, (None, 0))
        if worker is None or width != _STEPS_PER_DEVICE:
            if worker is not None:
                worker.shutdown(wait=False)  # its queued steps still run; its threads end after them
            worker = ThreadPoolExecutor(max_workers=_STEPS_PER_DEVICE, thread_name_prefix=f"tint-{name}")
            _DEVICES[name] = worker, _STEPS_PER_DEVICE
        if exclusive:
            future = worker.submit(_alone, _EXCLUSIVE.setdefault(name, threading.Lock()), function, *args, **kwargs)
        else:
            future = worker.submit(function, *args, **kwargs)
    return future.result()


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
