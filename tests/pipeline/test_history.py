"""The benchmark history: append-only entries in the store, read back as one table per series."""

from datetime import datetime, timedelta, timezone

import pytest

from tint_core.evaluation import AccuracySummary, VarianceDecomposition
from tint_core.pipeline.config import ExecutionConfig
from tint_core.pipeline.history import append_history, history_markdown, read_history, series_id
from tint_core.pipeline.presets import demo_config
from tint_core.pipeline.results import BenchmarkSummary, MethodSummary
from tint_core.store import ArtifactRef, ArtifactStore


def accuracy(mean: float) -> AccuracySummary:
    return AccuracySummary(mean=mean, half_width=0.02, sd=0.05, n_episodes=8, confidence=0.95)


def summary(tint: float) -> BenchmarkSummary:
    variance = VarianceDecomposition(
        mean=0.6, observed_variance=0.003, between_episode_variance=0.001, binomial_variance=0.002, n_per_episode=75
    )
    method = {"supports_only": accuracy(0.6), "tint": accuracy(tint)}
    return BenchmarkSummary(n_way=5, k_shot=1, n_query=15, episodes=8, target_half_width=0.02, teacher=accuracy(0.8),
                            methods={name: MethodSummary(accuracy=value, gains={} if name == "supports_only" else
                                                         {"supports_only": accuracy(value.mean - 0.6)},
                                                         variance=variance, plan=None, episodes_for_gain=None,
                                                         teacher_agreement=None)
                                     for name, value in method.items()})  # fmt: skip


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path):
    return str(tmp_path / "store") if request.param == "local" else request.getfixturevalue("s3_url")


def test_runs_append_to_their_series_and_read_back_in_time_order(store_url):
    config = demo_config(store_url)
    results = ArtifactRef(store=store_url, key="a" * 64, digest="b" * 64)
    start = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
    later = append_history(store_url, config, summary(0.66), results, "run-2", "nightly-2", start + timedelta(days=1))
    append_history(store_url, config, summary(0.64), results, "run-1", "nightly-1", start)
    other = config.updated(episodes=config.episodes.updated(k_shot=5))
    append_history(store_url, other, summary(0.9), results, "run-3", "five-shot", start)

    history = read_history(store_url, series_id(config))
    assert history.column("run_name").to_pylist() == ["nightly-1"] * 3 + ["nightly-2"] * 3  # teacher + 2 methods
    tint = [row for row in history.to_pylist() if row["method"] == "tint"]
    assert [row["accuracy"] for row in tint] == [0.64, 0.66]
    assert tint[1]["gain"] == pytest.approx(0.06) and tint[1]["results_key"] == "a" * 64
    assert read_history(store_url, series_id(other)).num_rows == 3
    assert later.startswith(series_id(config) + "/20261102T020000")

    table = history_markdown(history)
    assert table.splitlines()[0] == "| run | teacher | supports_only | tint |"
    assert "| 2026-11-02 02:00 nightly-2 | 80.0 ± 2.0 | 60.0 ± 2.0 | 66.0 ± 2.0 |" in table


def test_a_series_ignores_the_store_and_where_units_run_and_entries_are_never_overwritten(tmp_path):
    config = demo_config(str(tmp_path / "store"))
    moved = config.updated(store="s3://elsewhere/tint", execution=ExecutionConfig(fan_out="deployments"))
    assert series_id(moved) == series_id(config)
    assert series_id(config.updated(methods=["supports_only", "tint"])) != series_id(config)
    store = ArtifactStore(config.store)
    store.append_log("benchmark-history", "s/one.parquet", b"first")
    with pytest.raises(FileExistsError, match="already has an entry"):
        store.append_log("benchmark-history", "s/one.parquet", b"second")
    assert store.read_log("benchmark-history/s") == {"one.parquet": b"first"}
    assert read_history(config.store, "no-such-series").num_rows == 0
    with pytest.raises(ValueError, match="bad log path"):
        store.append_log("benchmark-history", "../escape", b"x")


def test_a_report_shows_the_trend_of_the_latest_runs_of_a_long_series(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tint_core.pipeline.history import SHOWN_RUNS
    from tint_core.report import data, figures

    config = demo_config(str(tmp_path / "store"))
    results = ArtifactRef(store=config.store, key="a" * 64, digest="b" * 64)
    start = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
    runs = SHOWN_RUNS + 5
    for day in range(runs):
        append_history(config.store, config, summary(0.6 + day / 100), results, f"run-{day}", f"nightly-{day}",
                       start + timedelta(days=day))  # fmt: skip
    drawn = {}
    monkeypatch.setattr(figures, "history", lambda when, series: drawn.update(when=when, series=series) or b"png")

    table, plot = data._history(config.store, SimpleNamespace(series=series_id(config)))
    assert plot == b"png" and table.num_rows == 3 * runs  # the table keeps every run; the picture the latest
    assert drawn["when"] == [start + timedelta(days=day) for day in range(runs - SHOWN_RUNS, runs)]
    assert [mean for mean, _ in drawn["series"]["tint"]] == pytest.approx([0.6 + day / 100 for day in range(5, runs)])
    assert len(history_markdown(table).splitlines()) == 2 + SHOWN_RUNS
