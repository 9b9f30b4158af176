"""The generation engine's images plug into an episode's distillation, for TINT and the TI-only baseline."""

import pytest

from tint_core.data import EpisodeSampler
from tint_core.diffusion import (
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
    generate_images,
    load_backbone,
    specialize,
)
from tint_core.fewshot.config import BackboneConfig, DistillConfig, EpisodeRunConfig, StudentConfig, TeacherConfig
from tint_core.fewshot.run import run_episode
from tint_core.fewshot.teacher import PrototypeTeacher


@pytest.mark.parametrize("method", ["tint", "text_only"])
def test_synthetic_images_of_an_episode_are_distilled_on(digits, method):
    episode = EpisodeSampler(digits, "novel", n_way=3, k_shot=1, n_query=4, seed=2).sample(0)
    supports, _ = digits.load(episode.support_paths)
    backbone = load_backbone("tiny", device="cpu")
    config = SpecializationConfig(
        textual_inversion=TextualInversionConfig(steps=3, warmup_steps=1), null_text=NullTextConfig(num_steps=3)
    )
    specs = specialize(backbone, {label: [supports[i]] for i, label in enumerate(episode.classes)}, config, seed=0)
    generated = generate_images(backbone, list(specs.values()), GenerationConfig(images_per_class=4), method=method)
    assert generated.images.shape == (12, 3, 16, 16)  # back at the supports' size
    assert list(specs) == episode.classes  # labels of generated images index the episode's classes

    tiny = BackboneConfig(name="resnet12_tiny", input_size=16, model_kwargs={"img_size": 16})
    run = EpisodeRunConfig(
        teacher=TeacherConfig(backbone=tiny), student=StudentConfig(backbone=tiny),
        training=DistillConfig(steps=2, batch_size=8),
    )  # fmt: skip
    result = run_episode(episode, digits, PrototypeTeacher.from_config(run.teacher), run, unlabelled=generated.images)
    assert result.n_unlabelled == 12 and result.student_accuracy is not None
