"""Does TINT help on classes the diffusion model never saw? The digits backbone (trained on digits 0-4) on novel
5-way episodes of digits 5-9, through the benchmark flow.

    python benchmarks/digits_tint.py [--shots 1 5] [--pilot 10] [--max-episodes 200] [--out outputs/digits-tint]
                                     [--distill-epochs E]

1. the backbone: autoencoder PSNR on the novel digits, and how often images sampled from base captions are
   assigned to their caption's digit by the digits teacher;
2. per K: a pilot of ``--pilot`` episodes, then as many episodes as the planner asks for a ±2-point interval on the
   paired gain of every generating method over supports-only (at most ``--max-episodes``). The same seeded
   episodes serve every method: supports only, TI only, TINT at α = 1, 0.5 and random, the real pool. Raising
   E only computes the new episodes: every step is cached in the store under ``--out``.

Prints Markdown; writes results.json under ``--out`` (results of shots not rerun are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from flows.benchmark import BenchmarkOutcome, benchmark
from flows.records import wait_for_task_runs
from tint_core.data import write_digits_dataset
from tint_core.diffusion import load_backbone
from tint_core.diffusion.digits_backbone import autoencoder_psnr, caption_images
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.teacher import TeacherConfig
from tint_core.pipeline.config import generator_method
from tint_core.pipeline.presets import digits_tint_config
from tint_core.pipeline.results import summary_markdown


def backbone_figures(out: Path) -> dict[str, float]:
    """Autoencoder PSNR on novel digits; fraction of caption samples the digits teacher assigns to their digit."""
    dataset = write_digits_dataset(str(out / "digits"), size=recipe.SIZE)
    weights = out / "teacher.safetensors"
    if not weights.exists():
        recipe.pretrain_backbone(dataset, recipe.teacher_backbone(), recipe.teacher_pretrain(15), weights)
    teacher = recipe.centred_teacher(dataset, TeacherConfig(backbone=recipe.teacher_backbone().updated(
        weights=str(weights))))  # fmt: skip
    base, labels, names = dataset.load_split("base")
    teacher.process_support_set(base, labels)
    backbone = load_backbone("digits", device="cpu")
    novel, _, _ = dataset.load_split("novel")
    per_class = 100
    images = caption_images(backbone, names, per_class)
    intended = torch.arange(len(names)).repeat_interleave(per_class)
    return {"vae_psnr_novel_db": float(autoencoder_psnr(backbone, novel).mean()),
            "caption_recognition": float((teacher(images).argmax(1) == intended).float().mean())}  # fmt: skip


def run(k_shot: int, episodes: int, out: Path, distill_epochs: int | None) -> tuple[BenchmarkOutcome, float]:
    started = time.perf_counter()
    config = digits_tint_config(k_shot, episodes, store=str(out / "store"))
    if distill_epochs is not None:  # an ablation: only the students of generated and real images train longer
        config = config.updated(student=config.student.updated(distill=config.student.distill.updated(
            epochs=distill_epochs)))  # fmt: skip
    state = benchmark(config, return_state=True)
    outcome = state.result()
    wait_for_task_runs(state.state_details.flow_run_id, outcome.task_runs)
    return outcome, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--pilot", type=int, default=10, help="episodes of the pilot run")
    parser.add_argument("--max-episodes", type=int, default=200, help="never plan more episodes than this")
    parser.add_argument("--out", type=Path, default=Path("outputs/digits-tint"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--distill-epochs", type=int, help="ablation: distillation epochs of the students trained "
                        "on unlabelled images (default: the preset's 10; supports-only keeps its 50 steps)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() else {}  # other shots' results stay
    results["backbone"] = backbone_figures(args.out)
    print(f"digits backbone: autoencoder PSNR on novel digits {results['backbone']['vae_psnr_novel_db']:.1f} dB; "
          f"{100 * results['backbone']['caption_recognition']:.1f}% of base-caption samples show their digit")  # fmt: skip
    for k_shot in args.shots:
        pilot, pilot_seconds = run(k_shot, args.pilot, args.out, args.distill_epochs)
        gains = {m: s.episodes_for_gain for m, s in pilot.summary.methods.items() if generator_method(m)}
        planned = min(args.max_episodes, max(args.pilot, *gains.values()))
        final, seconds = (run(k_shot, planned, args.out, args.distill_epochs) if planned > args.pilot
                          else (pilot, pilot_seconds))  # fmt: skip
        name = f"{k_shot}-shot" + (f"-distill{args.distill_epochs}" if args.distill_epochs is not None else "")
        results[name] = {"pilot_episodes": args.pilot, "planned_episodes": planned,
                                     "episodes_for_gain_at_pilot": gains, "seconds": pilot_seconds + seconds,
                                     "summary": final.summary.model_dump(mode="json")}  # fmt: skip
        print(f"\n{summary_markdown(final.summary)}\nplanned from the {args.pilot}-episode pilot: {planned} episodes "
              f"(±2 points on each paired gain: {gains}); {pilot_seconds + seconds:.0f} s")  # fmt: skip
        saved.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
