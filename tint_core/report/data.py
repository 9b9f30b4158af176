"""Everything a run report shows, read from the store through the run's record (nothing is recomputed)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from tint_core.export.measure import ModelCost
from tint_core.pipeline.data import load_episode
from tint_core.pipeline.export import run_costs
from tint_core.pipeline.history import SHOWN_RUNS, read_history
from tint_core.pipeline.resources import ModelCache, open_store
from tint_core.pipeline.results import BenchmarkSummary
from tint_core.pipeline.runs import RunRecord
from tint_core.report import figures
from tint_core.report.strips import class_strip
from tint_core.store import ArtifactRef, ArtifactStore

# Pictures drawn in this process, by what they show: a long-lived process (a worker, a schedule's reruns) renders the
# report of unchanged results again and again, and drawing them was most of a cached rerun's time.
_PICTURES = ModelCache(capacity=32)


def _drawn(draw: Callable[..., bytes], *data: object) -> bytes:
    """``draw(*data)``, drawn once per process for the same data (in order: a method's colour follows it)."""
    return _PICTURES.get((draw.__name__, json.dumps(data, default=repr)), lambda: draw(*data))


@dataclass(frozen=True)
class StageTime:
    """One stage of the run: how many artifacts it returned, how many this run made, their compute time."""

    stage: str
    artifacts: int
    made_by_run: int
    seconds: float


@dataclass(frozen=True)
class UnitTime:
    """One specialisation unit: its classes and the compute time of their specialisations and images."""

    episode: str
    classes: list[str]
    seconds: float


@dataclass
class RunReport:
    """A run's report, ready to render: numbers, tables and PNG figures."""

    record: RunRecord
    summary: BenchmarkSummary
    strips: list[tuple[str, bytes]] = field(default_factory=list)  # (class name, PNG) for the first episode
    psnr: dict[str, list[float]] = field(default_factory=dict)  # class → each support's reconstruction PSNR (dB)
    curves: bytes | None = None
    quality: bytes | None = None  # precision–recall scatter, one point per method
    stage_times: list[StageTime] = field(default_factory=list)
    unit_times: list[UnitTime] = field(default_factory=list)
    times: bytes | None = None
    history: pa.Table | None = None
    history_plot: bytes | None = None
    costs: tuple[ModelCost, ModelCost] | None = None  # (student, teacher): size and CPU speed, measured at rendering
    costs_missing: str = ""  # why they could not be measured here (e.g. the teacher's weights are on another machine)


def _refs_by_stage(record: RunRecord) -> Iterator[ArtifactRef]:
    """Every artifact of the record, in pipeline order."""
    yield record.dataset
    yield from record.episodes.values()
    yield from record.backbones.values()
    for unit in record.units:
        yield from unit.specializations
    for unit in record.units:
        for refs in unit.images.values():
            yield from refs
    for by_method in record.controls.values():
        for refs in by_method.values():
            yield from refs
    yield from record.teacher_scores.values()
    for table in (record.labels, record.quality, record.students, record.scores):
        for by_method in table.values():
            yield from by_method.values()
    yield record.results


def _timings(store: ArtifactStore, record: RunRecord) -> tuple[list[StageTime], list[UnitTime]]:
    manifests = {ref.key: store.inspect(ref.key) for ref in _refs_by_stage(record)}
    stages: dict[str, list] = defaultdict(list)
    for manifest in manifests.values():
        stages[manifest.step].append(manifest)
    stage_times = [
        StageTime(stage, len(found), sum(manifest.created >= record.started for manifest in found),
                  sum(manifest.seconds or 0.0 for manifest in found))
        for stage, found in stages.items()
    ]  # fmt: skip
    unit_times = []
    for unit in record.units:
        refs = unit.specializations + [ref for refs in unit.images.values() for ref in refs]
        names = [str(manifests[ref.key].params.get("class_name", "?")) for ref in unit.specializations]
        unit_times.append(UnitTime(unit.episode, names, sum(manifests[ref.key].seconds or 0.0 for ref in refs)))
    return stage_times, unit_times


def _strips(store: ArtifactStore, record: RunRecord) -> tuple[list[tuple[str, bytes]], dict[str, list[float]]]:
    """The strip of every class of the first episode, and each class's reconstruction PSNR."""
    first = min(record.episodes, key=int)
    units = [unit for unit in record.units if unit.episode == first]
    if not units:
        return [], {}
    episode = load_episode(store, record.episodes[first])
    augmented = {store.get(ref)["meta"]["class_name"]: ref
                 for ref in record.controls.get(first, {}).get("augmented_supports", [])}  # fmt: skip
    strips, psnr = [], {}
    for unit in units:
        for position, (index, spec_ref) in enumerate(zip(unit.classes, unit.specializations, strict=True)):
            name = episode.classes[index].name
            samples = {method: refs[position] for method, refs in unit.images.items()}
            strip, values = class_strip(store, name, episode.class_supports(index), spec_ref, samples,
                                        augmented.get(name))  # fmt: skip
            strips.append((name, strip))
            if values:
                psnr[name] = values
    return strips, psnr


def _quality(summary: BenchmarkSummary) -> bytes | None:
    """Precision against recall of each method's images (mean ± 95% interval over episodes)."""
    points = {method: (result.precision, result.recall) for method, result in summary.ordered()
              if result.precision is not None and result.recall is not None}  # fmt: skip
    return _drawn(figures.precision_recall, points) if points else None


def _curves(store: ArtifactStore, record: RunRecord) -> bytes | None:
    """Each method's training curves (per step), averaged over the episodes."""
    by_method: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for by_student in record.students.values():
        for method, ref in by_student.items():
            for metric, values in store.get(ref)["curves"]["curves"].items():
                if any(values):  # a KD loss of 0 throughout means there was no unlabelled set
                    by_method[method][metric].append(values)
    if not by_method:
        return None
    means = {
        method: {metric: [sum(epoch) / len(epoch) for epoch in zip(*runs, strict=False)] for metric, runs in metrics.items()}
        for method, metrics in by_method.items()
    }  # fmt: skip
    return _drawn(figures.curves, means)


def _history(store: str, record: RunRecord) -> tuple[pa.Table | None, bytes | None]:
    table = read_history(store, record.series)
    if table.num_rows == 0:
        return None, None
    rows = table.to_pylist()
    runs = sorted({row["time"] for row in rows})[-SHOWN_RUNS:]
    methods = list(dict.fromkeys(row["method"] for row in rows))
    points = {(row["time"], row["method"]): (row["accuracy"], row["half_width"]) for row in rows}
    series = {method: [points.get((run, method)) for run in runs] for method in methods}
    return table, _drawn(figures.history, runs, series)


def collect_report(record: RunRecord, with_history: bool = True) -> RunReport:
    """Read what the report of ``record`` shows from its store and draw the figures."""
    store = open_store(record.config.store)
    summary = BenchmarkSummary.model_validate(store.get(record.results)["summary"])
    report = RunReport(record=record, summary=summary)
    report.strips, report.psnr = _strips(store, record)
    report.curves = _curves(store, record)
    report.quality = _quality(summary)
    report.stage_times, report.unit_times = _timings(store, record)
    report.times = _drawn(figures.stage_times, {stage.stage: stage.seconds for stage in report.stage_times})
    if with_history:
        report.history, report.history_plot = _history(record.config.store, record)
    try:
        report.costs = run_costs(record)
    except (FileNotFoundError, ValueError) as error:  # a report must still render where the models cannot be loaded
        report.costs_missing = str(error)
    return report
