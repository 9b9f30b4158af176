"""Stopping when asked: `tint distill` and `tint benchmark` (the main job) stop within seconds of SIGTERM or Ctrl-C
(SIGINT to the process group), leave no process behind (their embedded Prefect server included), end their Prefect
run Crashed rather than Running, leave nothing partial in the store, and a rerun reuses what was finished. A flow
run's own process (what a worker starts) stops on SIGTERM as well."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.benchmark import benchmark
from flows.distill import distill
from tests.pipeline.helpers import app_config, own_home_env, run_flow, small_config
from tint_core.pipeline.requests import DistillRequest
from tint_core.store import ArtifactStore

REPO = Path(__file__).parents[2]
STOP_WITHIN = 15.0  # seconds from the signal to the process's exit: the flows' grace is 10 s, most stop in 3-5
pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children of children included), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, pending = set(), [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for_step(process: subprocess.Popen, store: str, step: str, count: int = 1, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while len(ArtifactStore(store).list(step=step)) < count:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {step} artifact within {timeout:.0f} s"
        time.sleep(0.5)
    time.sleep(1.0)  # into the next, long step


def _stop(process: subprocess.Popen, signum: int, group: bool) -> tuple[float, str, set[int]]:
    """Send the signal (to the process group, as a terminal's Ctrl-C does, or to the process); return the seconds
    until it exited, its standard error, and the processes it had started."""
    below = _descendants(process.pid)
    assert below, "the command started no process (its embedded server, at least)"
    sent = time.monotonic()
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    return time.monotonic() - sent, stderr, below


@pytest.fixture
def started():
    """Start commands as subprocesses; whatever a failing test leaves running is killed with all it started."""
    processes: list[subprocess.Popen] = []

    def start(command: list[str], env: dict[str, str], session: bool = True) -> subprocess.Popen:
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, start_new_session=session))  # fmt: skip
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            for pid in _descendants(process.pid) | {process.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()


def _flow_run_states(home: Path) -> list[str]:
    with sqlite3.connect(home / "prefect.db") as db:
        return [state for (state,) in db.execute("SELECT state_type FROM flow_run ORDER BY created")]


def _made(store: str, steps: tuple[str, ...]) -> dict[str, tuple]:
    return {manifest.key: manifest.created for manifest in ArtifactStore(store).list() if manifest.step in steps}


# The reruns run in the test's process, on the session's server: what is reused is the store's to say, and a command
# of their own would only import everything and start a server once more (about 20 CPU-s each).
def test_tint_distill_stops_on_sigterm_and_a_rerun_reuses_what_it_finished(prefect_server, tmp_path, support_folder,
                                                                         started):  # fmt: skip
    config = app_config(tmp_path, support_folder).with_overrides(["student.training.steps=1000000"])
    config.to_yaml(tmp_path / "app.yaml")
    command = [sys.executable, "-m", "flows.cli", "distill", str(support_folder), str(tmp_path / "student"),
               "--config", str(tmp_path / "app.yaml")]  # fmt: skip
    process = started(command, own_home_env(tmp_path / "home"))
    _wait_for_step(process, config.store, "label")  # the student is distilling: a million steps
    seconds, stderr, below = _stop(process, signal.SIGTERM, group=False)
    assert seconds < STOP_WITHIN and process.returncode == 143, (seconds, process.returncode, stderr[-2000:])
    # Said in one line; not necessarily the last: the embedded server, which writes to the same terminal, may still
    # report its own shutdown after it (seen once under load: a traceback after the line, its source not kept).
    assert "stopped by SIGTERM: the distill flow run is marked Crashed" in stderr, stderr[-3000:]
    assert not [pid for pid in below if _alive(pid)]  # the embedded server too
    assert _flow_run_states(tmp_path / "home") == ["CRASHED"]
    store = ArtifactStore(config.store)
    assert store.verify().ok and not store.list(step="distill") and not (tmp_path / "student").exists()
    finished = _made(config.store, ("supports", "specialize", "generate", "label"))

    rerun = config.with_overrides(["student.training.steps=2"])
    run_flow(distill, DistillRequest.of(rerun), rerun)  # raises unless it completes
    assert _made(config.store, ("supports", "specialize", "generate", "label")) == finished  # reused, not redone
    assert (tmp_path / "student" / "student.safetensors").is_file()


def test_the_main_job_stops_on_ctrl_c_and_a_rerun_resumes(prefect_server, tmp_path, started):
    # TINT against the supports only: the other controls would add only to the rerun's work.
    config = small_config(str(tmp_path / "store"), methods=["supports_only", "tint"]).with_overrides(
        ["student.training.steps=1000000"])  # fmt: skip
    config.to_yaml(tmp_path / "config.yaml")
    command = [sys.executable, "-m", "flows.cli", "benchmark", str(tmp_path / "config.yaml")]
    process = started(command, own_home_env(tmp_path / "home"))
    _wait_for_step(process, config.store, "backbone", count=2)  # then a million-step student holds the CPU
    seconds, stderr, below = _stop(process, signal.SIGINT, group=True)  # what a terminal's Ctrl-C sends
    assert seconds < STOP_WITHIN and process.returncode == 130, (seconds, process.returncode, stderr[-2000:])
    assert "stopped by SIGINT: the benchmark flow run is marked Crashed" in stderr
    assert not [pid for pid in below if _alive(pid)]
    assert _flow_run_states(tmp_path / "home") == ["CRASHED"]
    assert ArtifactStore(config.store).verify().ok
    finished = _made(config.store, ("dataset", "episode", "backbone", "specialize", "generate"))

    again = run_flow(benchmark, config=config.with_overrides(["student.training.steps=3"]))  # raises unless completed
    cached = sum(run.state.name == "Cached" for run in again.task_runs)
    made = _made(config.store, ("dataset", "episode", "backbone", "specialize", "generate"))
    assert {key: made[key] for key in finished} == finished  # what the stopped run finished was reused
    assert cached > 0 and finished  # (a task may write several artifacts: specialisations come per unit)


FLOW_PROCESS = """
import sys
from flows.distill import distill
from tint_core.pipeline.config import DistillAppConfig
from tint_core.pipeline.requests import DistillRequest
config = DistillAppConfig.from_yaml(sys.argv[1])
distill(DistillRequest.of(config), config)
"""


def test_a_flow_runs_own_process_stops_on_sigterm(prefect_server, tmp_path, support_folder, started):
    """As a worker's flow-run process is stopped (a cancellation, `docker stop`, a pod's termination): SIGTERM to
    the process running the flow, against a real server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL

    config = app_config(tmp_path, support_folder).with_overrides(["student.training.steps=1000000"])
    config.to_yaml(tmp_path / "app.yaml")
    env = own_home_env(tmp_path / "home", migrated=False, PREFECT_API_URL=PREFECT_API_URL.value())
    process = started([sys.executable, "-c", FLOW_PROCESS, str(tmp_path / "app.yaml")], env, session=False)
    _wait_for_step(process, config.store, "label")
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < STOP_WITHIN and process.returncode in (-signal.SIGTERM, 143), stderr[-2000:]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["distill"])))
    stopped = [run for run in runs if run.parameters.get("config", {}).get("store") == config.store]
    assert [run.state.type.value for run in stopped] == ["CRASHED"]
    assert ArtifactStore(config.store).verify().ok and not ArtifactStore(config.store).list(step="distill")


