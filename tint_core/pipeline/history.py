"""A benchmark's history: every run appends its per-method results to a log in the store, so that scheduled reruns
of one configuration show a trend (a changed step version, library or checkpoint moves the numbers; an unchanged
pipeline reproduces them).

Runs of one *series* share everything but the store and where units run (``series_id``). Each run is one Parquet
entry ``logs/benchmark-history/<series>/<time>-<run id>.parquet``: appended whole, never rewritten, so concurrent
runs cannot lose each other's rows.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from tint_core.pipeline.config import BenchmarkConfig
from tint_core.pipeline.resources import open_store
from tint_core.pipeline.results import BenchmarkSummary
from tint_core.store import ArtifactRef, canonical_json, sha256_hex

HISTORY = "benchmark-history"
SCHEMA = pa.schema([
    ("time", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()), ("run_name", pa.string()),
    ("method", pa.string()), ("accuracy", pa.float64()), ("half_width", pa.float64()), ("gain", pa.float64()),
    ("gain_half_width", pa.float64()), ("episodes", pa.int64()), ("results_key", pa.string()),
])  # fmt: skip

SHOWN_RUNS = 20  # the trend a report shows: the latest runs (a nightly schedule makes hundreds)


def series_id(config: BenchmarkConfig) -> str:
    """What makes runs comparable: the configuration without its store and execution settings (16 hex digits)."""
    return sha256_hex(canonical_json(config.model_dump(mode="json", exclude={"store", "execution"})).encode())[:16]


def history_rows(summary: BenchmarkSummary, results: ArtifactRef, run_id: str, run_name: str,
                 when: datetime) -> pa.Table:  # fmt: skip
    """One row per method of a run, teacher included."""
    rows = [{"method": "teacher", "accuracy": summary.teacher.mean, "half_width": summary.teacher.half_width,
             "gain": None, "gain_half_width": None}]  # fmt: skip
    for method, result in summary.ordered():
        rows.append({"method": method, "accuracy": result.accuracy.mean, "half_width": result.accuracy.half_width,
                     "gain": gain.mean if (gain := result.gain_over("supports_only")) else None,
                     "gain_half_width": gain.half_width if gain else None})  # fmt: skip
    for row in rows:
        row |= {"time": when, "run_id": run_id, "run_name": run_name, "episodes": summary.episodes,
                "results_key": results.key}  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def append_history(store: str, config: BenchmarkConfig, summary: BenchmarkSummary, results: ArtifactRef,
                   run_id: str, run_name: str, when: datetime | None = None) -> str:  # fmt: skip
    """Append a run to its series' history in ``store``; return the entry's name."""
    when = when or datetime.now(timezone.utc)
    buffer = io.BytesIO()
    pq.write_table(history_rows(summary, results, run_id, run_name, when), buffer)
    name = f"{series_id(config)}/{when:%Y%m%dT%H%M%S%fZ}-{run_id}.parquet"
    open_store(store).append_log(HISTORY, name, buffer.getvalue())
    return name


def read_history(store: str, series: str) -> pa.Table:
    """Every run of a series, oldest first (an empty table when there is none)."""
    entries = open_store(store).read_log(f"{HISTORY}/{series}")
    tables = [pq.read_table(io.BytesIO(data)) for data in entries.values()]
    return pa.concat_tables(tables).sort_by("time") if tables else SCHEMA.empty_table()


def history_markdown(history: pa.Table, last: int = SHOWN_RUNS) -> str:
    """The trend per method: one row per run (the ``last`` runs), one column per method, mean ± half width."""
    rows = history.to_pylist()
    runs = list(dict.fromkeys((row["time"], row["run_name"]) for row in rows))[-last:]
    methods = list(dict.fromkeys(row["method"] for row in rows))
    cell = {
        (row["time"], row["method"]): f"{100 * row['accuracy']:.1f} ± {100 * row['half_width']:.1f}" for row in rows
    }
    lines = ["| run | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for when, name in runs:
        lines.append(f"| {when:%Y-%m-%d %H:%M} {name} | " + " | ".join(cell.get((when, m), "") for m in methods) + " |")
    return "\n".join(lines) + "\n"
