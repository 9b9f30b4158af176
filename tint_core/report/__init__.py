"""Run reports: what a benchmark run generated next to the supports, each method's results with intervals, the
variance and plan, the distillation curves, where the time went, and the trend over reruns.

The benchmark flow stores one per run in its store (``logs/reports/<run id>.html``); ``tint report STORE RUN`` renders
one again from the run's record.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tint_core.pipeline.resources import open_store
from tint_core.pipeline.runs import RunRecord
from tint_core.report.data import RunReport, collect_report
from tint_core.report.render import pictures_markdown, to_html, to_markdown

REPORTS = "reports"

__all__ = ["REPORTS", "RunReport", "collect_report", "pictures_markdown", "store_report", "to_html",
           "to_markdown", "write_report"]


def store_report(record: RunRecord) -> tuple[RunReport, str]:
    """Render the run's report into its store (``logs/reports/<run id>.html``); return it and where it is."""
    report = collect_report(record)
    store = open_store(record.config.store)
    name = f"{record.run_id}.html"
    store.append_log(REPORTS, name, to_html(report).encode())
    return report, f"{store.url.rstrip('/')}/logs/{REPORTS}/{name}"


def write_report(record: RunRecord, path: str | Path, overwrite: bool = False) -> Path:
    """Render the run's report to a local HTML file, written whole (a temporary file renamed into place).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists: choose another file or pass --overwrite")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    text = to_html(collect_report(record))  # before touching the file system: a failure leaves nothing behind
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path
