"""Two people run benchmarks on one store at the same moment: the same configuration twice and an overlapping one
(everything up to the teacher's labels shared, other students). All complete; every artifact exists once and
verifies; every run has its record and its history entry."""

import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from tests.pipeline.helpers import own_home_env, small_config
from tint_core.pipeline.history import read_history, series_id
from tint_core.pipeline.runs import list_runs
from tint_core.store import ArtifactStore

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def test_three_benchmarks_at_once_on_one_store(prefect_server, tmp_path):
    store = str(tmp_path / "store")
    same = small_config(store, methods=["supports_only", "tint"])
    overlapping = same.with_overrides(["student.training.steps=4"])
    configs = {"a": same, "b": same, "c": overlapping}
    processes = {}
    for name, config in configs.items():
        config.to_yaml(tmp_path / f"{name}.yaml")
        # Each its own process, recording on the session's server (the store is what they share; three embedded servers
        # would cost 20 s of CPU to start and change nothing here).
        env = own_home_env(tmp_path / f"home-{name}", PREFECT_API_URL=PREFECT_API_URL.value())
        processes[name] = subprocess.Popen([sys.executable, "-m", "flows.cli", "benchmark", str(tmp_path / f"{name}.yaml")],
                                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    outputs = {name: process.communicate(timeout=900) for name, process in processes.items()}
    failed = {name: outputs[name][1][-6000:] for name, process in processes.items() if process.returncode != 0}
    if failed:
        pytest.fail("\n\n".join(f"run {name} failed:\n{error}" for name, error in failed.items()), pytrace=False)

    opened = ArtifactStore(store)
    manifests = opened.list()
    keys = [manifest.key for manifest in manifests]
    assert len(keys) == len(set(keys))  # each artifact once
    report = opened.verify(quarantine=False)
    assert report.ok and len(report.valid) == len(keys)
    runs = list_runs(store)
    twins = [run for run in runs if run.config == same]
    other = [run for run in runs if run.config == overlapping]
    assert len(runs) == 3 and len(twins) == 2 and len(other) == 1
    assert twins[0].results == twins[1].results and twins[0].students == twins[1].students  # one set of artifacts
    # Everything up to the labels is shared; only the students (and what follows them) differ.
    assert twins[0].units == other[0].units and twins[0].labels == other[0].labels
    assert twins[0].students != other[0].students
    for config, count in ((same, 2), (overlapping, 1)):
        history = read_history(store, series_id(config))
        assert len(set(history.column("run_id").to_pylist())) == count
    assert opened.gc(older_than=0).files == 0  # no writer left anything behind
