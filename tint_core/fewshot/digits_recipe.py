"""The configuration used on the bundled digits (tests, demo, benchmark): one place, so all three agree.

Teacher: ``tint_convnet`` at 16×16 with spatial (flattened) features, pre-trained on base digits 0–4 with each of
the 8 rotations/reflections as a class of its own (40 classes) and small random affine maps; features are centred
on the mean base-image feature. Student: ``resnet12_tiny`` at 16×16, pre-trained with plain cross-entropy on the
5 base classes. Neither ever sees a novel label.

The recipe's values import no model code (the demo's configuration and the command line load fast); the helpers
that train import it when called.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tint_core.fewshot.config import (
    DEFAULT_STEPS,
    AugmentConfig,
    BackboneConfig,
    DistillConfig,
    EpisodeRunConfig,
    PretrainConfig,
    StrongAugmentConfig,
    StudentConfig,
    TeacherConfig,
)

if TYPE_CHECKING:
    from tint_core.data.datasets import FewShotDataset
    from tint_core.fewshot.backbones import FeatureExtractor
    from tint_core.fewshot.teacher import PrototypeTeacher

logger = logging.getLogger(__name__)

SIZE = 16
# Digits are white strokes on black: pad with zeros, never flip (a mirrored 7 is not a 7).
DIGITS_AUGMENT = AugmentConfig(
    crop_scale_min=0.7, rotation_degrees=15.0, shear_degrees=10.0, hflip_probability=0.0, padding="zeros"
)
# The augmented_supports control on digits: stronger geometry, elastic strokes, grey-level jitter; no colour, no flip.
DIGITS_STRONG_AUGMENT = StrongAugmentConfig(
    crop_scale_min=0.5, rotation_degrees=20.0, translate=0.1, shear_degrees=15.0, elastic_alpha=8.0,
    elastic_sigma=2.0, brightness=0.3, contrast=0.3, saturation=0.0, hue=0.0, hflip_probability=0.0,
)  # fmt: skip


def teacher_backbone(width_name: str = "tint_convnet") -> BackboneConfig:
    return BackboneConfig(
        name=width_name, input_size=SIZE, model_kwargs={"img_size": SIZE, "global_pool": "flatten"}
    )


def teacher_pretrain(epochs: int = 15) -> PretrainConfig:
    return PretrainConfig(epochs=epochs, lr=0.05, dihedral_classes=True, augment=DIGITS_AUGMENT)


def student_backbone() -> BackboneConfig:
    return BackboneConfig(name="resnet12_tiny", input_size=SIZE, model_kwargs={"img_size": SIZE})


def student_pretrain(epochs: int = 15) -> PretrainConfig:
    return PretrainConfig(epochs=epochs, lr=0.05, augment=DIGITS_AUGMENT)


def training(steps: int = DEFAULT_STEPS) -> DistillConfig:
    """Every student's training on a digits episode: the common budget, the digits augmentation."""
    return DistillConfig(steps=steps, augment=DIGITS_AUGMENT)


def run_config(teacher_weights: str, student_weights: str, steps: int = DEFAULT_STEPS) -> EpisodeRunConfig:
    """Episode configuration with both backbones loaded from the given pre-trained files."""
    return EpisodeRunConfig(
        teacher=TeacherConfig(backbone=teacher_backbone().updated(weights=teacher_weights)),
        student=StudentConfig(backbone=student_backbone().updated(weights=student_weights)),
        training=training(steps),
    )


def pretrain_backbone(
    dataset: FewShotDataset, backbone: BackboneConfig, config: PretrainConfig, path: str | Path
) -> FeatureExtractor:
    """Pre-train a backbone on the dataset's base split and save it as safetensors at ``path``."""
    from tint_core.fewshot.backbones import FeatureExtractor, save_backbone
    from tint_core.fewshot.pretrain import pretrain_on_base

    images, labels, _ = dataset.load_split("base", size=backbone.input_size)
    extractor = FeatureExtractor.from_config(backbone)
    curves = pretrain_on_base(extractor, images, labels, config)
    logger.info("pre-trained %s: final loss %.4f", backbone.name, curves.last("loss"))
    save_backbone(extractor.backbone, path, backbone.name, backbone.model_kwargs)
    return extractor


def centred_teacher(dataset: FewShotDataset, config: TeacherConfig) -> PrototypeTeacher:
    """Prototype teacher whose features are centred on the mean feature of the base images."""
    from tint_core.fewshot.teacher import PrototypeTeacher

    teacher = PrototypeTeacher.from_config(config)
    base, _, _ = dataset.load_split("base", size=config.backbone.input_size)
    teacher.centre = teacher.extractor.embed(base, config.batch_size).mean(0)
    return teacher


def pixel_teacher(dataset: FewShotDataset, size: int = SIZE, centred: bool = True) -> PrototypeTeacher:
    """The raw-pixel baseline: cosine prototypes on (optionally base-centred) pixels at ``size``."""
    from tint_core.fewshot.teacher import PrototypeTeacher

    config = TeacherConfig(
        backbone=BackboneConfig(name="tint_pixels", input_size=size, model_kwargs={"img_size": size})
    )
    return centred_teacher(dataset, config) if centred else PrototypeTeacher.from_config(config)
