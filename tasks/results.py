"""Fan-in: the results table and summary in the store, and the same as Prefect artifacts on the flow run; the run's
line in the benchmark's history."""

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from tasks.caching import StoredArtifacts
from tasks.runtime import STEP_OPTIONS
from tint_core.pipeline import history, results
from tint_core.pipeline.config import BenchmarkConfig, EpisodeConfig, EvaluationConfig
from tint_core.pipeline.resources import open_store
from tint_core.pipeline.runs import RunRecord, save_run
from tint_core.store import ArtifactRef


@task(name="aggregate", cache_policy=StoredArtifacts(keys=results.aggregate_keys), **STEP_OPTIONS)
def aggregate_results(store: str, scores: dict[str, dict[str, ArtifactRef]], teacher: dict[str, ArtifactRef],
                      labels: dict[str, dict[str, ArtifactRef]], quality: dict[str, dict[str, ArtifactRef]],
                      episodes: EpisodeConfig, evaluation: EvaluationConfig, max_query: int) -> ArtifactRef:  # fmt: skip
    """Per-method intervals, paired gains, image-set quality, variance decomposition and plans over every episode."""
    return results.aggregate_results(store, scores, teacher, labels, quality, episodes, evaluation, max_query)


def read_summary(store: str, ref: ArtifactRef) -> results.BenchmarkSummary:
    """The summary of an aggregate artifact."""
    return results.BenchmarkSummary.model_validate(open_store(store).get(ref)["summary"])


def publish_results(summary: results.BenchmarkSummary, ref: ArtifactRef) -> None:
    """Attach the results to the current flow run: a table artifact and a Markdown summary artifact."""
    create_table_artifact(results.summary_rows(summary), key="tint-benchmark-results",
                          description=f"Mean ± 95% interval over {summary.episodes} episodes")  # fmt: skip
    where = f"\n\nResults table and summary in the store: `{ref.uri}` (parts `results`, `summary`).\n"
    create_markdown_artifact(results.summary_markdown(summary) + where, key="tint-benchmark-summary",
                             description="Benchmark summary")  # fmt: skip


def record_history(config: BenchmarkConfig, summary: results.BenchmarkSummary, ref: ArtifactRef) -> int:
    """Append this flow run to its series' history in the store and attach the trend per method as a Markdown
    artifact; return how many runs the series now has. Every run appends, cached or not: the history is of runs."""
    history.append_history(config.store, config, summary, ref, str(flow_run.id), flow_run.name or "")
    table = history.read_history(config.store, history.series_id(config))
    runs = len(set(table.column("run_id").to_pylist()))
    create_markdown_artifact(f"## Benchmark history ({runs} runs of series {history.series_id(config)})\n\n"
                             + history.history_markdown(table), key="tint-benchmark-history",
                             description="Accuracy per method over the runs of this configuration")  # fmt: skip
    return runs


def publish_report(record: RunRecord) -> str:
    """Save the run's record and its HTML report in the store, attach the report's tables and the first episode's
    pictures to the flow run as Markdown artifacts; return where the HTML report is."""
    from tint_core.report import pictures_markdown, store_report, to_markdown  # matplotlib: only here

    save_run(record)
    report, location = store_report(record)
    create_markdown_artifact(to_markdown(report, location), key="tint-benchmark-report",
                             description=f"Run report; the full page with pictures is {location}")  # fmt: skip
    pictures = pictures_markdown(report, location)
    if pictures is not None:
        create_markdown_artifact(pictures, key="tint-benchmark-pictures",
                                 description="Supports, reconstructions and samples of the first episode's classes")  # fmt: skip
    return location
