"""The main job's own process SIGKILLed at random moments (seeded trials), then run again: the rerun completes with
the undisturbed run's artifacts, digest for digest; what was complete before the rerun is reused, not remade; the
store verifies; no process of the killed command is left (its embedded server ends with it).

The killed runs are ``tint benchmark`` processes; the undisturbed run (the session's, shared with other files) and the
reruns are the same flow in this process (on the session's Prefect server), which costs a run's computation rather
than a process's start-up (the processes compute with one torch thread, as this one does: tests/conftest.py)."""

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.benchmark import benchmark
from tests.pipeline.helpers import Undisturbed, content_digests, own_home_env, run_flow, undisturbed_run
from tests.pipeline.test_stopping import _alive, _descendants
from tint_core.pipeline.runs import find_run
from tint_core.store import ArtifactStore

REPO = Path(__file__).parents[2]
TRIALS = 5
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _main_job(config_path: Path, home: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "benchmark", str(config_path)], cwd=REPO,
                            env=own_home_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


@pytest.fixture(scope="module")
def undisturbed(prefect_server, tmp_path_factory):
    return undisturbed_run(tmp_path_factory)


def _config(root: Path, undisturbed: Undisturbed):
    """The undisturbed run's configuration with a store under ``root``, written beside it for the command."""
    config = undisturbed.config.updated(store=str(root / "store"))
    config.to_yaml(root / "config.yaml")
    return config


@pytest.mark.parametrize("trial", range(TRIALS))
def test_the_main_job_killed_at_a_random_moment_reruns_to_the_undisturbed_artifacts(undisturbed, tmp_path, trial):
    config = _config(tmp_path, undisturbed)
    delay = random.Random(trial).uniform(4.0, 30.0)  # from the server's start-up to the last steps
    process = _main_job(tmp_path / "config.yaml", tmp_path / "home")
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    below = _descendants(process.pid)
    process.kill()
    process.communicate(timeout=60)
    time.sleep(3.0)  # the kernel's SIGTERM to the server, and its exit
    assert not [pid for pid in below if _alive(pid)], f"left running after SIGKILL at {delay:.1f} s"
    store = ArtifactStore(config.store)
    assert store.verify(quarantine=False).ok  # nothing partial or corrupt is visible
    before = {manifest.key: manifest.created for manifest in store.list()}

    run_flow(benchmark, config=config)  # raises if the rerun does not complete
    after = {manifest.key: manifest.created for manifest in store.list()}
    assert {key: after[key] for key in before} == before  # complete artifacts were reused, not remade
    assert content_digests(config.store) == undisturbed.digests, f"killed at {delay:.1f} s"
    assert find_run(config.store).results.digest == undisturbed.results
    assert store.verify(quarantine=False).ok
