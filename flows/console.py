"""What the flows' command-line entry points share: a quiet terminal and one-line errors for bad input."""

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator

from tint_core.pipeline.checks import USER_ERRORS

ProgressHook = Callable[[int, int, int, int], None]  # (steps done, steps, units done, units)
_progress_hooks: list[ProgressHook] = []


@contextlib.contextmanager
def watching_progress(hook: ProgressHook) -> Iterator[None]:
    """Call ``hook`` whenever a flow run in this process reports progress (the command line's progress bar)."""
    _progress_hooks.append(hook)
    try:
        yield
    finally:
        _progress_hooks.remove(hook)


def notify_progress(steps_done: int, steps: int, units_done: int, units: int) -> None:
    """Tell this process's progress hooks how far the flow run is (none outside the command line)."""
    for hook in list(_progress_hooks):
        hook(steps_done, steps, units_done, units)


def quiet_terminal(*, verbose: bool = False, random_backbone: bool = False) -> None:
    """Keep a run's terminal output to the flow's stage and progress lines (task runs stay in the Prefect UI).

    Args:
        verbose: keep every task run's log lines.
        random_backbone: the diffusion backbone has random weights, which invert badly by design: no warning per
            support.
    """
    # The ephemeral server's telemetry fights the flow for the sqlite database ("database is locked" tracebacks).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # No bar per loaded text encoder: transformers reads this when a step first imports it (seconds, so not here).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    if not verbose:
        logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    if random_backbone:
        logging.getLogger("tint_core.diffusion.specialization").setLevel(logging.ERROR)


def run_main(main: Callable[[], int]) -> None:
    """Run an entry point: its exit code, or for bad input one line on stderr and exit code 1."""
    try:
        sys.exit(main())
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
