"""SIGINT and SIGTERM stop a command or a flow run within seconds, with nothing left running.

What a person's Ctrl-C, ``docker stop``, a Kubernetes pod's termination or a Prefect worker's cancellation sends is
SIGINT or SIGTERM. Inside :func:`stop_on_signals`, the first one:

1. asks every long loop to stop at its next step (``tint_core.stopping``), so running steps end within one small
   unit of work and steps not started yet fail at once, storing nothing;
2. hands the signal on as before: Prefect's handler turns SIGTERM into the flow run's Crashed state, Python's turns
   SIGINT into KeyboardInterrupt (Prefect records that as Crashed too), and the process unwinds;
3. starts a deadline: whatever still runs ``grace`` seconds later (a step inside one long operation) is ended, the
   embedded Prefect server first, so no process is left behind.

A second Ctrl-C ends the process at once. Artifacts are written whole or not at all, so a stop never leaves a
partial one visible, and a rerun reuses every finished step.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from tint_core.stopping import request_stop, stop_requested

P, R = ParamSpec("P"), TypeVar("R")
GRACE_SECONDS = float(os.environ.get("TINT_STOP_GRACE_SECONDS", "10"))
SIGNALS = (signal.SIGINT, signal.SIGTERM)
EMBEDDED_SERVER_STARTUP_SECONDS = 120  # the least the main job waits for its embedded server to answer

_lock = threading.Lock()
_received: list[int] = []  # the signals this process was asked to stop by, first one first
_handling = False  # a delivery is being handled: a handler of ours reached through a chain only passes it on


def stop_signal() -> int | None:
    """The signal that asked this process to stop, if any."""
    return _received[0] if _received else None


def exit_code() -> int:
    """The conventional exit status of a process stopped by its signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + (stop_signal() or signal.SIGTERM)


def stop_embedded_server() -> None:
    """Stop the Prefect server this process started for itself (ephemeral mode), if it did."""
    if "prefect.server.api.server" not in sys.modules:
        return
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


def start_embedded_server() -> None:
    """Start Prefect's ephemeral server (when no PREFECT_API_URL is set) in a session of its own, so that the
    terminal's Ctrl-C reaches this process only: the server then outlives the interrupt long enough to record the
    run's final state, and is stopped by this process on its way out (or by the kernel, should it be killed)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if PREFECT_API_URL.value():
        return
    from prefect.server.api import server as server_module

    popen = server_module.subprocess.Popen
    server_module.subprocess.Popen = functools.partial(subprocess.Popen, start_new_session=True,  # type: ignore[misc]
                                                       preexec_fn=_end_with_parent)
    try:
        # Prefect's 20 s default is not enough on a busy 2-core machine (seen: a docker build beside the tests).
        server_module.SubprocessASGIServer().start(
            timeout=max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), EMBEDDED_SERVER_STARTUP_SECONDS))
    finally:
        server_module.subprocess.Popen = popen  # type: ignore[misc]


def _end_with_parent() -> None:
    """In the server's process before it starts (Linux): the kernel sends it SIGTERM when the command's process
    ends, however it ends (SIGKILL included), so no server outlives its command."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the command's own exit path stops the server
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _deadline(signum: int, grace: float) -> None:
    time.sleep(grace)
    name = signal.Signals(signum).name
    print(f"tint: still running {grace:g} s after {name}: ending the process now", file=sys.stderr, flush=True)
    stop_embedded_server()
    os._exit(128 + signum)


@contextlib.contextmanager
def stop_on_signals(grace: float = GRACE_SECONDS) -> Iterator[None]:
    """Within this block (in the main thread), SIGINT and SIGTERM stop the process as the module says.

    The handlers wrap whatever was installed before (Prefect's flow engine installs its own SIGTERM handler around
    a flow run: a flow body using this block is reached first, so loops stop before Prefect waits for them).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def handler(signum: int, frame: object) -> None:
        global _handling
        if _handling:  # reached through a chain of our handlers: the first one did the work
            _pass_on(previous[signum], signum, frame, first=False)
            return
        _handling = True
        try:
            with _lock:
                first = not _received
                _received.append(signum)
            if first:
                request_stop(signal.Signals(signum).name)
                threading.Thread(target=_deadline, args=(signum, grace), name="tint-stop-deadline",
                                 daemon=True).start()  # fmt: skip
            elif signum == signal.SIGINT and _received.count(signal.SIGINT) > 1:  # a person's second Ctrl-C
                stop_embedded_server()
                os._exit(128 + signum)
            _pass_on(previous[signum], signum, frame, first)
        finally:
            _handling = False

    for signum in SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


def _pass_on(chained: object, signum: int, frame: object, first: bool) -> None:
    """Hand a signal to the handler installed before ours: call it, or unwind as the default would (once)."""
    if callable(chained):
        chained(signum, frame)
    elif chained == signal.SIG_DFL and first:
        raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)


def stopped() -> bool:
    """Whether this process is stopping on a signal (the caller reports that rather than a failure)."""
    return stop_requested() and bool(_received)


def stoppable(function: Callable[P, R]) -> Callable[P, R]:
    """Run a flow's body inside :func:`stop_on_signals` (put it under ``@flow``): its process stops on SIGINT or
    SIGTERM, however it was started (the command line, a worker, a deployment run in process)."""

    @functools.wraps(function)
    def body(*args: P.args, **kwargs: P.kwargs) -> R:
        with stop_on_signals():
            try:
                return function(*args, **kwargs)
            except Exception as error:
                if not stopped():
                    raise
                # A stopped step's StopRequested reached the body in place of the signal's own unwinding (seen: the
                # main job's Ctrl-C, the interrupt lost in a wait, left its run Failed): raise what the signal raises,
                # so that Prefect records the run as Crashed, not as a failure of its work.
                raise _unwinding(stop_signal()) from error

    return body


def _unwinding(signum: int | None) -> BaseException:
    """What a stop signal raises in a flow's body: KeyboardInterrupt for SIGINT, Prefect's TerminationSignal for
    SIGTERM (its flow engine's own handler raises that)."""
    from prefect.exceptions import TerminationSignal

    return KeyboardInterrupt() if signum == signal.SIGINT else TerminationSignal(signal=signal.SIGTERM)
