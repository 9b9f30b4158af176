import logging

import pytest
import torch

from tint_core.data import EpisodeSampler
from tint_core.evaluation import summarize
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.run import run_episode, unlabelled_pool

logger = logging.getLogger(__name__)


@pytest.mark.slow
def test_distillation_on_unlabelled_novel_images_lifts_the_student_above_supports_only(digits, digits_backbones):
    config = recipe.run_config(str(digits_backbones.teacher), str(digits_backbones.student), steps=30)
    teacher = recipe.centred_teacher(digits, config.teacher)
    episodes = EpisodeSampler(digits, "novel", n_way=5, k_shot=1, n_query=15, seed=0).episodes(6)
    results = []
    for episode in episodes:
        pool = unlabelled_pool(digits, episode)
        assert not set(pool) & (set(episode.support_paths) | set(episode.query_paths))
        # The real images left over in the episode's classes (100 of each) stand in for synthetic ones.
        by_class = [[p for p in pool if f"/{label}/" in p][:100] for label in episode.classes]
        unlabelled, _ = digits.load([p for paths in by_class for p in paths])
        results.append(run_episode(episode, digits, teacher, config, unlabelled=unlabelled))
    student = summarize([r.student_accuracy for r in results])
    baseline = summarize([r.supports_only_accuracy for r in results])
    gain = summarize([r.student_accuracy - r.supports_only_accuracy for r in results])
    logger.warning("6 episodes, 5-way 1-shot: distilled %s, supports only %s, gain %s", student, baseline, gain)
    assert gain.mean - gain.half_width > 0, (student, baseline)
    assert all(r.n_unlabelled == 500 and r.distill_curves is not None for r in results)


def test_one_episode_reports_every_score_and_the_teacher_matches_its_own_forward(digits):
    from tint_core.fewshot.config import BackboneConfig, DistillConfig, EpisodeRunConfig, StudentConfig, TeacherConfig
    from tint_core.fewshot.teacher import PrototypeTeacher

    tiny = BackboneConfig(name="resnet12_tiny", input_size=16, model_kwargs={"img_size": 16})
    config = EpisodeRunConfig(
        teacher=TeacherConfig(backbone=tiny), student=StudentConfig(backbone=tiny),
        training=DistillConfig(steps=2, batch_size=16),
    )
    teacher = PrototypeTeacher.from_config(config.teacher)
    episode = EpisodeSampler(digits, "novel", n_way=3, k_shot=1, n_query=4, seed=1).sample(0)
    unlabelled, _ = digits.load(unlabelled_pool(digits, episode)[:20])
    result = run_episode(episode, digits, teacher, config, unlabelled=unlabelled)
    queries, _ = digits.load(episode.query_paths)
    expected = float((teacher(queries).argmax(1) == episode.query_labels).float().mean())
    assert result.teacher_accuracy == expected
    assert result.n_unlabelled == 20 and len(result.distill_curves.curves["kd_loss"]) == 2
    assert result.distill_curves.steps == result.supports_only_curves.steps == 2  # one budget for both students
    assert set(result.seconds) == {"load", "teacher", "distill", "supports_only"}
    assert torch.all(torch.tensor([result.student_accuracy, result.supports_only_accuracy]) >= 0)
