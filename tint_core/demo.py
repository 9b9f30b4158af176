"""The main job on embedded defaults: specialise the tiny built-in backbone to five digit classes and
generate synthetic images of each, caching every step in a local artifact store.

    python -m tint_core.demo [--out outputs/demo]

Runs on a CPU in about a minute; nothing is downloaded (digits ship with scikit-learn). The tiny
backbone has random weights, so its images are not digits: the demo shows the machinery, end to end.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from tint_core.data.datasets import FewShotDataset
from tint_core.data.digits import write_digits_dataset
from tint_core.data.episodes import EpisodeSampler
from tint_core.diffusion import (
    BackboneConfig,
    ClassSpecialization,
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
    generate_images,
    load_backbone,
    specialize,
)
from tint_core.images import tensor_to_pil
from tint_core.store import ArtifactStore, ImageSet, artifact_key, sha256_hex

logger = logging.getLogger("tint.demo")

DEMO_CONFIG = SpecializationConfig(
    backbone=BackboneConfig(source="tiny", device="cpu"),
    textual_inversion=TextualInversionConfig(steps=100, warmup_steps=10),
    null_text=NullTextConfig(num_steps=25),
)


def digit_supports(folder: Path, shots: int, seed: int) -> dict[str, list[torch.Tensor]]:
    """One novel-class episode of the bundled digits (5-way, ``shots`` supports per class), written under ``folder``."""
    dataset = write_digits_dataset(str(folder)) if not folder.exists() else FewShotDataset.from_image_folder(str(folder))
    episode = EpisodeSampler(dataset, "novel", n_way=5, k_shot=shots, n_query=0, seed=seed).sample(0)
    images, _ = dataset.load(episode.support_paths)
    return {f"digit {label}": list(images[i * shots : (i + 1) * shots]) for i, label in enumerate(episode.classes)}


def save_grid(rows: list[torch.Tensor], path: Path) -> None:
    """One row of images per class: (n, 3, H, W) tensors side by side."""
    grid = torch.cat([torch.cat(list(row), dim=2) for row in rows], dim=1)
    tensor_to_pil(grid).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="folder for the store and the image grid")
    parser.add_argument("--shots", type=int, default=2, help="supports per class")
    parser.add_argument("--images", type=int, default=6, help="synthetic images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(str(out / "store"))
    config = DEMO_CONFIG
    backbone = load_backbone(**config.backbone.model_dump())
    supports = digit_supports(out / "digits", args.shots, args.seed)

    # 1. specialise (cached: a second run with the same inputs reuses the stored result)
    support_digest = sha256_hex(torch.stack([s for v in supports.values() for s in v]).numpy().tobytes())
    key = artifact_key(step="specialize", version=1, params=config, inputs={"supports": support_digest},
                       backbone=backbone.identity)  # fmt: skip
    started = time.perf_counter()
    if store.exists(key):
        artifact = store.get(key)
        specs = [ClassSpecialization.from_tensors(artifact[f"class{i}"], artifact[f"class{i}_meta"],
                                                  artifact["tokens"][f"class{i}"])  # fmt: skip
                 for i in range(len(supports))]
        logger.info("specialisations found in the store (%s)", key[:12])
    else:
        def progress(stage: str, done: int, total: int) -> None:
            if done == total or done % max(1, total // 4) == 0:
                logger.info("%s %d/%d", stage, done, total)

        specs = list(specialize(backbone, supports, config, seed=args.seed, progress=progress).values())
        parts: dict[str, object] = {"tokens": {f"class{i}": spec.token_vector for i, spec in enumerate(specs)}}
        for i, spec in enumerate(specs):
            parts[f"class{i}"], parts[f"class{i}_meta"] = spec.to_tensors()
        store.put(key, parts, step="specialize", params=config, inputs={"supports": support_digest})
    logger.info("specialised %d classes in %.1f s", len(specs), time.perf_counter() - started)

    # 2. generate
    generation = GenerationConfig(images_per_class=args.images)
    generated = generate_images(backbone, specs, generation, seed=args.seed)
    store.put(
        artifact_key(step="generate", version=1, params=generation, inputs={"specialize": store.ref(key).digest},
                     backbone=backbone.identity),  # fmt: skip
        {"images": ImageSet.from_tensors(generated.images, {"label": generated.labels.tolist(),
                                                            "support": generated.support_index.tolist()})},
        step="generate", params=generation,
    )  # fmt: skip

    # 3. report
    rows = [torch.cat([torch.stack(supports[spec.class_name]), generated.images[generated.labels == i]])
            for i, spec in enumerate(specs)]  # fmt: skip
    save_grid(rows, out / "grid.png")
    for spec in specs:
        logger.info("%s: token %s, reconstruction per support: latent MSE %s, PSNR %s dB", spec.class_name,
                    spec.token, [round(v, 3) for v in spec.latent_mse.tolist()], [round(v, 1) for v in spec.psnr.tolist()])  # fmt: skip
    logger.info("supports (first %d columns) and synthetic images: %s", args.shots, out / "grid.png")
    logger.info("artifacts: %s", ", ".join(f"{m.step}" for m in store.list()))


if __name__ == "__main__":
    main()
