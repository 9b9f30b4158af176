"""Few-shot core on the bundled digits: teacher vs raw pixels, then distilled vs supports-only students.

    python benchmarks/digits_fewshot.py --episodes 600 --distill-episodes 100 --out /tmp/digits_bench

1. write the digits (base 0–4, novel 5–9) and pre-train teacher and student backbones on the base split;
2. score the teacher and the raw-pixel baseline on the same novel 5-way K-shot episodes (K = 1, 5; Q = 15);
3. on a subset of those episodes, distil the student on the unused real images of the episode's classes (a
   stand-in for synthetic images) and train the supports-only baseline; report both with intervals;
4. report the variance decomposition and the planner's proposal for ±1 point.

Prints Markdown; writes results.json under --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from tint_core.data import EpisodeSampler, FewShotDataset, write_digits_dataset
from tint_core.evaluation import CostModel, decompose_variance, episode_accuracy, plan_evaluation, summarize
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.run import run_episode, unlabelled_pool

logger = logging.getLogger("digits_fewshot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/digits_bench"))
    parser.add_argument("--episodes", type=int, default=600, help="teacher-vs-pixels episodes per K")
    parser.add_argument("--distill-episodes", type=int, default=100, help="episodes per K with distillation")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. data and backbones (cached under --out)
    data_url = str(args.out / "digits")
    dataset = (FewShotDataset.from_image_folder(data_url) if (args.out / "digits").exists()
               else write_digits_dataset(data_url))
    teacher_path, student_path = args.out / "teacher.safetensors", args.out / "student.safetensors"
    start = time.process_time()
    if not teacher_path.exists():
        recipe.pretrain_backbone(dataset, recipe.teacher_backbone(), recipe.teacher_pretrain(args.teacher_epochs),
                                 teacher_path)
    if not student_path.exists():
        recipe.pretrain_backbone(dataset, recipe.student_backbone(), recipe.student_pretrain(args.student_epochs),
                                 student_path)
    pretrain_cpu = time.process_time() - start
    config = recipe.run_config(str(teacher_path), str(student_path))
    teacher = recipe.centred_teacher(dataset, config.teacher)
    pixels = {"raw": recipe.pixel_teacher(dataset, centred=False), "centred": recipe.pixel_teacher(dataset)}
    cache = _load_novel(dataset)
    results: dict = {"pretrain_cpu_seconds": pretrain_cpu, "config": config.model_dump(mode="json")}

    for k_shot in (1, 5):
        sampler = EpisodeSampler(dataset, "novel", n_way=5, k_shot=k_shot, n_query=15, seed=0)
        episodes = sampler.episodes(args.episodes)
        # 2. teacher vs pixels on identical episodes
        scores: dict[str, list[float]] = {"teacher": [], "pixels raw": [], "pixels centred": []}
        for episode in episodes:
            supports = torch.stack([cache[p] for p in episode.support_paths])
            queries = torch.stack([cache[p] for p in episode.query_paths])
            for name, model in (("teacher", teacher), ("pixels raw", pixels["raw"]),
                                ("pixels centred", pixels["centred"])):
                model.process_support_set(supports, episode.support_labels)
                scores[name].append(episode_accuracy(model(queries), episode.query_labels))
        # 3. distillation on the first episodes
        runs = []
        for episode in episodes[: args.distill_episodes]:
            start = time.process_time()
            pool = torch.stack([cache[p] for p in unlabelled_pool(dataset, episode)])
            result = run_episode(episode, dataset, teacher, config, unlabelled=pool)
            runs.append((result, time.process_time() - start))
        for key in ("teacher_accuracy", "student_accuracy", "supports_only_accuracy"):
            scores[f"{key} (distill subset)"] = [getattr(r, key) for r, _ in runs]
        summary = {name: summarize(values) for name, values in scores.items()}
        variance = decompose_variance(scores["teacher"], n_per_episode=5 * 15)
        plan = plan_evaluation(variance.mean, variance.between_episode_variance, 5, 0.01,
                               CostModel(per_episode=1.0, per_query=0.0), max_query=160)
        results[f"{k_shot}-shot"] = {
            "summary": {name: s.model_dump() for name, s in summary.items()},
            "teacher_variance": variance.model_dump(),
            "plan_for_1_point": plan.model_dump(),
            "cpu_seconds_per_distill_episode": sum(c for _, c in runs) / max(1, len(runs)),
            "n_unlabelled_mean": sum(r.n_unlabelled for r, _ in runs) / max(1, len(runs)),
            "seconds_by_step_mean": {s: sum(r.seconds[s] for r, _ in runs) / max(1, len(runs))
                                     for s in runs[0][0].seconds} if runs else {},
        }
        print(f"\n### 5-way {k_shot}-shot, Q = 15\n\n| model | accuracy (95% interval) |\n|---|---|")
        for name, s in summary.items():
            print(f"| {name} | {s} |")
        print(f"\nteacher σ² = {variance.between_episode_variance:.5f}, binomial part = "
              f"{variance.binomial_variance:.5f}; plan for ±1 point: {plan}")
        cpu = results[f"{k_shot}-shot"]["cpu_seconds_per_distill_episode"]
        print(f"CPU seconds per distillation episode (process time, all threads): {cpu:.1f}")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


def _load_novel(dataset: FewShotDataset) -> dict[str, torch.Tensor]:
    """Every novel image, decoded once: path → (3, H, W)."""
    paths = [p for label in dataset.classes("novel") for p in dataset.paths("novel", label)]
    images, kept = dataset.load(paths)
    return dict(zip(kept, images, strict=True))


if __name__ == "__main__":
    main()
