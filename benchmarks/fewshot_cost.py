"""What the few-shot half costs per episode at the GPU configuration, measured on this machine's CPU.

    python benchmarks/fewshot_cost.py [--config examples/sd15-gpu.yaml] [--batch 16] [--repeats 3]

The teacher and the student of the configuration are built at their real shapes with random weights (no download):
FLOPs per image come from ``torch.utils.flop_counter``; seconds per image from a few timed batches (median of
``--repeats``, after one warm-up) on the CPU, with torch's default threads. The episode's work follows from the
configuration: the teacher labels every method's images (N · M per method), every method's student trains
``student.training.steps`` steps of (batch + N · K) images, and scores N · Q queries. The per-episode totals are
extrapolated from those rates: a plan, not a measurement of a run (issue 19).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from tint_core.fewshot.backbones import FeatureExtractor
from tint_core.pipeline.config import BenchmarkConfig


def flops(step, images: torch.Tensor) -> float:
    """FLOPs of ``step(images)`` per image."""
    with FlopCounterMode(display=False) as counter:
        step(images)
    return counter.get_total_flops() / len(images)


def seconds(step, images: torch.Tensor, repeats: int) -> float:
    """Median wall seconds of ``step(images)`` per image, after one warm-up call."""
    step(images)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step(images)
        times.append(time.perf_counter() - started)
    return statistics.median(times) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).parents[1] / "examples" / "sd15-gpu.yaml")
    parser.add_argument("--batch", type=int, default=16, help="images per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per figure (median)")
    args = parser.parse_args()
    config = BenchmarkConfig.from_yaml(args.config)
    torch.manual_seed(0)
    teacher_config = config.teacher.model.backbone.updated(weights=None)  # the real shape, random weights
    student_config = config.student.model.backbone.updated(weights=None)
    teacher = FeatureExtractor.from_config(teacher_config).eval()
    student = FeatureExtractor.from_config(student_config)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    images = torch.rand(args.batch, 3, student_config.input_size, student_config.input_size)

    @torch.no_grad()
    def label(batch: torch.Tensor) -> None:
        teacher(batch)

    def train(batch: torch.Tensor) -> None:
        student.train()
        optimizer.zero_grad()
        student(batch).pow(2).mean().backward()  # a loss on the features: the head's cost is negligible
        optimizer.step()

    @torch.no_grad()
    def score(batch: torch.Tensor) -> None:
        student.eval()
        student(batch)

    rates = {}
    for name, step in (("label (teacher forward)", label), ("distil (student training step)", train),
                       ("evaluate (student forward)", score)):  # fmt: skip
        rates[name] = (flops(step, images), seconds(step, images, args.repeats))

    n, k, q = config.episodes.n_way, config.episodes.k_shot, config.episodes.n_query
    m = config.generator.generation.images_per_class
    labelled = [method for method in config.methods if method != "supports_only"]
    steps, batch = config.student.training.steps, config.student.training.batch_size
    images_per_episode = {
        "label (teacher forward)": len(labelled) * n * m,
        "distil (student training step)": sum(steps * (n * k + (batch if method != "supports_only" else 0))
                                             for method in config.methods),  # fmt: skip
        "evaluate (student forward)": len(config.methods) * n * q,
    }
    print(f"{args.config.name}: {n}-way {k}-shot, M = {m}, {len(config.methods)} methods, {steps} steps of "
          f"{batch} + {n * k} images; teacher {teacher_config.name} at {teacher_config.input_size} px, student "
          f"{student_config.name} at {student_config.input_size} px; CPU, {torch.get_num_threads()} threads\n")  # fmt: skip
    print("| stage | GFLOP per image | CPU ms per image | images per episode | CPU minutes per episode | "
          "PFLOP per episode |\n|---|---|---|---|---|---|")  # fmt: skip
    total_seconds = total_flops = 0.0
    for name, (per_flop, per_second) in rates.items():
        count = images_per_episode[name]
        total_seconds += count * per_second
        total_flops += count * per_flop
        print(f"| {name} | {per_flop / 1e9:.1f} | {1e3 * per_second:.1f} | {count:,} | {count * per_second / 60:.1f} | "
              f"{count * per_flop / 1e15:.3f} |")  # fmt: skip
    episodes = config.episodes.episodes
    print(f"| episode | | | | {total_seconds / 60:.1f} | {total_flops / 1e15:.3f} |\n")
    print(f"{episodes} episodes: {episodes * total_seconds / 3600:.0f} CPU hours, {episodes * total_flops / 1e18:.2f} "
          "EFLOP (teacher and student only; base pre-training and the diffusion half are not counted)")  # fmt: skip


if __name__ == "__main__":
    main()
