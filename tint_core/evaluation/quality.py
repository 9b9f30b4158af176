"""Precision and recall of an image set against real images, by k-nearest-neighbour manifolds (Kynkäänniemi et al.,
"Improved precision and recall metric for assessing generative models", 2019).

The manifold of a set of feature vectors is the union of balls, one around each vector, whose radius is the distance
to its k-th nearest neighbour in the set. Precision is the fraction of generated vectors inside the real manifold
(are the images like real ones?); recall is the fraction of real vectors inside the generated manifold (do the
images cover what real ones show?). High precision with low recall: specific but not diverse; the reverse: diverse
but off-class.

In an episode each generated image is meant for one class and is compared with that class's real images; images
meant for no class (a pool of base-class images) count as precise inside any class's manifold.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel

NO_CLASS = -1  # the intended class of an image made for no class in particular


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each of (n, D) vectors to its k-th nearest other vector of the set: (n,)."""
    if features.ndim != 2:
        raise ValueError(f"expected (n, D) features, got shape {tuple(features.shape)}")
    if not 1 <= k < features.shape[0]:
        raise ValueError(f"k = {k} needs at least {k + 1} vectors in the set, got {features.shape[0]}")
    distances = torch.cdist(features, features)  # (n, n), 0 on the diagonal
    return distances.sort(dim=1).values[:, k]  # index 0 is the vector itself


def inside_manifold(points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each of (m, D) ``points`` lies in a ball of (n, D) ``manifold`` with (n,) ``radii``: (m,) bool."""
    return (torch.cdist(points, manifold) <= radii.unsqueeze(0)).any(dim=1)


def precision_recall(real: torch.Tensor, generated: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Precision and recall of (m, D) ``generated`` against (n, D) ``real`` features."""
    precision = inside_manifold(generated, real, knn_radii(real, k)).float().mean()
    recall = inside_manifold(real, generated, knn_radii(generated, k)).float().mean()
    return float(precision), float(recall)


class SetQuality(BaseModel):
    """Precision and recall of one episode's image set: over all its images, and per class."""

    k: int
    precision: float
    recall: float
    precision_per_class: dict[str, float]  # generated images meant for the class (absent for images of no class)
    recall_per_class: dict[str, float]


def episode_quality(real: torch.Tensor, real_labels: torch.Tensor, generated: torch.Tensor, intended: torch.Tensor,
                    class_names: list[str], k: int = 3) -> SetQuality:  # fmt: skip
    """Precision and recall of an episode's image set, class by class.

    Args:
        real: (n, D) features of the episode classes' real images; real_labels: (n,) their classes.
        generated: (m, D) features of the image set; intended: (m,) the class each image was made for, or
            ``NO_CLASS`` for every image when none was made for a class.
        class_names: the episode's classes, by label.
        k: the neighbour whose distance is a ball's radius.

    Returns:
        Precision over all generated images, recall over all real images, and both per class.
    """
    if bool((intended == NO_CLASS).any()) and not bool((intended == NO_CLASS).all()):
        raise ValueError("either every generated image has an intended class or none has")
    unintended = bool((intended == NO_CLASS).all())
    real_radii = torch.empty(len(real))
    for label in range(len(class_names)):
        rows = real_labels == label
        real_radii[rows] = knn_radii(real[rows], k)
    precise = torch.zeros(len(generated), dtype=torch.bool)
    covered = torch.zeros(len(real), dtype=torch.bool)
    for label in range(len(class_names)):
        real_rows = real_labels == label
        if unintended:  # precise on any class's manifold; any image may cover any class
            precise |= inside_manifold(generated, real[real_rows], real_radii[real_rows])
            made = generated
        else:
            rows = intended == label
            made = generated[rows]
            precise[rows] = inside_manifold(made, real[real_rows], real_radii[real_rows])
        covered[real_rows] = inside_manifold(real[real_rows], made, knn_radii(made, k))
    per_class_precision = {} if unintended else {
        name: float(precise[intended == label].float().mean()) for label, name in enumerate(class_names)
    }  # fmt: skip
    return SetQuality(
        k=k, precision=float(precise.float().mean()), recall=float(covered.float().mean()),
        precision_per_class=per_class_precision,
        recall_per_class={name: float(covered[real_labels == label].float().mean())
                          for label, name in enumerate(class_names)},
    )  # fmt: skip
