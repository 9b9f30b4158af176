"""Pipeline test helpers: a small benchmark configuration on the bundled digits and the tiny random backbone, and
running a flow until Prefect has recorded every task run."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from prefect import Flow

from tests.figures import FIGURES
from tint_core.export.config import ExportConfig
from tint_core.fewshot.config import DistillConfig, StudentConfig, TeacherConfig
from tint_core.pipeline import BenchmarkConfig, DistillAppConfig, StudentSetup, TeacherSetup
from tint_core.pipeline.presets import smoke_config
from tint_core.store import ArtifactStore

torch.set_num_threads(1)  # tiny models: a second thread gains little and fights the flow's worker threads

timings: list[str] = FIGURES["pipeline runs"]  # one line per labelled run, printed at the end of the session


def _without_prefect_settings() -> dict[str, str]:
    """This process's environment less its Prefect settings (the session's server, home, logging)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}


@functools.cache
def migrated_database() -> Path:
    """An empty Prefect database that this Prefect has migrated to its schema: made once per machine and Prefect
    version (a run's test processes share it), copied by whoever needs one and never written again. Migrating one
    costs about 19 s of CPU."""
    import prefect

    from tests.debian_base import CACHE, made_once

    def migrate(database: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="prefect-migrating-") as home:
            env = _without_prefect_settings() | {"PREFECT_HOME": home}
            subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env,
                           check=True, capture_output=True, timeout=300)  # fmt: skip
            shutil.copyfile(Path(home) / "prefect.db", database)

    return made_once(CACHE / f"prefect-{prefect.__version__}-migrated.db", migrate)


def own_home_env(home: Path, *, migrated: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a ``tint`` command run as a person runs it on a machine of their own: none of this process's
    Prefect settings, a Prefect home of its own (so an embedded server of its own), then ``extra``.

    ``migrated``: the home starts with a copy of an empty database Prefect has already migrated, as every home has
    after its first run; ``False`` gives a home as a first run finds it. The embedded server's UI is off, as no test
    opens a browser on it, and so is its registration of block types (no test reads them; saving a block registers
    its own type). Each costs a fresh home's server seconds of CPU (measured: the migrations about 5 s, the block
    types 2.5 s of the 10 s a migrated home's server takes to start) that the suite's dozen and a half such commands
    would spend again and again.
    """
    home.mkdir(parents=True, exist_ok=True)
    if migrated and not (home / "prefect.db").exists():
        shutil.copyfile(migrated_database(), home / "prefect.db")
    return _without_prefect_settings() | {
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false", "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
        **extra}  # fmt: skip


def small_config(store: str, **changes: object) -> BenchmarkConfig:
    """The smoke preset (the demo's shape at test scale on tiny random-weight models) in ``store``."""
    config = smoke_config(store)
    return config.updated(**changes) if changes else config


_SMOKE = smoke_config("unused")
TINY_GENERATOR, TINY_TEACHER, TINY_STUDENT = (_SMOKE.generator, _SMOKE.teacher.model.backbone,
                                              _SMOKE.student.model.backbone)  # fmt: skip


@dataclass
class Run:
    """A finished flow run: its result, every task run Prefect recorded, and how long it took."""

    outcome: object
    task_runs: list
    seconds: float

    def executed(self) -> Counter:
        """Task name → how many of its runs executed (were not served from the cache)."""
        return Counter(run.name.rsplit("-", 1)[0] for run in self.task_runs if run.state.name != "Cached")

    @property
    def all_cached(self) -> bool:
        return all(run.state.name == "Cached" for run in self.task_runs)


def run_flow(flow: Flow, *args: object, label: str | None = None, **kwargs: object) -> Run:
    """Run a flow, then wait until Prefect has recorded every task run it submitted in a final state."""
    from flows.records import wait_for_task_runs

    started = time.perf_counter()
    state = flow(*args, **kwargs, return_state=True)
    outcome = state.result()
    runs = wait_for_task_runs(state.state_details.flow_run_id, outcome.task_runs)
    seconds = time.perf_counter() - started
    if label:
        timings.append(
            f"{label}: {seconds:.1f} s, {len(runs)} task runs, {sum(r.state.name == 'Cached' for r in runs)} cached"
        )
    return Run(outcome, runs, seconds)


def app_config(tmp_path, folder) -> DistillAppConfig:
    """The application on the tiny models: supports in ``folder``, student and store under ``tmp_path``."""
    return DistillAppConfig(
        supports=str(folder), output=str(tmp_path / "student"), store=str(tmp_path / "store"), image_size=16,
        generator=TINY_GENERATOR, teacher=TeacherSetup(model=TeacherConfig(backbone=TINY_TEACHER)),
        student=StudentSetup(model=StudentConfig(backbone=TINY_STUDENT), pretrain=None,
                             training=DistillConfig(steps=2, batch_size=8)),
        export=ExportConfig(repeats=3, batch=8),
    )  # fmt: skip


@dataclass(frozen=True)
class Undisturbed:
    """The small benchmark of TINT against the supports only, run without a fault: what disturbed runs must give."""

    config: BenchmarkConfig
    digests: dict[str, list[str]]  # content_digests of its store
    results: str  # the digest of its results artifact


def undisturbed_run(tmp_path_factory) -> Undisturbed:
    """The undisturbed run the killed, flaky and containerised runs of several test files are compared with, computed
    once per session: in this process, on the session's server (the caller holds ``prefect_server``), by whichever
    pytest-xdist worker asks first (the others wait for it, then read it; measured, each computation of its own cost
    a file 15-30 s of CPU)."""
    from flows.benchmark import benchmark
    from tests.debian_base import made_once
    from tint_core.pipeline.runs import find_run

    session = tmp_path_factory.getbasetemp()
    folder = (session.parent if os.environ.get("PYTEST_XDIST_WORKER") else session) / "undisturbed"
    config = small_config(str(folder / "store"), methods=["supports_only", "tint"])

    def compute(summary: Path) -> None:
        run_flow(benchmark, config=config)
        summary.write_text(json.dumps({"digests": content_digests(config.store),
                                       "results": find_run(config.store).results.digest}))  # fmt: skip

    summary = json.loads(made_once(folder / "summary.json", compute).read_text())
    return Undisturbed(config, summary["digests"], summary["results"])


LOCATED = ("dataset", "episode")  # their content names where the digits images are written: under each store


def content_digests(store: str) -> dict[str, list[str]]:
    """Step → the sorted content digests of its artifacts (keys differ with the store's location, digests not;
    the indexes of the images, which name their folder, count only)."""
    found: dict[str, list[str]] = {}
    for manifest in ArtifactStore(store).list():
        found.setdefault(manifest.step, []).append("located" if manifest.step in LOCATED else manifest.digest)
    return {step: sorted(digests) for step, digests in found.items()}
