"""A class's picture strip from the store: its supports, their null-text reconstructions (with PSNR), its augmented
copies and each method's first samples. The run report and the application's pictures draw the same strips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from tint_core.report import figures
from tint_core.store import ArtifactRef, ArtifactStore

SAMPLES_SHOWN = 6  # images per row of samples or augmented copies


def class_strip(store: ArtifactStore, name: str, supports: Sequence[torch.Tensor], specialization: ArtifactRef,
                samples: Mapping[str, ArtifactRef], augmented: ArtifactRef | None = None) -> tuple[bytes, list[float]]:  # fmt: skip
    """The class's strip as PNG bytes, and each support's reconstruction PSNR in dB (empty when not stored).

    Args:
        supports: the class's support images, (3, H, W) in [0, 1].
        specialization: the class's specialisation artifact.
        samples: method → the class's image-set artifact.
        augmented: the class's augmented_supports artifact, if any.
    """
    rows = [("supports", list(supports), [f"support {k}" for k in range(len(supports))])]
    psnr: list[float] = []
    stored = store.get(specialization)
    if "reconstructions" in stored.names:
        recon = stored["reconstructions"]
        psnr = [float(value) for value in recon.metadata.column("psnr").to_pylist()]
        rows.append(("null-text\nreconstruction", recon.tensors(), [f"{value:.1f} dB" for value in psnr]))
    if augmented is not None:
        copies = store.get(augmented)["images"]
        sources = copies.metadata.column("support").to_pylist()
        shown = range(min(SAMPLES_SHOWN, len(copies)))
        rows.append(("augmented\nsupports", [copies.tensor(i) for i in shown], [f"of support {sources[i]}" for i in shown]))  # fmt: skip
    for method, ref in samples.items():
        generated = store.get(ref)["images"]
        alphas = generated.metadata.column("alpha").to_pylist()
        shown = range(min(SAMPLES_SHOWN, len(generated)))
        rows.append((method, [generated.tensor(i) for i in shown], [f"α {alphas[i]:.2f}" for i in shown]))
    return figures.class_strip(name, rows), psnr
