"""Speed of the generation engine: the faithful (reference-like) mode against the batched mode on the
same inputs, in one run. Prints each figure and their ratios; optionally writes them as JSON.

    python benchmarks/specialize.py --backbone tiny                       # CPU, seconds
    python benchmarks/specialize.py --backbone sd15-random --precision bf16  # GPU, SD 1.5 shapes

TI is timed over a few steps and NTI over a few of the schedule's timesteps; per-episode figures are
projected to the spec's episode (TI 5000 steps per class, NTI of every support over all timesteps).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from tint_core.diffusion import GenerationConfig, NullTextConfig, TextualInversionConfig, generate_images, load_backbone
from tint_core.diffusion.backbone import Backbone
from tint_core.diffusion.ddim import ddim_invert
from tint_core.diffusion.null_text import null_text_invert
from tint_core.diffusion.prompts import class_text_embeddings, null_text_embedding
from tint_core.diffusion.specialization import ClassSpecialization
from tint_core.diffusion.textual_inversion import train_tokens


def timed(backbone: Backbone, work: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``work`` and return its result and wall seconds, with the device synchronised on both ends."""
    synchronize = torch.cuda.synchronize if backbone.device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    result = work()
    synchronize()
    return result, time.perf_counter() - start


def make_supports(backbone: Backbone, classes: int, shots: int) -> list[torch.Tensor]:
    """Smooth random supports at the working size, one (K, 3, H, W) tensor per class."""
    generator = torch.Generator().manual_seed(0)
    size = backbone.working_size
    coarse = torch.rand(classes * shots, 3, 8, 8, generator=generator)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return list(images.clamp(0, 1).split(shots))


def time_textual_inversion(
    backbone: Backbone, images: list[torch.Tensor], steps: int, faithful: bool, cuda_graph: bool = True
) -> tuple[float, float, torch.Tensor]:
    """Seconds per optimisation step for all classes (faithful: per class, re-encoding; so ×classes),
    the fixed seconds a run pays once (setup, CUDA graph capture), and the learned vectors.

    The per-step figure is the difference between a run of 2×``steps`` and one of ``steps``, so fixed
    costs do not inflate it; both follow a warm-up run (which includes any compilation)."""
    latents = [backbone.encode(batch) for batch in images]
    words, seeds = ["object"] * len(latents), list(range(len(latents)))
    count = len(latents) if faithful else 1  # faithful: one class at a time; classes cost the same

    def run(num_steps: int) -> Any:
        config = TextualInversionConfig(steps=num_steps, warmup_steps=1)
        if faithful:  # one class, re-encoding its support every step
            return train_tokens(backbone, latents[:1], words[:1], seeds[:1], config, images=images[:1])
        return train_tokens(backbone, latents, words, seeds, config, cuda_graph=cuda_graph)

    run(steps)
    result, short = timed(backbone, lambda: run(steps))
    _, long = timed(backbone, lambda: run(2 * steps))
    per_step = max(long - short, 0.0) / steps
    return per_step * count, max(short - per_step * steps, 0.0) * count, result.vectors


def invert_supports(
    backbone: Backbone, images: torch.Tensor, config: NullTextConfig, timed_steps: int
) -> tuple[Any, float]:
    """DDIM + null-text inversion of ``images`` together; returns (NTI result, latents) and the seconds
    the full schedule takes (NTI runs only ``timed_steps`` timesteps; its time is scaled up)."""
    latents = backbone.encode(images)
    vector = backbone.token_vector(backbone.word_token_id("object"))
    text = class_text_embeddings(backbone, "A photo of an {}", ["object"] * len(images), vector.expand(len(images), -1))
    text = text.detach()
    timesteps = backbone.timesteps(config.num_steps)
    null = null_text_embedding(backbone)
    run = min(timed_steps, len(timesteps))
    trajectory, inversion_seconds = timed(backbone, lambda: ddim_invert(backbone, latents, text, timesteps))
    result, nti_seconds = timed(backbone, lambda: null_text_invert(
        backbone, trajectory[-(run + 1):], text, null, timesteps[:run], config))  # fmt: skip
    return (result, latents), inversion_seconds + nti_seconds * len(timesteps) / run


