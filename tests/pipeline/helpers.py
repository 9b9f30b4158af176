"""Pipeline test helpers: a small benchmark configuration on the bundled digits and the tiny random backbone, and
running a flow until Prefect has recorded every task run."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

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


LOCATED = ("dataset", "episode")  # their content names where the digits images are written: under each store


def content_digests(store: str) -> dict[str, list[str]]:
    """Step → the sorted content digests of its artifacts (keys differ with the store's location, digests not;
    the indexes of the images, which name their folder, count only)."""
    found: dict[str, list[str]] = {}
    for manifest in ArtifactStore(store).list():
        found.setdefault(manifest.step, []).append("located" if manifest.step in LOCATED else manifest.digest)
    return {step: sorted(digests) for step, digests in found.items()}
