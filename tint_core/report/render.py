"""A run report as one self-contained HTML page (pictures embedded as PNG data URIs) and as Markdown for Prefect."""

from __future__ import annotations

import base64
import html

from tint_core.export.card import count_text
from tint_core.export.measure import ModelCost
from tint_core.pipeline.history import SHOWN_RUNS, history_markdown
from tint_core.pipeline.results import points_text, summary_markdown, summary_rows, verdict
from tint_core.report.data import RunReport

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: 0.5rem 0; }
.meta { color: #555; font-size: 0.9rem; }
"""


VARIANCE_HEADER = ["model", "σ² between episodes", "binomial", "planned E", "planned Q", "E for ±target gain"]


def _table(header: list[str], rows: list[list[object]], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(png: bytes) -> str:
    """A PNG as a data URI: the HTML report and the Prefect UI's Markdown artifacts both show it offline."""
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


def _image(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{data_uri(data)}">'


def _variance_rows(report: RunReport) -> list[list[object]]:
    rows = []
    for method, result in report.summary.ordered():
        plan = result.plan
        rows.append([f"student: {method}", f"{result.variance.between_episode_variance:.5f}",
                     f"{result.variance.binomial_variance:.5f}", plan.n_episodes if plan else "—",
                     plan.n_query if plan else "—", result.episodes_for_gain or "—"])  # fmt: skip
    return rows


WHAT_YOU_GET_HEADER = ["model", "accuracy (%)", "parameters", "MACs per image", "CPU latency, batch 1",
                       "CPU images/s, batch 64", "× fewer parameters", "× fewer MACs", "× faster",
                       "accuracy vs teacher (points)"]  # fmt: skip


def _what_you_get_rows(report: RunReport) -> list[list[object]]:
    """The teacher, then each method's student: accuracy ± interval, size, CPU speed, and the ratios against the
    teacher (every student shares one architecture, so size and speed differ only between student and teacher)."""
    student, teacher = report.costs
    summary = report.summary

    def cost(model: ModelCost) -> list[object]:
        return [count_text(model.parameters), count_text(model.macs), f"{model.torch.latency_ms:.2f} ms",
                f"{model.torch.throughput:,.0f}"]  # fmt: skip

    ratios = [f"{teacher.parameters / max(student.parameters, 1):.1f}", f"{teacher.macs / max(student.macs, 1):.1f}",
              f"{teacher.torch.latency_ms / student.torch.latency_ms:.1f}"]  # fmt: skip
    rows: list[list[object]] = [["teacher", points_text(summary.teacher), *cost(teacher), "1", "1", "1", "—"]]
    for method, result in summary.ordered():
        points = 100 * (result.accuracy.mean - summary.teacher.mean)
        rows.append([f"student: {method}", points_text(result.accuracy), *cost(student), *ratios, f"{points:+.1f}"])
    return rows


def _time_rows(report: RunReport) -> list[list[object]]:
    return [[stage.stage, stage.artifacts, stage.made_by_run, f"{stage.seconds:.1f}"] for stage in report.stage_times]


def _unit_rows(report: RunReport) -> list[list[object]]:
    return [[unit.episode, ", ".join(unit.classes), f"{unit.seconds:.1f}"] for unit in report.unit_times]


def to_html(report: RunReport) -> str:
    """The report as a standalone HTML page: opens offline, every picture inside it."""
    record, summary = report.record, report.summary
    config = record.config
    source = config.generator.specialization.backbone.source
    title = f"tint benchmark {record.run_name or record.run_id}"
    rows = summary_rows(summary)
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        (f'<p class="meta">run {html.escape(record.run_id)} · {record.started:%Y-%m-%d %H:%M:%S %Z} · '
         f"{record.seconds:.0f} s · {summary.n_way}-way {summary.k_shot}-shot, {summary.n_query} queries per class, "
         f"{summary.episodes} episodes · diffusion backbone {html.escape(source)} · series "
         f"{html.escape(record.series)} · store {html.escape(config.store)}</p>"),
        "<h2>Results</h2>",
        (f"<p>Mean accuracy ± 95% interval over {summary.episodes} episodes; every student trained "
         f"{config.student.training.steps} steps. Gains are paired per episode against each baseline.</p>"),
        _table(list(rows[0]), [list(row.values()) for row in rows], "results"),
        f"<p>{html.escape(verdict(summary))}</p>" if verdict(summary) else "",
        "<h2>Variance and plan</h2>",
        (f"<p>Per-episode variance of each student's accuracy (between episodes, and the binomial part at Q = "
         f"{summary.n_query}), the planner's cheapest (E, Q) for ±{100 * summary.target_half_width:g} points on the "
         "accuracy, and the episodes needed for that interval on every paired gain.</p>"),
        _table(VARIANCE_HEADER, _variance_rows(report), "variance"),
    ]
    if report.costs is not None:
        student, teacher = report.costs
        parts += ["<h2>What you get</h2>",
                  (f"<p>Each method's student against the teacher: accuracy (mean ± 95% interval), size and CPU speed "
                   f"of the models themselves (student {html.escape(config.student.model.backbone.name)} at "
                   f"{student.input_size}×{student.input_size}, teacher "
                   f"{html.escape(config.teacher.model.backbone.name)} at {teacher.input_size}×{teacher.input_size}; "
                   f"torch, {student.torch.threads} threads, latency the median of {student.torch.repeats} passes, "
                   "measured when this report was rendered). Ratios are teacher ÷ student; <code>tint export</code> "
                   "writes a student as ONNX with its card.</p>"),
                  _table(WHAT_YOU_GET_HEADER, _what_you_get_rows(report), "what-you-get")]  # fmt: skip
    elif report.costs_missing:
        parts += ["<h2>What you get</h2>", f"<p>The models' size and speed could not be measured where this report was "
                  f"rendered: {html.escape(report.costs_missing)}</p>"]  # fmt: skip
    if report.strips:
        parts += ["<h2>Supports, reconstructions and samples</h2>",
                  ("<p>Episode 0: each class's supports, their null-text reconstructions (PSNR against the support) "
                   "and the first generated images of each method (α: how much of a support's inverted noise a "
                   "sample keeps).</p>")]  # fmt: skip
        parts += [_image(strip, f"class {name}") for name, strip in report.strips]
        if report.psnr:
            parts.append(_table(["class", "reconstruction PSNR per support (dB)"],
                                [[name, " ".join(f"{value:.1f}" for value in values)]
                                 for name, values in report.psnr.items()], "psnr"))  # fmt: skip
    if report.quality:
        k = config.evaluation.quality_k
        parts += ["<h2>Image-set quality</h2>",
                  (f"<p>Each method's unlabelled images against the unused real images of the episode's classes, in "
                   f"the teacher's feature space (k-nearest-neighbour manifolds, k = {k}): precision is the share of "
                   "images that fall on a real class's manifold (specific), recall the share of real images their own "
                   "manifold covers (diverse). High precision with low recall: specific but not diverse; the "
                   "reverse: diverse but off-class. Mean over episodes, bars: 95% intervals.</p>"),
                  _image(report.quality, "precision against recall per method")]  # fmt: skip
    if report.curves:
        steps = config.student.training.steps
        parts += ["<h2>Training</h2>",
                  (f"<p>Every student trains for the same {steps} steps; per-step losses of each method's student, "
                   "averaged over episodes.</p>"), _image(report.curves, "training curves")]  # fmt: skip
    parts += [
        "<h2>Time</h2>",
        ("<p>Compute time of the artifacts the run used, by stage; artifacts reused from earlier runs keep the time "
         "they took then.</p>"),
        _table(["stage", "artifacts", "made by this run", "compute seconds"], _time_rows(report), "stages"),
    ]
    if report.times:
        parts.append(_image(report.times, "compute seconds per stage"))
    if report.unit_times:
        parts += ["<p>Per specialisation unit (specialisation and image generation):</p>",
                  _table(["episode", "classes", "compute seconds"], _unit_rows(report), "units")]  # fmt: skip
    if report.history_plot:
        runs = len(set(report.history.column("run_id").to_pylist()))
        shown = f"The latest {SHOWN_RUNS} of the {runs} runs" if runs > SHOWN_RUNS else f"Every run ({runs})"
        parts += ["<h2>History</h2>", f"<p>{shown} of this configuration, mean ± 95% interval.</p>",
                  _image(report.history_plot, "accuracy per method over runs")]  # fmt: skip
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip


def to_markdown(report: RunReport, location: str) -> str:
    """The report's tables as Markdown (for a Prefect artifact) and where the full HTML report is."""
    lines = [summary_markdown(report.summary), "### Compute time by stage", "",
             "| stage | artifacts | made by this run | compute seconds |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {stage} | {count} | {made} | {seconds} |" for stage, count, made, seconds in _time_rows(report)]
    if report.history is not None:
        lines += ["", "### History of this configuration", "", history_markdown(report.history)]
    lines += ["", _reopen(report, location)]
    return "\n".join(lines) + "\n"


def _reopen(report: RunReport, location: str) -> str:
    return (f"Full report with pictures: `{location}` (re-render: `tint report {report.record.config.store} "
            f"{report.record.run_id}`).")


def pictures_markdown(report: RunReport, location: str) -> str | None:
    """The first episode's picture strips as Markdown with embedded PNGs (a Prefect artifact shows them on the run's
    page), and how to open the full report; None when the run generated no images."""
    if not report.strips:
        return None
    first = min(report.record.episodes, key=int)
    lines = [f"## Pictures of episode {first}", "",
             "Per class: its supports, their null-text reconstructions (PSNR), augmented copies and each method's "
             "first samples.", ""]  # fmt: skip
    lines += [f"![class {name}]({data_uri(strip)})\n" for name, strip in report.strips]
    lines.append(_reopen(report, location))
    return "\n".join(lines) + "\n"
