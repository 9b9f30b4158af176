"""Fan-in: per-episode scores → a results table (one row per episode × method) and a summary with intervals, paired
gains over the baselines (supports-only and the augmentation control), image-set quality, the variance decomposition
and the planner's proposal."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pyarrow as pa
from pydantic import BaseModel, Field

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

AGGREGATE = Step("aggregate", 2)  # 2: gains over both baselines, image-set quality
BASELINES = ("supports_only", "augmented_supports")  # every method's paired gain is measured against each present


class MethodSummary(BaseModel):
    """One method over every episode."""

    accuracy: AccuracySummary
    gains: dict[str, AccuracySummary] = Field(
        default_factory=dict, description="baseline → paired gain: accuracy − the baseline's accuracy, per episode"
    )
    variance: VarianceDecomposition
    plan: Plan | None  # cheapest (E, Q) for the target interval on the accuracy
    episodes_for_gain: int | None  # E for the target interval on every paired gain, at their spread
    teacher_agreement: float | None  # fraction of the unlabelled images the teacher puts in their intended class
    precision: AccuracySummary | None = None  # of the unlabelled images against real ones (k-NN manifolds)
    recall: AccuracySummary | None = None

    def gain_over(self, baseline: str = "supports_only") -> AccuracySummary | None:
        """The paired gain over ``baseline``, if both were run."""
        return self.gains.get(baseline)


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
        """Methods in the canonical order (supports_only, the controls, ti_only, tint and its variants, real_pool),
        whatever order JSON kept."""
        return sorted(self.methods.items(), key=lambda item: method_order(item[0]))

    @property
    def baselines(self) -> list[str]:
        """The baselines this run has, of ``BASELINES``."""
        return [baseline for baseline in BASELINES if baseline in self.methods]


RefTable = Mapping[str, Mapping[str, ArtifactRef]]  # episode id → method → artifact


def _aggregate_output(scores: RefTable, teacher: Mapping[str, ArtifactRef], labels: RefTable, quality: RefTable,
                      episodes: EpisodeConfig, evaluation: EvaluationConfig, max_query: int) -> Output:  # fmt: skip
    inputs: dict[str, object] = {f"teacher/{e}": ref for e, ref in teacher.items()}
    for name, table in (("score", scores), ("labels", labels), ("quality", quality)):
        inputs |= {f"{name}/{e}/{m}": ref for e, by_method in table.items() for m, ref in by_method.items()}
    params = {"episodes": episodes.model_dump(exclude={"episodes"}), "evaluation": evaluation, "max_query": max_query}
    return AGGREGATE.output(params, inputs)


def aggregate_keys(store: str, scores: dict[str, dict[str, ArtifactRef]], teacher: dict[str, ArtifactRef],
                   labels: dict[str, dict[str, ArtifactRef]], quality: dict[str, dict[str, ArtifactRef]],
                   episodes: EpisodeConfig, evaluation: EvaluationConfig, max_query: int) -> list[str]:  # fmt: skip
    """Key of the results: every score it summarises, by episode and method."""
    return [_aggregate_output(scores, teacher, labels, quality, episodes, evaluation, max_query).key]


def aggregate_results(store: str, scores: dict[str, dict[str, ArtifactRef]], teacher: dict[str, ArtifactRef],
                      labels: dict[str, dict[str, ArtifactRef]], quality: dict[str, dict[str, ArtifactRef]],
                      episodes: EpisodeConfig, evaluation: EvaluationConfig, max_query: int) -> ArtifactRef:  # fmt: skip
    """Summarise every episode's scores.

    Args:
        scores: episode id → method → the student's evaluation.
        teacher: episode id → the teacher's evaluation.
        labels: episode id → method → soft labels (for the teacher's agreement with the intended classes).
        quality: episode id → method → precision and recall of the method's images (may be empty).
        max_query: the most queries per class the split allows (for the planner).

    Returns:
        A reference to an artifact with parts ``results`` (table: episode_id, method, accuracy, teacher_accuracy,
        gain_over_<baseline> per baseline, teacher_agreement, precision, recall) and ``summary`` (JSON,
        :class:`BenchmarkSummary`).
    """
    opened = open_store(store)

    def compute() -> dict[str, object]:
        def read(ref: ArtifactRef, part: str) -> dict:
            return opened.get(ref)[part]

        episode_ids = sorted(scores, key=int)
        methods = list(scores[episode_ids[0]])

        def per_episode(table: RefTable, part: str, field: str) -> dict[str, list[float]]:
            """Method → per-episode values, for methods with a value in every episode."""
            values = {m: [read(table[e][m], part)[field] if m in table.get(e, {}) else None for e in episode_ids]
                      for m in methods}  # fmt: skip
            return {m: found for m, found in values.items() if None not in found}

        accuracy = per_episode(scores, "score", "accuracy")
        teacher_accuracy = [read(teacher[e], "score")["accuracy"] for e in episode_ids]
        agreement = per_episode(labels, "summary", "agreement")
        precision, recall = (per_episode(quality, "quality", field) for field in ("precision", "recall"))
        rows = []
        for index, episode_id in enumerate(episode_ids):
            for method in methods:
                row = {"episode_id": int(episode_id), "method": method, "accuracy": accuracy[method][index],
                       "teacher_accuracy": teacher_accuracy[index]}  # fmt: skip
                for baseline in BASELINES:
                    row[f"gain_over_{baseline}"] = (accuracy[method][index] - accuracy[baseline][index]
                                                    if baseline in accuracy and baseline in _baselines_of(method)
                                                    else None)  # fmt: skip
                for name, values in (("teacher_agreement", agreement), ("precision", precision), ("recall", recall)):
                    row[name] = values[method][index] if method in values else None
                rows.append(row)
        summary = summarize_methods(accuracy, teacher_accuracy, agreement, precision, recall, episodes, evaluation,
                                    max_query)  # fmt: skip
        return {"results": pa.Table.from_pylist(rows), "summary": summary.model_dump(mode="json")}

    return _aggregate_output(scores, teacher, labels, quality, episodes, evaluation, max_query).ensure(opened, compute)


def _baselines_of(method: str) -> tuple[str, ...]:
    """The baselines a method is paired with: each one before it (supports_only has none)."""
    return BASELINES[: BASELINES.index(method)] if method in BASELINES else BASELINES


def summarize_methods(accuracy: Mapping[str, list[float]], teacher_accuracy: list[float],
                      agreement: Mapping[str, list[float]], precision: Mapping[str, list[float]],
                      recall: Mapping[str, list[float]], episodes: EpisodeConfig, evaluation: EvaluationConfig,
                      max_query: int) -> BenchmarkSummary:  # fmt: skip
    """Per-method intervals, paired gains over each baseline, variance decomposition, plans and image-set quality
    (see :class:`MethodSummary`)."""
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
        gains = {
            baseline: summarize([a - b for a, b in zip(values, accuracy[baseline], strict=True)])
            for baseline in _baselines_of(method) if baseline in accuracy
        }  # fmt: skip
        methods[method] = MethodSummary(
            accuracy=summarize(values), gains=gains, variance=variance, plan=plan,
            episodes_for_gain=max((episodes_for_half_width(gain.sd, target) for gain in gains.values()), default=None),
            teacher_agreement=sum(agreement[method]) / len(agreement[method]) if method in agreement else None,
            precision=summarize(precision[method]) if method in precision else None,
            recall=summarize(recall[method]) if method in recall else None,
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


def points_text(summary: AccuracySummary | None, signed: bool = False) -> str:
    """"mean ± half width" in points ("—" for none)."""
    if summary is None:
        return "—"
    sign = "+" if signed else ""
    return f"{100 * summary.mean:{sign}.1f} ± {100 * summary.half_width:.1f}"


def _fraction(summary: AccuracySummary | None) -> str:
    return "—" if summary is None else f"{summary.mean:.2f}"


def summary_rows(summary: BenchmarkSummary) -> list[dict[str, str]]:
    """One display row per model (the teacher first): accuracy and paired gains in points, with 95% intervals; the
    teacher's agreement with each method's images and their precision / recall against real images."""
    baselines = summary.baselines
    blank = {f"gain over {baseline} (points)": "—" for baseline in baselines}
    rows = [{"model": "teacher", "accuracy (%)": points_text(summary.teacher), **blank, "teacher agreement": "—",
             "precision / recall": "—", "episodes for ±target gain": "—"}]  # fmt: skip
    for method, result in summary.ordered():
        rows.append({
            "model": f"student: {method}", "accuracy (%)": points_text(result.accuracy),
            **{f"gain over {baseline} (points)": points_text(result.gain_over(baseline), signed=True)
               for baseline in baselines},
            "teacher agreement": "—" if result.teacher_agreement is None else f"{100 * result.teacher_agreement:.0f}%",
            "precision / recall": ("—" if result.precision is None else
                                   f"{_fraction(result.precision)} / {_fraction(result.recall)}"),
            "episodes for ±target gain": "—" if result.episodes_for_gain is None else str(result.episodes_for_gain),
        })  # fmt: skip
    return rows


def _names(methods: list[str]) -> str:
    return methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + " and " + methods[-1]


def verdict(summary: BenchmarkSummary) -> str:
    """One plain sentence from the table: which methods beat supports_only and augmented_supports with a 95%
    interval on the paired gain that excludes zero, and which do not ("" without a baseline)."""
    if not summary.baselines:
        return ""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    worse: dict[str, list[str]] = {}
    for method, result in summary.ordered():
        compared = tuple(baseline for baseline in summary.baselines if result.gain_over(baseline) is not None)
        if not compared:
            continue
        beaten = tuple(b for b in compared if result.gains[b].mean - result.gains[b].half_width > 0)
        groups.setdefault((compared, beaten), []).append(method)
        for baseline in compared:
            if result.gains[baseline].mean + result.gains[baseline].half_width < 0:
                worse.setdefault(baseline, []).append(method)
    clauses = []
    for (compared, beaten), methods in groups.items():
        one = len(methods) == 1
        verb, negation = ("beats", "does not beat") if one else ("beat", "do not beat")
        if beaten == compared:
            clauses.append(f"{_names(methods)} {verb} " + ("both" if len(compared) == 2 else compared[0]))
        elif not beaten:
            clauses.append(f"{_names(methods)} " + (f"{verb} neither" if len(compared) == 2 else
                                                     f"{negation} {compared[0]}"))  # fmt: skip
        else:
            missed = [b for b in compared if b not in beaten]
            clauses.append(f"{_names(methods)} {verb} {_names(list(beaten))} but not {_names(missed)}")
    against = _names(summary.baselines)
    sentence = (f"Against {against}, counting a gain only where its 95% interval excludes zero "
                f"({summary.episodes} episodes): " + "; ".join(clauses))  # fmt: skip
    if worse:
        sentence += "; worse than " + "; than ".join(f"{b}: {_names(m)}" for b, m in worse.items())
    return sentence + "."


def summary_markdown(summary: BenchmarkSummary, with_verdict: bool = True) -> str:
    """The summary as Markdown: the results table and (``with_verdict``) the verdict, then the variance
    decomposition and the plans."""
    rows = summary_rows(summary)
    header = list(rows[0])
    lines = [
        (f"### {summary.n_way}-way {summary.k_shot}-shot, {summary.n_query} queries per class, "
         f"{summary.episodes} episodes (mean ± 95% interval)"), "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]  # fmt: skip
    lines += ["| " + " | ".join(row[column] for column in header) + " |" for row in rows]
    if with_verdict and verdict(summary):
        lines += ["", verdict(summary)]
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
