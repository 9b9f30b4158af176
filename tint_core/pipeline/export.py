"""Package a stored student to ship (``tint_core.export``): any method's student of a recorded benchmark run, checked
and measured on its episode's queries, or the distill application's, checked on its supports.

The teacher it is measured against is the one the run used, adapted to the same episode.
"""

from __future__ import annotations

import copy
from pathlib import Path

from tint_core.export.card import AccuracyEvidence, ModelCard
from tint_core.export.config import ExportConfig
from tint_core.export.measure import ModelCost, measure_cost
from tint_core.export.package import ExportImages, TeacherModel, check_output, package_student
from tint_core.fewshot.config import TeacherConfig
from tint_core.fewshot.teacher import TeacherClassifier
from tint_core.pipeline.classify import adapted_teacher, load_distilled
from tint_core.pipeline.data import EpisodeData, load_episode
from tint_core.pipeline.resources import ModelCache, open_store
from tint_core.pipeline.results import BenchmarkSummary
from tint_core.pipeline.runs import RunRecord, find_run
from tint_core.store import ArtifactRef, ArtifactStore, canonical_json


def teacher_model(store: ArtifactStore, setup: TeacherConfig, prepared: ArtifactRef | None, episode: EpisodeData
                  ) -> TeacherModel:  # fmt: skip
    """The teacher adapted to the episode, as a CPU module of its own (the cached, shared extractor is copied)."""
    module = copy.deepcopy(TeacherClassifier(adapted_teacher(store, setup, prepared, episode))).cpu().eval()
    return TeacherModel(module, setup.backbone.input_size, setup.backbone.name)


def first_episode(record: RunRecord) -> str:
    return min(record.students, key=int)


def check_choice(record: RunRecord, method: str, episode: str | None) -> str:
    """The episode to export (the first when None); ValueError naming what the run has otherwise."""
    episode = first_episode(record) if episode is None else episode
    run = f"run {record.run_id[:8]} ({record.run_name})"
    if episode not in record.students:
        raise ValueError(f"{run} has no episode {episode!r}; it has episodes {', '.join(sorted(record.students, key=int))}")
    if method not in record.students[episode]:
        raise ValueError(f"{run} has no method {method!r}; it has {', '.join(record.students[episode])}")
    return episode


# The same models measured once per process: a long-lived process renders the report of unchanged runs again and again.
_COSTS = ModelCache(capacity=8)


def run_costs(record: RunRecord, repeats: int = 10, batch: int = 64) -> tuple[ModelCost, ModelCost]:
    """The size and torch CPU speed of the run's student and teacher (every method's student shares one
    architecture: the first episode's is measured; the teacher is adapted to that episode)."""
    opened = open_store(record.config.store)
    episode = first_episode(record)
    student_ref, teacher_ref = next(iter(record.students[episode].values())), record.backbones.get("teacher")

    def measure() -> tuple[ModelCost, ModelCost]:
        data = load_episode(opened, record.episodes[episode])
        student = load_distilled(opened, student_ref).eval()
        teacher = teacher_model(opened, record.config.teacher.model, teacher_ref, data)
        return (measure_cost(student, student.extractor.input_size, repeats, batch),
                measure_cost(teacher.module, teacher.input_size, repeats, batch))  # fmt: skip

    models = canonical_json([student_ref.model_dump(mode="json"), teacher_ref and teacher_ref.model_dump(mode="json"),
                             record.config.teacher.model.model_dump(mode="json"), record.episodes[episode].digest,
                             repeats, batch])  # fmt: skip
    return _COSTS.get(models, measure)


def export_run_student(store: str, run: str, method: str, output: str | Path, episode: str | None = None,
                       config: ExportConfig | None = None, overwrite: bool = False) -> ModelCard:  # fmt: skip
    """Export the student ``method`` trained on ``episode`` (default: the first) of a recorded run.

    The export is checked against torch on the episode's queries, and int8 is judged on them; the card's accuracy
    is the method's over every episode of the run, beside the teacher's.
    """
    record = find_run(store, run)
    episode = check_choice(record, method, episode)
    check_output(Path(output).expanduser(), overwrite)  # before any work
    opened = open_store(store)
    data = load_episode(opened, record.episodes[episode])
    queries, labels = data.queries()
    summary = BenchmarkSummary.model_validate(opened.get(record.results)["summary"])
    student_ref = record.students[episode][method]
    teacher = teacher_model(opened, record.config.teacher.model, record.backbones.get("teacher"), data)
    evidence = AccuracyEvidence(
        student=summary.methods[method].accuracy, teacher=summary.teacher,
        images=f"the {len(labels)} queries of episode {episode} (never seen in training)",
        note=(f"This student was trained on episode {episode}; the interval is over the run's {summary.episodes} "
              f"episodes, each with its own student of this method ({summary.n_way}-way {summary.k_shot}-shot)."),
    )  # fmt: skip
    lineage = {
        "source": "benchmark run", "run_id": record.run_id, "run_name": record.run_name, "store": store,
        "method": method, "episode": episode,
        "artifacts": {"student": student_ref.key, "episode": record.episodes[episode].key,
                      "results": record.results.key, "teacher_score": record.teacher_scores[episode].key,
                      **{f"{name}_backbone": ref.key for name, ref in record.backbones.items()}},
        "configuration": record.config.model_dump(mode="json"),
    }  # fmt: skip
    title = f"{record.config.student.model.backbone.name} student of method {method}, episode {episode}"
    return package_student(load_distilled(opened, student_ref), opened.get(student_ref)["model"], teacher,
                           ExportImages(queries, labels, evidence.images), evidence, lineage, output, config, title,
                           overwrite)  # fmt: skip


def export_app_student(store: str, student: ArtifactRef, labels: ArtifactRef, supports: ArtifactRef,
                       teacher: TeacherConfig, prepared_teacher: ArtifactRef | None, output: str | Path,
                       config: ExportConfig, configuration: dict[str, object]) -> ModelCard:  # fmt: skip
    """Export the distill application's student into its output folder, checked on the supports (no held-out
    images exist: the card says what can be said instead)."""
    opened = open_store(store)
    data = load_episode(opened, supports)
    images, support_labels = data.supports()
    model = load_distilled(opened, student)
    agreement = opened.get(labels)["summary"]["agreement"]
    evidence = AccuracyEvidence(
        images=f"the {len(support_labels)} supports (the student trained on them: not a held-out accuracy)",
        note=("No held-out images exist in the application, so no accuracy can be claimed. The teacher put "
              f"{'—' if agreement is None else f'{100 * agreement:.0f}%'} of the synthetic training images in their "
              "intended class. Measure the student on images of your own before shipping it (or run the benchmark on "
              "a labelled dataset of the same kind)."),
    )  # fmt: skip
    lineage = {"source": "distill application", "store": store,
               "artifacts": {"student": student.key, "labels": labels.key, "supports": supports.key,
                             **({"teacher_backbone": prepared_teacher.key} if prepared_teacher else {})},
               "configuration": configuration}  # fmt: skip
    return package_student(model, opened.get(student)["model"], teacher_model(opened, teacher, prepared_teacher, data),
                           ExportImages(images, support_labels, evidence.images), evidence, lineage, output, config,
                           overwrite=True)  # fmt: skip


