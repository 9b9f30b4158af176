import pytest
import torch

from tint_core.fewshot.augment import random_affine
from tint_core.fewshot.backbones import FeatureExtractor, create_backbone
from tint_core.fewshot.config import AugmentConfig, BackboneConfig, DistillConfig, PretrainConfig, StudentConfig
from tint_core.fewshot.distill import distill, kd_loss, train_student
from tint_core.fewshot.pretrain import dihedral_expand, pretrain_on_base

TINY = StudentConfig(backbone=BackboneConfig(name="resnet12_tiny", input_size=16, model_kwargs={"img_size": 16}))


def _supports(n_way=3, k_shot=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_way * k_shot, 3, 16, 16, generator=generator), torch.arange(n_way).repeat_interleave(k_shot)


def test_identity_augmentation_returns_the_images():
    images = torch.rand(5, 3, 12, 12)
    config = AugmentConfig(crop_scale_min=1.0, crop_ratio=1.0, hflip_probability=0.0)
    assert torch.allclose(random_affine(images, config, torch.Generator().manual_seed(0)), images, atol=1e-5)


def test_certain_flip_mirrors_every_image_and_augmentation_is_per_image_and_seeded():
    images = torch.rand(4, 3, 8, 8)
    flip = AugmentConfig(crop_scale_min=1.0, crop_ratio=1.0, hflip_probability=1.0)
    assert torch.allclose(random_affine(images, flip, torch.Generator()), images.flip(-1), atol=1e-5)
    config = AugmentConfig(rotation_degrees=30, shear_degrees=10)
    same = images[:1].expand(4, -1, -1, -1)
    a = random_affine(same, config, torch.Generator().manual_seed(1))
    assert not torch.allclose(a[0], a[1])  # each image its own parameters
    assert torch.equal(a, random_affine(same, config, torch.Generator().manual_seed(1)))


def test_dihedral_expansion_makes_eight_classes_per_class():
    images, labels = dihedral_expand(torch.rand(2, 1, 3, 3), torch.tensor([0, 1]))
    assert images.shape[0] == 16 and sorted(labels.tolist()) == list(range(16))
    assert torch.equal(images[labels.tolist().index(8 + 2)], torch.rot90(images[1], 2, dims=(-2, -1)))


def test_pretraining_learns_the_base_classes_and_is_deterministic():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 16, 16, generator=generator).repeat(4, 1, 1, 1)
    labels = torch.arange(4).repeat(4)
    config = PretrainConfig(epochs=6, batch_size=8, lr=0.05, seed=1,
                            augment=AugmentConfig(crop_scale_min=0.9, hflip_probability=0))
    runs = []
    for _ in range(2):
        extractor = FeatureExtractor(create_backbone("tint_convnet_tiny", img_size=16), 16)
        runs.append((pretrain_on_base(extractor, images, labels, config), extractor))
    (curves, first), (again, second) = runs
    assert curves.last("train_accuracy") == 1.0 and curves.last("loss") < curves.curves["loss"][0]
    assert curves == again
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters(), strict=True))


def test_training_never_draws_from_torch_s_global_rng():
    """Steps may run side by side in threads (tasks.runtime); one that drew from the global RNG would change the
    weights another builds under a seeded global RNG (tint_core.seeding), so every loop draws from its own."""
    images, labels = _supports(n_way=4, k_shot=2)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    extractor = FeatureExtractor(create_backbone("tint_convnet_tiny", img_size=16), 16)
    pretrain_on_base(extractor, images, labels, PretrainConfig(epochs=1, batch_size=4))
    student, _ = train_student(TINY, images, labels, DistillConfig(steps=2, batch_size=4), torch.rand(6, 3, 16, 16,
                               generator=torch.Generator().manual_seed(2)), torch.zeros(6, 4))  # fmt: skip
    assert torch.equal(torch.rand(4), expected)


def test_kd_loss_is_zero_for_equal_logits_and_matches_t_squared_kl():
    teacher, student = torch.randn(6, 4), torch.randn(6, 4)
    assert float(kd_loss(teacher, teacher, 3.0)) == pytest.approx(0.0, abs=1e-6)
    p, q = (teacher / 3).softmax(1), (student / 3).softmax(1)
    expected = 9 * (p * (p.log() - q.log())).sum(1).mean()
    assert float(kd_loss(student, teacher, 3.0)) == pytest.approx(float(expected), rel=1e-5)


def test_prototype_initialised_student_classifies_supports_like_a_prototype_classifier():
    supports, labels = _supports()
    student, _ = train_student(TINY, supports, labels, DistillConfig(steps=1, lr=1e-12))
    features = torch.nn.functional.normalize(student.extractor.embed(supports), dim=1)
    weights = torch.nn.functional.normalize(student.head.weight, dim=1)
    assert torch.allclose(student.predict(supports), 10.0 * features @ weights.T, atol=1e-4)


