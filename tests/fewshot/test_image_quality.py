"""Precision and recall of an image set by k-nearest-neighbour manifolds: known answers on constructed sets."""

import pytest
import torch

from tint_core.evaluation.quality import NO_CLASS, episode_quality, knn_radii, precision_recall


def _cloud(n: int, seed: int, dim: int = 8) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_the_radius_is_the_distance_to_the_kth_other_point():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(points, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(points, 3).tolist() == [7.0, 6.0, 4.0, 7.0]
    with pytest.raises(ValueError, match="k = 4 needs at least 5 vectors"):
        knn_radii(points, 4)


def test_identical_sets_have_precision_and_recall_one():
    real = _cloud(50, 0)
    assert precision_recall(real, real.clone(), k=3) == (1.0, 1.0)


def test_a_set_collapsed_onto_one_real_image_is_precise_but_covers_almost_nothing():
    real = _cloud(50, 0)
    precision, recall = precision_recall(real, real[7].expand(20, -1).clone(), k=3)
    assert precision == 1.0
    assert recall == pytest.approx(1 / 50)  # the balls have radius 0: only that image itself is covered


def test_a_set_shifted_away_from_the_real_images_has_low_precision():
    real = _cloud(100, 0)
    shifted = _cloud(100, 1) + 6.0  # far outside the real cloud (unit variance per dimension)
    precision, recall = precision_recall(real, shifted, k=3)
    assert precision == 0.0 and recall == 0.0
    same_distribution = precision_recall(real, _cloud(100, 2), k=3)
    assert min(same_distribution) > 0.5  # a fresh draw of the same distribution is mostly on the manifold


def test_episode_quality_judges_each_image_against_its_own_class():
    real = torch.cat([_cloud(30, 0), _cloud(30, 1) + 10.0])  # two classes, far apart
    labels = torch.tensor([0] * 30 + [1] * 30)
    right = episode_quality(real, labels, real.clone(), labels.clone(), ["a", "b"], k=3)
    assert (right.precision, right.recall) == (1.0, 1.0)
    swapped = episode_quality(real, labels, real.clone(), 1 - labels, ["a", "b"], k=3)
    assert swapped.precision == 0.0 and swapped.recall == 0.0  # real-looking images of the wrong class are off-class
    assert swapped.precision_per_class == {"a": 0.0, "b": 0.0}


def test_images_made_for_no_class_count_as_precise_on_any_class():
    real = torch.cat([_cloud(30, 0), _cloud(30, 1) + 10.0])
    labels = torch.tensor([0] * 30 + [1] * 30)
    only_b = real[30:].clone()
    quality = episode_quality(real, labels, only_b, torch.full((30,), NO_CLASS), ["a", "b"], k=3)
    assert quality.precision == 1.0 and quality.recall == pytest.approx(0.5)
    assert quality.recall_per_class == {"a": 0.0, "b": 1.0} and quality.precision_per_class == {}
    with pytest.raises(ValueError, match="either every generated image has an intended class or none"):
        episode_quality(real, labels, only_b, torch.tensor([NO_CLASS] + [1] * 29), ["a", "b"], k=3)
