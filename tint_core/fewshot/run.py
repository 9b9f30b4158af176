"""One episode end to end: teacher on the supports, soft labels, distilled student, supports-only baseline, scores.

The generator is not called here: unlabelled images (TINT, TI-only, or a real pool standing in for them) come in
as a tensor, so the pipeline can hand over whatever produced them.
"""

from __future__ import annotations

import copy
import logging
import time

import torch
from pydantic import BaseModel

from tint_core.baselines import supports_only_student
from tint_core.data.datasets import FewShotDataset
from tint_core.data.episodes import Episode
from tint_core.evaluation.accuracy import episode_accuracy
from tint_core.fewshot.config import EpisodeRunConfig, TeacherConfig
from tint_core.fewshot.distill import train_student
from tint_core.fewshot.teacher import PrototypeTeacher
from tint_core.fewshot.training import TrainingCurves

logger = logging.getLogger(__name__)


class EpisodeResult(BaseModel):
    """Query accuracies of one episode and how they were reached."""

    episode_id: int
    seed: int
    n_way: int
    k_shot: int
    n_query: int
    n_unlabelled: int
    teacher_accuracy: float
    student_accuracy: float | None
    supports_only_accuracy: float
    distill_curves: TrainingCurves | None
    supports_only_curves: TrainingCurves
    seconds: dict[str, float]


def unlabelled_pool(dataset: FewShotDataset, episode: Episode) -> list[str]:
    """Images of the episode's classes that are neither supports nor queries (a real stand-in for synthetic ones)."""
    used = set(episode.support_paths) | set(episode.query_paths)
    return [path for label in episode.classes for path in dataset.paths(episode.split, label) if path not in used]


def adapt_teacher(
    teacher: PrototypeTeacher, supports: torch.Tensor, labels: torch.Tensor, config: TeacherConfig
) -> PrototypeTeacher:
    """The teacher adapted to a support set: prototypes, after fine-tuning a copy when ``config.finetune_steps`` > 0.

    The given teacher's backbone is never changed, so one loaded backbone can serve many episodes.
    """
    if config.finetune_steps > 0:
        teacher = copy.deepcopy(teacher)
        teacher.finetune(supports, labels, config)
    else:
        teacher.process_support_set(supports, labels)
    return teacher


def run_episode(
    episode: Episode,
    dataset: FewShotDataset,
    teacher: PrototypeTeacher,
    config: EpisodeRunConfig,
    unlabelled: torch.Tensor | None = None,
) -> EpisodeResult:
    """Score teacher, distilled student and supports-only student on the episode's queries.

    Args:
        episode: supports and queries (paths on ``dataset``).
        dataset: where the images are read.
        teacher: a prototype teacher; it is copied first when ``config.teacher.finetune_steps`` > 0.
        config: see :class:`EpisodeRunConfig`.
        unlabelled: (M, 3, H, W) images in [0, 1] to distil on; None skips distillation.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    # 1. images
    supports, _ = dataset.load(episode.support_paths, size=config.load_size)
    queries, _ = dataset.load(episode.query_paths, size=config.load_size)
    support_labels, query_labels = episode.support_labels, episode.query_labels
    lap("load")
    # 2. teacher: prototypes (after optional fine-tuning), query accuracy, soft labels
    teacher = adapt_teacher(teacher, supports, support_labels, config.teacher)
    teacher_accuracy = episode_accuracy(teacher(queries, config.teacher.batch_size), query_labels)
    teacher_logits = None if unlabelled is None else teacher.soft_labels(unlabelled, config.teacher.batch_size)
    lap("teacher")
    # 3. distilled student
    student_accuracy, distill_curves = None, None
    if unlabelled is not None:
        student, distill_curves = train_student(
            config.student, supports, support_labels, config.training, unlabelled, teacher_logits
        )
        student_accuracy = episode_accuracy(student.predict(queries), query_labels)
    lap("distill")
    # 4. supports-only baseline
    baseline, baseline_curves = supports_only_student(config.student, supports, support_labels, config.training)
    supports_only_accuracy = episode_accuracy(baseline.predict(queries), query_labels)
    lap("supports_only")
    return EpisodeResult(
        episode_id=episode.episode_id, seed=episode.seed, n_way=episode.n_way, k_shot=episode.k_shot,
        n_query=episode.n_query, n_unlabelled=0 if unlabelled is None else unlabelled.shape[0],
        teacher_accuracy=teacher_accuracy, student_accuracy=student_accuracy,
        supports_only_accuracy=supports_only_accuracy, distill_curves=distill_curves,
        supports_only_curves=baseline_curves, seconds=seconds,
    )
