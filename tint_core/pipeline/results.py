"""Fan-in: per-episode scores → a results table (one row per episode × method) and a summary with intervals, paired
gains over the supports-only student, the variance decomposition and the planner's proposal."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pyarrow as pa
from pydantic import BaseModel

from tint_core.evaluation import (
    AccuracySummary,
    Plan,
    VarianceDecomposition,
    decompose_variance,
    plan_evaluation,
    summarize,
)
from tint_core.evaluation.accuracy import t_quantile
from tint_core.pipeline.config import EpisodeConfig, EvaluationConfig, method_order
from tint_core.pipeline.resources import open_store
from tint_core.pipeline.step import Output, Step
from tint_core.store import ArtifactRef

AGGREGATE = Step("aggregate", 1)
BASELINE = "supports_only"


class MethodSummary(BaseModel):
    """One method over every episode."""

    accuracy: AccuracySummary
    gain: AccuracySummary | None  # paired: accuracy − supports-only accuracy, per episode
    variance: VarianceDecomposition
    plan: Plan | None  # cheapest (E, Q) for the target interval on the accuracy
    episodes_for_gain: int | None  # E for the target interval on the paired gain, at this spread
    teacher_agreement: float | None  # fraction of the unlabelled images the teacher puts in their intended class


class BenchmarkSummary(BaseModel):
    """What a benchmark run measured."""

    n_way: int
    k_shot: int
    n_query: int
    episodes: int
    target_half_width: float
    teacher: AccuracySummary
    methods: dict[str, MethodSummary]

    def ordered(self) -> list[tuple[str, MethodSummary]]:
        """Methods in the canonical order (supports_only, ti_only, tint and its variants, real_pool), whatever order
        JSON kept."""
        return sorted(self.methods.items(), key=lambda item: method_order(item[0]))


def _aggregate_output(scores: Mapping[str, Mapping[str, ArtifactRef]], teacher: Mapping[str, ArtifactRef],
                      labels: Mapping[str, Mapping[str, ArtifactRef]], episodes: EpisodeConfig,
                      evaluation: EvaluationConfig, max_query: int) -> Output:  # fmt: skip
    inputs: dict[str, object] = {f"teacher/{e}": ref for e, ref in teacher.items()}
    inputs |= {f"score/{e}/{m}": ref for e, by_method in scores.items() for m, ref in by_method.items()}
    inputs |= {f"labels/{e}/{m}": ref for e, by_method in labels.items() for m, ref in by_method.items()}
    params = {"episodes": episodes.model_dump(exclude={"episodes"}), "evaluation": evaluation, "max_query": max_query}
    return AGGREGATE.output(params, inputs)


def aggregate_keys(store: str, scores: dict[str, dict[str, ArtifactRef]], teacher: dict[str, ArtifactRef],
                   labels: dict[str, dict[str, ArtifactRef]], episodes: EpisodeConfig, evaluation: EvaluationConfig,
                   max_query: int) -> list[str]:  # fmt: skip
    """Key of the results: every score it summarises, by episode and method."""
    return [_aggregate_output(scores, teacher, labels, episodes, evaluation, max_query).key]


def aggregate_results(store: str, scores: dict[str, dict[str, ArtifactRef]], teacher: dict[str, ArtifactRef],
                      labels: dict[str, dict[str, ArtifactRef]], episodes: EpisodeConfig, evaluation: EvaluationConfig,
                      max_query: int) -> ArtifactRef:  # fmt: skip
    """Summarise every episode's scores.

    Args:
        scores: episode id → method → the student's evaluation.
        teacher: episode id → the teacher's evaluation.
        labels: episode id → method → soft labels (for the teacher's agreement with the intended classes).
        max_query: the most queries per class the split allows (for the planner).

    Returns:
        A reference to an artifact with parts ``results`` (table: episode_id, method, accuracy, teacher_accuracy,
        gain, teacher_agreement) and ``summary`` (JSON, :class:`BenchmarkSummary`).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        def read(ref: ArtifactRef, part: str) -> dict:
            return opened.get(ref)[part]

        episode_ids = sorted(scores, key=int)
        methods = list(scores[episode_ids[0]])
        accuracy = {m: [read(scores[e][m], "score")["accuracy"] for e in episode_ids] for m in methods}
        teacher_accuracy = [read(teacher[e], "score")["accuracy"] for e in episode_ids]
        agreement = {m: [read(labels[e][m], "summary")["agreement"] for e in episode_ids]
                     for m in methods if all(m in labels.get(e, {}) for e in episode_ids)}  # fmt: skip
        rows = []
        for index, episode_id in enumerate(episode_ids):
            for method in methods:
                baseline = accuracy[BASELINE][index] if BASELINE in accuracy else None
                rows.append({
                    "episode_id": int(episode_id), "method": method, "accuracy": accuracy[method][index],
                    "teacher_accuracy": teacher_accuracy[index],
                    "gain": None if baseline is None else accuracy[method][index] - baseline,
                    "teacher_agreement": agreement[method][index] if method in agreement else None,
                })  # fmt: skip
        summary = summarize_methods(accuracy, teacher_accuracy, agreement, episodes, evaluation, max_query)
        return {"results": pa.Table.from_pylist(rows), "summary": summary.model_dump(mode="json")}

    return _aggregate_output(scores, teacher, labels, episodes, evaluation, max_query).ensure(opened, compute)


def summarize_methods(accuracy: Mapping[str, list[float]], teacher_accuracy: list[float],
                      agreement: Mapping[str, list[float]], episodes: EpisodeConfig, evaluation: EvaluationConfig,
                      max_query: int) -> BenchmarkSummary:  # fmt: skip
    """Per-method intervals, paired gains, variance decomposition and plans (see :class:`MethodSummary`)."""
    n_per_episode = episodes.n_way * episodes.n_query
    target = evaluation.target_half_width
    methods = {}
    for method, values in accuracy.items():
        variance = decompose_variance(values, n_per_episode)
        try:
            plan = plan_evaluation(variance.mean, variance.between_episode_variance, episodes.n_way, target,
                                   evaluation.cost, max_query)  # fmt: skip
        except ValueError:
            plan = None  # no affordable (E, Q) reaches the target
        gain = episodes_for_gain = None
        if BASELINE in accuracy and method != BASELINE:
            differences = [a - b for a, b in zip(values, accuracy[BASELINE], strict=True)]
            gain = summarize(differences)
            episodes_for_gain = episodes_for_half_width(gain.sd, target)
        methods[method] = MethodSummary(
            accuracy=summarize(values), gain=gain, variance=variance, plan=plan, episodes_for_gain=episodes_for_gain,
            teacher_agreement=sum(agreement[method]) / len(agreement[method]) if method in agreement else None,
        )  # fmt: skip
    return BenchmarkSummary(
        n_way=episodes.n_way, k_shot=episodes.k_shot, n_query=episodes.n_query, episodes=len(teacher_accuracy),
        target_half_width=target, teacher=summarize(teacher_accuracy), methods=methods,
    )  # fmt: skip


def episodes_for_half_width(sd: float, half_width: float) -> int:
    """Least E ≥ 2 with t_{E−1} · sd / √E ≤ half_width: episodes for that interval on a mean of per-episode values
    whose spread is ``sd`` (e.g. a paired gain)."""
    if sd == 0:
        return 2
    episodes = max(2, math.ceil((1.96 * sd / half_width) ** 2))
    while t_quantile(episodes) * sd / math.sqrt(episodes) > half_width:
        episodes += 1
    return episodes


def _points(summary: AccuracySummary | None, signed: bool = False) -> str:
    if summary is None:
        return "—"
    sign = "+" if signed else ""
    return f"{100 * summary.mean:{sign}.1f} ± {100 * summary.half_width:.1f}"


def summary_rows(summary: BenchmarkSummary) -> list[dict[str, str]]:
    """One display row per model (the teacher first): accuracy and paired gain in points, with 95% intervals."""
    rows = [{"model": "teacher", "accuracy (%)": _points(summary.teacher), "gain over supports_only (points)": "—",
             "teacher agreement": "—", "episodes for ±target gain": "—"}]  # fmt: skip
    for method, result in summary.ordered():
        rows.append({
            "model": f"student: {method}", "accuracy (%)": _points(result.accuracy),
            "gain over supports_only (points)": _points(result.gain, signed=True),
            "teacher agreement": "—" if result.teacher_agreement is None else f"{100 * result.teacher_agreement:.0f}%",
            "episodes for ±target gain": "—" if result.episodes_for_gain is None else str(result.episodes_for_gain),
        })  # fmt: skip
    return rows


def summary_markdown(summary: BenchmarkSummary) -> str:
    """The summary as Markdown: the results table, then the variance decomposition and the plans."""
    rows = summary_rows(summary)
    header = list(rows[0])
    lines = [
        (f"### {summary.n_way}-way {summary.k_shot}-shot, {summary.n_query} queries per class, "
         f"{summary.episodes} episodes (mean ± 95% interval)"), "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]  # fmt: skip
    lines += ["| " + " | ".join(row[column] for column in header) + " |" for row in rows]
    target = 100 * summary.target_half_width
    lines += ["", (f"Variance per episode (between-episode σ² and binomial part at Q = {summary.n_query}) and the "
                   f"planner's cheapest (E, Q) for ±{target:g} points:"), "",
              "| model | σ² between episodes | binomial | planned E | planned Q |", "|---|---|---|---|---|"]  # fmt: skip
    for method, result in summary.ordered():
        plan = result.plan
        lines.append(f"| student: {method} | {result.variance.between_episode_variance:.5f} | "
                     f"{result.variance.binomial_variance:.5f} | {plan.n_episodes if plan else '—'} | "
                     f"{plan.n_query if plan else '—'} |")  # fmt: skip
    return "\n".join(lines) + "\n"