def test_distillation_is_deterministic_and_moves_the_student_towards_the_teacher():
    supports, labels = _supports()
    unlabelled = torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    teacher_logits = 10 * torch.nn.functional.one_hot(torch.arange(40) % 3, 3).float()
    config = DistillConfig(steps=18, batch_size=16, lr=3e-3, support_weight=0.5,
                           augment=AugmentConfig(crop_scale_min=0.9, hflip_probability=0))
    (a, curves_a), (b, curves_b) = (train_student(TINY, supports, labels, config, unlabelled, teacher_logits)
                                    for _ in range(2))
    assert curves_a == curves_b
    assert torch.equal(a.predict(unlabelled), b.predict(unlabelled))
    assert curves_a.steps == 18 and len(curves_a.curves["kd_loss"]) == 18
    assert sum(curves_a.curves["kd_loss"][-3:]) < sum(curves_a.curves["kd_loss"][:3])
    baseline, _ = train_student(TINY, supports, labels, config)

    def agreement(student):
        return float((student.predict(unlabelled).argmax(1) == teacher_logits.argmax(1)).float().mean())

    # The teacher's labels here are arbitrary, so only distillation can make the student agree with them.
    assert agreement(a) > agreement(baseline) + 0.3


def test_unlabelled_images_may_be_paths(tmp_path):
    from tint_core.images import encode_png

    supports, labels = _supports()
    images = (torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 255).round() / 255
    paths = []
    for i, image in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(encode_png(image))
        paths.append(str(tmp_path / f"{i}.png"))
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    config = DistillConfig(steps=3, batch_size=4)
    from_tensor = train_student(TINY, supports, labels, config, images, logits)[0].predict(supports)
    from_paths = train_student(TINY, supports, labels, config, paths, logits)[0].predict(supports)
    assert torch.allclose(from_tensor, from_paths, atol=1e-5)


def test_teacher_logits_must_match_the_unlabelled_images():
    supports, labels = _supports()
    student, _ = train_student(TINY, supports, labels, DistillConfig(steps=1))
    with pytest.raises(ValueError, match=r"teacher_logits must have shape \(5, 3\)"):
        distill(student, supports, labels, DistillConfig(), torch.rand(5, 3, 16, 16), torch.rand(5, 4))


def test_episode_configuration_round_trips_through_yaml(tmp_path):
    from tint_core.fewshot import digits_recipe as recipe
    from tint_core.fewshot.config import EpisodeRunConfig

    config = recipe.run_config("teacher.safetensors", "student.safetensors")
    config.to_yaml(tmp_path / "run.yaml")
    assert EpisodeRunConfig.from_yaml(tmp_path / "run.yaml") == config
    assert EpisodeRunConfig().teacher.scale == 10.0  # SPEC §7 default τ


def test_every_step_takes_an_equal_batch_and_every_image_is_seen_equally_often():
    from tint_core.fewshot.distill import unlabelled_batches

    batches = list(unlabelled_batches(10, 4, 15, torch.Generator().manual_seed(0)))  # 60 draws = 6 passes
    assert len(batches) == 15 and all(len(batch) == 4 for batch in batches)
    assert torch.bincount(torch.cat(batches), minlength=10).tolist() == [6] * 10
    small = list(unlabelled_batches(3, 64, 2, torch.Generator()))
    assert all(sorted(batch.tolist()) == [0, 1, 2] for batch in small)  # fewer images than a batch: each once


def test_supports_only_and_distilled_students_take_the_same_budget_of_steps():
    supports, labels = _supports()
    config = DistillConfig(steps=7, batch_size=5)
    _, alone = train_student(TINY, supports, labels, config)
    _, distilled = train_student(TINY, supports, labels, config, torch.rand(23, 3, 16, 16), torch.randn(23, 3))
    assert alone.steps == distilled.steps == 7
    assert len(alone.curves["support_loss"]) == len(distilled.curves["kd_loss"]) == 7 and "kd_loss" not in alone.curves


def test_strongly_augmented_copies_cycle_through_the_supports_and_are_seeded():
    from tint_core.fewshot import digits_recipe as recipe
    from tint_core.fewshot.config import StrongAugmentConfig
    from tint_core.fewshot.strong_augment import augmented_copies

    supports = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for config in (StrongAugmentConfig(), recipe.DIGITS_STRONG_AUGMENT):
        copies, source = augmented_copies(supports, 7, config, seed=1)
        assert copies.shape == (7, 3, 16, 16) and source.tolist() == [0, 1, 2, 0, 1, 2, 0]
        assert copies.min() >= 0 and copies.max() <= 1
        assert torch.equal(copies, augmented_copies(supports, 7, config, seed=1)[0])
        assert not torch.allclose(copies, augmented_copies(supports, 7, config, seed=2)[0])
        assert not torch.allclose(copies[0], copies[3])  # two copies of one support differ
    with pytest.raises(ValueError, match="count must be at least 1"):
        augmented_copies(supports, 0, StrongAugmentConfig(), seed=0)
