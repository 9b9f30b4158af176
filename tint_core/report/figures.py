"""The report's pictures, drawn with matplotlib and returned as PNG bytes (no pyplot: no global state, no display)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tint_core.evaluation.accuracy import AccuracySummary

DPI = 100
_COLUMN_GAP, _ROW_GAP = 0.12, 0.3  # between a strip's images, in image widths (a row's gap holds the titles)
COLOURS = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes (no software stamp, so one figure always gives the same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def class_strip(name: str, rows: Sequence[tuple[str, Sequence[torch.Tensor], Sequence[str]]]) -> bytes:
    """One class: a row of images per label (supports, reconstructions, each method's samples), titled per image.

    Every image is drawn into one axes as a unit square (so images of different sizes line up): a grid of axes, one
    per image, took five times as long to lay out and draw, and a cached run renders a strip per class.

    Args:
        rows: (row label, (3, H, W) images in [0, 1], a title per image).
    """
    columns = max(len(images) for _, images, _ in rows)
    figure = Figure(figsize=(0.9 * columns + 1.4, 1.05 * len(rows) + 0.4))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    for row, (label, images, titles) in enumerate(rows):
        top = -row * (1 + _ROW_GAP)
        for column, (image, title) in enumerate(zip(images, titles, strict=True)):
            left = column * (1 + _COLUMN_GAP)
            axes.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest",
                        extent=(left, left + 1, top - 1, top))  # fmt: skip
            axes.add_patch(Rectangle((left, top - 1), 1, 1, fill=False, linewidth=0.8))
            axes.text(left + 0.5, top + 0.04, title, ha="center", va="bottom", fontsize=7)
        axes.text(-_COLUMN_GAP, top - 0.5, label, ha="right", va="center", fontsize=8)
    axes.set_xlim(-0.05, columns * (1 + _COLUMN_GAP) - _COLUMN_GAP + 0.05)
    axes.set_ylim(-len(rows) * (1 + _ROW_GAP) + _ROW_GAP - 0.05, _ROW_GAP)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(f"class {name}", fontsize=9)
    return png(figure)


def curves(curves_by_method: Mapping[str, Mapping[str, Sequence[float]]]) -> bytes:
    """Training curves per step: one panel per metric (support loss, KD loss, …), one line per method (mean over
    episodes)."""
    metrics = sorted({metric for by_metric in curves_by_method.values() for metric in by_metric})
    figure = Figure(figsize=(4.2 * len(metrics), 3.0))
    panels = figure.subplots(1, len(metrics), squeeze=False)[0]
    for axes, metric in zip(panels, metrics, strict=True):
        for index, (method, by_metric) in enumerate(curves_by_method.items()):
            values = by_metric.get(metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, linewidth=1, label=method,
                          color=COLOURS[index % len(COLOURS)])  # fmt: skip
        axes.set_title(metric.replace("_", " "), fontsize=9)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return png(figure)


def precision_recall(points: Mapping[str, tuple[AccuracySummary, AccuracySummary]]) -> bytes:
    """One point per method: the precision and recall of its images (mean over episodes, 95% intervals as bars)."""
    figure = Figure(figsize=(5.2, 4.2))
    axes = figure.subplots()
    for index, (method, (precision, recall)) in enumerate(points.items()):
        axes.errorbar(recall.mean, precision.mean, xerr=recall.half_width, yerr=precision.half_width, marker="o",
                      markersize=6, capsize=3, label=method, color=COLOURS[index % len(COLOURS)])  # fmt: skip
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("recall: real images covered (diversity)")
    axes.set_ylabel("precision: images on the real manifold (specificity)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return png(figure)


def stage_times(seconds: Mapping[str, float]) -> bytes:
    """Horizontal bars: compute seconds per stage."""
    names = list(seconds)
    figure = Figure(figsize=(6.0, 0.35 * len(names) + 0.8))
    axes = figure.subplots()
    axes.barh(names, [seconds[name] for name in names], color="tab:blue")
    axes.invert_yaxis()
    axes.set_xlabel("compute seconds (sum over the run's artifacts)")
    axes.grid(axis="x", alpha=0.3)
    return png(figure)


def history(runs: Sequence[datetime], series: Mapping[str, Sequence[tuple[float, float] | None]]) -> bytes:
    """Accuracy (%) of each method over runs, with its 95% interval; ``series[method][i]`` is (mean, half width)."""
    figure = Figure(figsize=(max(5.0, 0.6 * len(runs) + 3.0), 3.4))
    axes = figure.subplots()
    for index, (method, points) in enumerate(series.items()):
        kept = [(number, point) for number, point in enumerate(points) if point is not None]
        if kept:
            axes.errorbar([number for number, _ in kept], [100 * mean for _, (mean, _) in kept],
                          yerr=[100 * half for _, (_, half) in kept], marker="o", markersize=4, capsize=3,
                          label=method, color=COLOURS[index % len(COLOURS)])  # fmt: skip
    axes.set_xticks(range(len(runs)), [run.strftime("%Y-%m-%d\n%H:%M") for run in runs], fontsize=7)
    axes.set_xlim(-0.5, len(runs) - 0.5)
    axes.set_ylim(0, 100)  # intervals of a few episodes can run past what an accuracy can be
    axes.set_ylabel("accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return png(figure)