def time_generation(backbone: Backbone, count: int, batch_size: int, nti: NullTextConfig) -> float:
    """Seconds per TINT image (25 guided steps + decode) at ``batch_size`` images per batch."""
    steps = backbone.timesteps(nti.num_steps)
    spec = ClassSpecialization(
        class_name="bench", token="<bench>", init_word="object", prompt_template="A photo of an {}",
        token_vector=backbone.token_vector(backbone.word_token_id("object")),
        inverted_latents=torch.randn(2, *backbone.latent_shape),
        null_embeddings=null_text_embedding(backbone).cpu().expand(2, len(steps), -1, -1).clone(),
        timesteps=steps, guidance_scale=nti.guidance_scale, support_size=(64, 64),
        latent_mse=torch.zeros(2), psnr=torch.zeros(2), backbone=backbone.identity,
    )  # fmt: skip
    generate_images(backbone, [spec], GenerationConfig(images_per_class=batch_size), batch_size=batch_size)  # warm-up
    _, seconds = timed(backbone, lambda: generate_images(
        backbone, [spec], GenerationConfig(images_per_class=count), batch_size=batch_size))  # fmt: skip
    return seconds / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny", help="'tiny', 'sd15-random', or a checkpoint folder / hub id")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="batched mode precision")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--ti-steps", type=int, default=10, help="TI steps timed per mode")
    parser.add_argument("--episode-ti-steps", type=int, default=5000, help="TI steps per class of a real episode")
    parser.add_argument("--nti-timesteps", type=int, default=25, help="timesteps of the schedule timed for NTI")
    parser.add_argument("--faithful-supports", type=int, default=1, help="supports inverted one by one")
    parser.add_argument("--faithful-images", type=int, default=2)
    parser.add_argument("--images", type=int, default=32, help="images generated in batched mode")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch in batched generation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet in batched mode")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True

    backbone = load_backbone(args.backbone, device=args.device, precision="fp32")
    nti = NullTextConfig()
    images = make_supports(backbone, args.classes, args.shots)
    supports = torch.cat(images)
    figures: dict[str, Any] = {
        "backbone": backbone.identity,
        "device": torch.cuda.get_device_name() if backbone.device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "classes": args.classes,
        "shots": args.shots,
        "batched_precision": args.precision,
        "batched_compiled": args.compile,
    }

    def report(key: str, value: float, unit: str) -> None:
        figures[key] = value
        print(f"{key:<42} {value:12.4f} {unit}", flush=True)

    # 1. faithful mode: fp32, batch 1, re-encoding every TI step
    seconds, fixed, _ = time_textual_inversion(backbone, images, args.ti_steps, True)
    report("faithful_ti_s_per_step_all_classes", seconds, "s")
    report("faithful_ti_fixed_s", fixed, "s")
    invert_supports(backbone, supports[:1], nti, 1)  # warm-up
    faithful_nti = 0.0
    for index in range(args.faithful_supports):
        _, seconds = invert_supports(backbone, supports[index : index + 1], nti, args.nti_timesteps)
        faithful_nti += seconds
    report("faithful_nti_s_per_support", faithful_nti / args.faithful_supports, "s")
    report("faithful_generation_s_per_image", time_generation(backbone, args.faithful_images, 1, nti), "s")

    # 2. batched mode
    backbone.to(dtype=args.precision)
    if args.compile:
        backbone.compile_unet()
    seconds, fixed, graph_vectors = time_textual_inversion(backbone, images, args.ti_steps, False)
    report("batched_ti_s_per_step_all_classes", seconds, "s")
    report("batched_ti_fixed_s", fixed, "s")
    if backbone.device.type == "cuda":
        seconds, _, eager_vectors = time_textual_inversion(backbone, images, args.ti_steps, False, cuda_graph=False)
        report("batched_ti_eager_s_per_step_all_classes", seconds, "s")
        report("ti_graph_vs_eager_max_abs_difference", float((graph_vectors - eager_vectors).abs().max()), "")
    _, seconds = timed(backbone, lambda: invert_supports(backbone, supports, nti, 1))  # warm-up, compilation
    report("batched_inversion_first_call_s", seconds, "s")
    (result, _), seconds = invert_supports(backbone, supports, nti, args.nti_timesteps)
    report("batched_nti_s_per_support", seconds / len(supports), "s")
    figures["batched_nti_mean_inner_steps"] = float(result.inner_steps.float().mean())
    report("batched_generation_s_per_image", time_generation(backbone, args.images, args.batch_size, nti), "s")

    # 3. ratios and the projected episode
    steps, count = args.episode_ti_steps, len(supports)
    faithful_episode = (steps * figures["faithful_ti_s_per_step_all_classes"] + figures["faithful_ti_fixed_s"]
                        + count * figures["faithful_nti_s_per_support"])  # fmt: skip
    batched_episode = (steps * figures["batched_ti_s_per_step_all_classes"] + figures["batched_ti_fixed_s"]
                       + count * figures["batched_nti_s_per_support"])  # fmt: skip
    print()
    report("ti_speedup", figures["faithful_ti_s_per_step_all_classes"] / figures["batched_ti_s_per_step_all_classes"], "×")
    report("nti_speedup", figures["faithful_nti_s_per_support"] / figures["batched_nti_s_per_support"], "×")
    report("generation_speedup",
           figures["faithful_generation_s_per_image"] / figures["batched_generation_s_per_image"], "×")  # fmt: skip
    report("faithful_episode_min", faithful_episode / 60, "min")
    report("batched_episode_min", batched_episode / 60, "min")
    report("episode_speedup", faithful_episode / batched_episode, "×")
    report("batched_images_per_s", 1 / figures["batched_generation_s_per_image"], "images/s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