FLOW_LOSING_ITS_INTERRUPT = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal: a pytest-xdist worker ignores SIGINT,
                                                          # and its children inherit that
from prefect import flow
from flows.stopping import stoppable
from tint_core.stopping import check_stop

@flow(name=sys.argv[1])
@stoppable
def losing_its_interrupt() -> None:
    try:
        os.kill(os.getpid(), int(sys.argv[2]))
        time.sleep(30)
    except BaseException:
        pass  # the signal's KeyboardInterrupt or TerminationSignal lost on its way, as in a wait inside a library
    check_stop()  # what reaches the body instead: a stopped step's StopRequested

losing_its_interrupt()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_runs_state_is_crashed_even_when_a_steps_stop_error_reaches_the_flow_first(prefect_server, tmp_path,
                                                                                            started, signum):  # fmt: skip
    """Seen once in the main job's Ctrl-C test: the interrupt was lost and the run ended Failed on a step's
    StopRequested. A stop is a crash of the run, whichever error reaches the flow's body first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL

    name = f"losing-its-interrupt-{signum.name.lower()}-{tmp_path.name}"
    env = own_home_env(tmp_path / "home", migrated=False, PREFECT_API_URL=PREFECT_API_URL.value())
    process = started([sys.executable, "-c", FLOW_LOSING_ITS_INTERRUPT, name, str(int(signum))], env, session=False)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, stderr[-2000:]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])))
    assert [run.state.type.value for run in runs] == ["CRASHED"], [(run.state.type, run.state.message) for run in runs]
