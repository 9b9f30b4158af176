"""The students' training budget: the rule that chose ``DistillConfig.steps``, applied on the bundled digits.

    python benchmarks/student_budget.py [--episodes 10] [--seed 1000] [--out outputs/student-budget]

The rule (docs/fewshot.md, "The training budget"), fixed before any novel-class result was looked at:

1. pilot episodes: ``--episodes`` five-way episodes for each K in {1, 5} of the novel digits, drawn with the episode
   seed ``--seed`` (1000; the benchmarks score seeds 0 and 1). Only their supports are read, never a query;
2. for every candidate budget S in 25, 50, …, 1600, train the preset's supports-only student (pre-trained on the
   base digits; the preset's optimiser, one-cycle schedule over S steps and augmentation) for S steps.
   L_K(S) = its support cross-entropy over the last 10% of the steps, averaged over the pilot episodes;
3. the budget is the smallest S with L_K(S) − L_K(1600) ≤ 0.05 nats for every K: the point where the supports-only
   training loss stops falling. Every method then trains for that many steps.

Prints a Markdown table of L_K(S) and the chosen budget; writes budget.json under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tint_core.data import EpisodeSampler, FewShotDataset, write_digits_dataset
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.config import DistillConfig, StudentConfig
from tint_core.fewshot.distill import train_student

CANDIDATES = (25, 50, 100, 200, 400, 800, 1600)
TOLERANCE = 0.05  # nats of support cross-entropy above the longest budget's
TAIL = 0.1  # the share of the last steps whose mean loss is the final loss


def final_loss(losses: list[float]) -> float:
    """Mean of the last ``TAIL`` share of a run's per-step losses (at least one step)."""
    tail = losses[-max(1, round(TAIL * len(losses))) :]
    return sum(tail) / len(tail)


def smallest_converged_budget(loss_by_budget: dict[int, float], tolerance: float = TOLERANCE) -> int:
    """The smallest budget whose final loss is within ``tolerance`` of the largest budget's."""
    floor = loss_by_budget[max(loss_by_budget)]
    return min(budget for budget, loss in loss_by_budget.items() if loss - floor <= tolerance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=10, help="pilot episodes per K")
    parser.add_argument("--seed", type=int, default=1000, help="episode seed of the pilot (not a test seed)")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--out", type=Path, default=Path("outputs/student-budget"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # 1. the digits and the preset's student, pre-trained on the base digits (cached under --out)
    data_url = str(args.out / "digits")
    dataset = (FewShotDataset.from_image_folder(data_url) if (args.out / "digits").exists()
               else write_digits_dataset(data_url, size=recipe.SIZE))  # fmt: skip
    weights = args.out / "student.safetensors"
    if not weights.exists():
        recipe.pretrain_backbone(dataset, recipe.student_backbone(), recipe.student_pretrain(15), weights)
    student = StudentConfig(backbone=recipe.student_backbone().updated(weights=str(weights)))

    # 2. every candidate budget on every pilot episode: supports only, no query is loaded
    losses: dict[int, dict[int, float]] = {}
    for k_shot in args.shots:
        sampler = EpisodeSampler(dataset, "novel", 5, k_shot, 15, args.seed)
        per_budget: dict[int, list[float]] = {budget: [] for budget in CANDIDATES}
        for episode_id in range(args.episodes):
            episode = sampler.sample(episode_id)
            supports, _ = dataset.load(episode.support_paths)
            for budget in CANDIDATES:
                config = DistillConfig(steps=budget, augment=recipe.DIGITS_AUGMENT)
                _, curves = train_student(student, supports, episode.support_labels, config)
                per_budget[budget].append(final_loss(curves.curves["support_loss"]))
        losses[k_shot] = {budget: sum(values) / len(values) for budget, values in per_budget.items()}

    # 3. the rule
    chosen = {k_shot: smallest_converged_budget(by_budget) for k_shot, by_budget in losses.items()}
    budget = max(chosen.values())
    seconds = time.perf_counter() - started
    print("| steps S | " + " | ".join(f"L_{k}(S), {k}-shot (nats)" for k in losses) + " |")
    print("|---:|" + "---:|" * len(losses))
    for candidate in CANDIDATES:
        print(f"| {candidate} | " + " | ".join(f"{losses[k][candidate]:.4f}" for k in losses) + " |")
    print(f"\nsmallest S within {TOLERANCE} nats of S = {CANDIDATES[-1]}: "
          + ", ".join(f"{k}-shot {s}" for k, s in chosen.items()) + f"; budget {budget} steps ({seconds:.0f} s)")  # fmt: skip
    (args.out / "budget.json").write_text(json.dumps({
        "rule": {"candidates": CANDIDATES, "tolerance_nats": TOLERANCE, "tail": TAIL, "episodes": args.episodes,
                 "episode_seed": args.seed},
        "final_loss": {str(k): {str(s): v for s, v in by.items()} for k, by in losses.items()},
        "chosen": {str(k): s for k, s in chosen.items()}, "budget": budget, "seconds": seconds,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
