"""Does TINT help on classes the diffusion model never saw? The digits backbone (trained on digits 0-4) on novel
5-way episodes of digits 5-9, through the benchmark flow, every student under one training budget.

    python benchmarks/digits_tint.py [--shots 1 5] [--pilot 10] [--max-minutes 60] [--episode-seed 1]
                                     [--out outputs/digits-tint] [--steps S]

1. the backbone: autoencoder PSNR on the novel digits, and how often images sampled from base captions are
   assigned to their caption's digit by the digits teacher;
2. per K: a pilot of ``--pilot`` episodes, then as many episodes as the planner asks for a ±2-point interval on
   every paired gain (each method against supports-only and against augmented supports), capped so that the
   setting's wall time stays within about ``--max-minutes`` at the pilot's time per episode. The same seeded
   episodes serve every method: supports only, augmented supports, a base-class pool, TI only, TINT at α = 1, 0.5
   and random, the real pool. Raising E only computes the new episodes: every step is cached in the store under
   ``--out``.

Prints Markdown; writes results.json under ``--out`` (results of shots not rerun are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from flows.benchmark import BenchmarkOutcome, benchmark
from flows.records import wait_for_task_runs
from tint_core.data import write_digits_dataset
from tint_core.diffusion import load_backbone
from tint_core.diffusion.digits_backbone import autoencoder_psnr, caption_images
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.config import TeacherConfig
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


def run(k_shot: int, episodes: int, args: argparse.Namespace) -> tuple[BenchmarkOutcome, float, float]:
    """One benchmark run: its outcome, wall seconds and CPU seconds (every thread of this process)."""
    started, cpu = time.perf_counter(), time.process_time()
    config = digits_tint_config(k_shot, episodes, store=str(args.out / "store"), seed=args.episode_seed)
    if args.steps is not None:  # another budget, still the same for every method
        config = config.updated(student=config.student.updated(training=config.student.training.updated(
            steps=args.steps)))  # fmt: skip
    state = benchmark(config=config, return_state=True)
    outcome = state.result()
    wait_for_task_runs(state.state_details.flow_run_id, outcome.task_runs)
    return outcome, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--pilot", type=int, default=10, help="episodes of the pilot run")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="cap E so that a setting takes about this "
                        "long at the pilot's wall time per episode")  # fmt: skip
    parser.add_argument("--episode-seed", type=int, default=1, help="episode seed (the unequal-budget run used 0)")
    parser.add_argument("--out", type=Path, default=Path("outputs/digits-tint"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, help="every student's training budget (default: the preset's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() else {}  # other shots' results stay
    # In a thread of its own that then ends: torch's thread team of a thread that computed and lives on would take
    # the cores from the flow's device thread (tasks.runtime.on_device) for the rest of the run.
    with ThreadPoolExecutor(max_workers=1) as once:
        results["backbone"] = once.submit(backbone_figures, args.out).result()
    print(f"digits backbone: autoencoder PSNR on novel digits {results['backbone']['vae_psnr_novel_db']:.1f} dB; "
          f"{100 * results['backbone']['caption_recognition']:.1f}% of base-caption samples show their digit")  # fmt: skip
    for k_shot in args.shots:
        pilot, pilot_seconds, pilot_cpu = run(k_shot, args.pilot, args)
        wanted = {m: s.episodes_for_gain for m, s in pilot.summary.methods.items() if s.episodes_for_gain}
        planned = max(args.pilot, *wanted.values())
        affordable = args.pilot + int(max(0.0, 60 * args.max_minutes - pilot_seconds) / (pilot_seconds / args.pilot))
        episodes = min(planned, affordable)
        final, seconds, cpu = (run(k_shot, episodes, args) if episodes > args.pilot
                               else (pilot, 0.0, 0.0))  # fmt: skip
        name = f"{k_shot}-shot" + (f"-steps{args.steps}" if args.steps is not None else "")
        results[name] = {
            "episode_seed": args.episode_seed, "steps": args.steps or recipe.training().steps,
            "pilot_episodes": args.pilot, "planned_episodes": planned, "episodes": episodes, "capped": episodes < planned,
            "episodes_for_gain_at_pilot": wanted, "seconds": pilot_seconds + seconds, "cpu_seconds": pilot_cpu + cpu,
            "summary": final.summary.model_dump(mode="json"),
        }  # fmt: skip
        cap = f", capped at {episodes} (about {args.max_minutes:g} min)" if episodes < planned else ""
        print(f"\n{summary_markdown(final.summary)}\nplanned from the {args.pilot}-episode pilot: {planned} episodes "
              f"for ±2 points on every paired gain ({wanted}){cap}; {pilot_seconds + seconds:.0f} s wall, "
              f"{pilot_cpu + cpu:.0f} s CPU")  # fmt: skip
        saved.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
