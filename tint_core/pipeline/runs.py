"""What one benchmark run used and made: a record in the store that reports are rendered from, again at any time.

Every run appends one entry ``logs/benchmark-runs/<run id>.json``, never rewritten. It holds the configuration and a
reference to every artifact the run's steps returned (computed or reused), so a report needs only the store.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tint_core.pipeline.config import BenchmarkConfig
from tint_core.pipeline.resources import open_store
from tint_core.store import ArtifactRef

RUNS = "benchmark-runs"


class RunNotFoundError(ValueError):
    """No recorded run matches what was asked for."""


class UnitRecord(BaseModel):
    """One specialisation unit: its classes' specialisations and, per generating method, their image sets."""

    episode: str
    classes: list[int]
    specializations: list[ArtifactRef]
    images: dict[str, list[ArtifactRef]] = Field(description="method → one image set per class of the unit")


class RunRecord(BaseModel):
    """A benchmark run: when, with what configuration, and every artifact its steps returned."""

    run_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    run_name: str = ""
    started: datetime
    finished: datetime
    series: str = Field(description="what makes runs comparable (tint_core.pipeline.history.series_id)")
    config: BenchmarkConfig
    dataset: ArtifactRef
    episodes: dict[str, ArtifactRef]
    backbones: dict[str, ArtifactRef] = Field(default_factory=dict, description="teacher/student → prepared backbone")
    units: list[UnitRecord]
    controls: dict[str, dict[str, list[ArtifactRef]]] = Field(
        default_factory=dict,
        description="episode → method → its images that are not generated: augmented supports (one image set per "
        "class) or a pool of real images (the real pool is also the reference of the images' quality)",
    )
    teacher_scores: dict[str, ArtifactRef]
    labels: dict[str, dict[str, ArtifactRef]] = Field(description="episode → method → soft labels")
    quality: dict[str, dict[str, ArtifactRef]] = Field(
        default_factory=dict, description="episode → method → precision and recall of its images"
    )
    students: dict[str, dict[str, ArtifactRef]] = Field(description="episode → method → distilled student")
    scores: dict[str, dict[str, ArtifactRef]] = Field(description="episode → method → the student's score")
    results: ArtifactRef

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


def save_run(record: RunRecord) -> str:
    """Append the record to its store's run log; return the entry's name."""
    name = f"{record.run_id}.json"
    open_store(record.config.store).append_log(RUNS, name, record.model_dump_json(indent=1).encode())
    return name


def list_runs(store: str) -> list[RunRecord]:
    """Every recorded run of ``store``, oldest first."""
    records = [RunRecord.model_validate_json(data) for data in open_store(store).read_log(RUNS).values()]
    return sorted(records, key=lambda record: record.started)


def find_run(store: str, run: str = "latest") -> RunRecord:
    """The run whose id (or a unique prefix of it) or name is ``run``; ``latest`` is the newest.

    Raises:
        RunNotFoundError: no such run, or the prefix matches several (the message lists what there is).
    """
    records = list_runs(store)
    if not records:
        raise RunNotFoundError(f"store {store} has no recorded benchmark run (runs are recorded by the benchmark flow)")
    if run == "latest":
        return records[-1]
    matches = [record for record in records if record.run_id.startswith(run) or record.run_name == run]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{record.run_id[:8]} ({record.run_name})" for record in records[-10:])
    if not matches:
        raise RunNotFoundError(f"no run {run!r} in store {store}; the latest are: {known}")
    raise RunNotFoundError(f"{run!r} matches {len(matches)} runs in store {store}: give more of the run id")
