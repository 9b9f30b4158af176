"""The benchmark flow on a real Prefect server: every step cached on its content key, reruns compute exactly what
changed, and the Prefect cache never outlives (or disagrees with) the artifacts in the store."""

import base64
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.benchmark import benchmark
from tests.pipeline.helpers import Run, run_flow, small_config
from tint_core.pipeline import BenchmarkConfig
from tint_core.pipeline.history import read_history, series_id
from tint_core.pipeline.runs import find_run
from tint_core.store import ArtifactStore

pytestmark = pytest.mark.usefixtures("prefect_server")


def flow_run_artifacts(flow_run_id) -> dict:
    """Key → artifact, for the artifacts a flow run created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[flow_run_id])))  # fmt: skip
    return {artifact.key: artifact for artifact in found}


@dataclass(frozen=True)
class Computed:
    """The small benchmark computed once: its configuration, its first run and the store's artifacts after it."""

    config: BenchmarkConfig
    first: Run
    digests: list[tuple[str, str]]


def digests(store: str) -> list[tuple[str, str]]:
    """(step, content digest) of every artifact in ``store`` (the dataset's and episodes' tables name image paths inside
    their store: compared through what follows them)."""
    return sorted((manifest.step, manifest.digest) for manifest in ArtifactStore(store).list()
                  if manifest.step not in ("dataset", "episode"))  # fmt: skip


def _computed(root: Path, label: str, **changes: object) -> Computed:
    config = small_config(str(root / "store"), **changes)
    first = run_flow(benchmark, config=config, label=label)
    return Computed(config, first, digests(config.store))


# Each test below starts from a store where its configuration was computed once, and only adds to it (another
# configuration's steps) or damages one artifact that its rerun restores: a first computation each would be the same
# CPU five times over. Where two damage the same store, they damage different artifacts.
@pytest.fixture(scope="module")
def computed(tmp_path_factory) -> Computed:
    return _computed(tmp_path_factory.mktemp("computed"), "first run (2 episodes, 3-way)")


@pytest.fixture(scope="module")
def computed_per_class(tmp_path_factory) -> Computed:
    return _computed(tmp_path_factory.mktemp("per-class"), "first run, a unit per class", unit="class")


ALL_STEPS = {"index-dataset", "sample-episode", "prepare-backbone", "specialize", "generate", "pool", "score-teacher",
             "label", "quality", "distill", "evaluate", "aggregate"}  # fmt: skip


def test_a_second_identical_run_recomputes_nothing(computed):
    # First in this file: the configuration's history holds the fixture's run and this test's (test 7 adds a third).
    config, first = computed.config, computed.first
    assert {run.name.rsplit("-", 1)[0] for run in first.task_runs} == ALL_STEPS
    assert all(run.state.is_completed() for run in first.task_runs) and not first.all_cached
    # 1 dataset + 2 episodes + 2 backbones + per episode (1 unit, 2 image sets, 1 real pool, 1 teacher score,
    # 3 labels, 3 image-set qualities, 4 students, 4 scores) + 1 aggregate
    assert len(first.task_runs) == 1 + 2 + 2 + 2 * 19 + 1

    artifacts = flow_run_artifacts(first.task_runs[0].flow_run_id)
    assert set(artifacts) == {"tint-benchmark-results", "tint-benchmark-summary", "tint-benchmark-progress",
                              "tint-benchmark-history", "tint-benchmark-report", "tint-benchmark-pictures"}  # fmt: skip
    assert first.outcome.report in artifacts["tint-benchmark-report"].data  # links the HTML report in the store
    assert "| specialize | 6 | 6 |" in artifacts["tint-benchmark-report"].data  # time by stage: 2 episodes × 3 classes
    assert artifacts["tint-benchmark-progress"].data == 100.0
    # The first episode's strips, one PNG per class embedded in the Markdown the UI renders, and the way to the report.
    pictures = artifacts["tint-benchmark-pictures"].data
    strips = re.findall(r"!\[class (\w+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", pictures)
    assert len(strips) == 3 and all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in strips)
    assert f"tint report {config.store} " in pictures and first.outcome.report in pictures
    assert "| student: tint |" in artifacts["tint-benchmark-summary"].data
    assert first.outcome.results.key in artifacts["tint-benchmark-summary"].data

    second = run_flow(benchmark, config=config, label="identical second run")
    assert len(second.task_runs) == len(first.task_runs) and second.all_cached
    assert second.outcome.results == first.outcome.results and second.outcome.summary == first.outcome.summary
    assert set(second.outcome.summary.methods) == {"supports_only", "ti_only", "tint", "real_pool"}
    # Each run appended its line to the configuration's history; the trend is flat, nothing having changed.
    history = read_history(config.store, series_id(config))
    assert len(set(history.column("run_id").to_pylist())) == 2
    tint = [row["accuracy"] for row in history.to_pylist() if row["method"] == "tint"]
    assert tint == [first.outcome.summary.methods["tint"].accuracy.mean] * 2
    trend = flow_run_artifacts(second.task_runs[0].flow_run_id)["tint-benchmark-history"].data
    assert "2 runs of series" in trend and len([line for line in trend.splitlines() if line.startswith("| 20")]) == 2


def test_steps_side_by_side_on_a_device_give_the_same_artifacts(computed, tmp_path):
    config = computed.config  # computed one step at a time per device
    side_by_side = config.updated(store=str(tmp_path / "three"), execution=config.execution.updated(steps_per_device=3))
    three = run_flow(benchmark, config=side_by_side, label="three steps side by side per device")
    assert three.outcome.summary == computed.first.outcome.summary
    assert {step for step, _ in computed.digests} >= {"backbone", "specialize", "generate", "label", "distill"}
    assert digests(side_by_side.store) == computed.digests


def test_raising_the_episode_count_computes_only_the_new_episode_and_the_aggregate(computed):
    config = computed.config
    more = run_flow(benchmark, config=config.updated(episodes=config.episodes.updated(episodes=3)), label="E 2 → 3")
    assert more.executed() == {"sample-episode": 1, "specialize": 1, "generate": 2, "pool": 1, "score-teacher": 1,
                               "label": 3, "quality": 3, "distill": 4, "evaluate": 4, "aggregate": 1}  # fmt: skip
    assert [run.name for run in more.task_runs if run.name.startswith("sample-episode") and run.state.name != "Cached"
            ] == ["sample-episode-2"]  # fmt: skip
    assert more.outcome.summary.episodes == 3


def test_changing_only_the_generation_reruns_generation_and_what_follows_it(computed):
    config = computed.config
    generator = config.generator.updated(generation=config.generator.generation.updated(images_per_class=5))
    changed = run_flow(benchmark, config=config.updated(generator=generator), label="generation changed")
    # per episode: both image sets, and the two generated methods' labels, qualities, students and scores
    assert changed.executed() == {"generate": 4, "label": 4, "quality": 4, "distill": 4, "evaluate": 4,
                                  "aggregate": 1}  # fmt: skip


def _specializations(store: ArtifactStore) -> list:
    return store.list(step="specialize")


def test_deleting_one_class_specialization_reruns_only_its_producer(computed_per_class):
    config = computed_per_class.config
    store = ArtifactStore(config.store)
    victim = _specializations(store)[0]  # the next test changes the last
    shutil.rmtree(Path(config.store) / "artifacts" / victim.key)

    again = run_flow(benchmark, config=config, label="one class's specialisation deleted")
    # Recomputed into the same bytes (seeded, deterministic), so nothing downstream has to change.
    assert again.executed() == {"specialize": 1}
    assert store.ref(victim.key).digest == victim.digest


def test_a_specialization_recomputed_into_other_bytes_reruns_its_consumers_only(computed_per_class):
    config, first = computed_per_class.config, computed_per_class.first
    store = ArtifactStore(config.store)
    victim = _specializations(store)[-1]  # the test before deletes the first
    parts = store.get(victim.key).load()
    parts["inversion"]["null_embeddings"] = parts["inversion"]["null_embeddings"] * 1.01  # another machine's result
    shutil.rmtree(Path(config.store) / "artifacts" / victim.key)
    store.put(victim.key, parts, step=victim.step, params=victim.params, inputs=victim.inputs)

    again = run_flow(benchmark, config=config, label="one specialisation recomputed differently")
    # Its unit task (record refreshed) and that class's two image sets run again. TI-only images ignore the null
    # embeddings, so they come out byte for byte the same and their labels and student stay cached: only TINT's
    # labels, image-set quality, student and score follow, then the aggregate.
    assert again.executed() == {"specialize": 1, "generate": 2, "label": 1, "quality": 1, "distill": 1,
                                "evaluate": 1, "aggregate": 1}  # fmt: skip
    assert again.outcome.results.key != first.outcome.results.key


def test_a_corrupted_artifact_is_quarantined_and_recomputed(computed):
    config, first = computed.config, computed.first
    url = config.store
    store = ArtifactStore(url)
    victim = store.list(step="generate")[0]
    part = Path(url) / "artifacts" / victim.key / victim.part_path("images")
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, wrong digest
    part.write_bytes(bytes(data))

    again = run_flow(benchmark, config=config, label="one image set corrupted")
    assert again.executed() == {"generate": 1}  # the unit producing it, into the same bytes
    assert store.ref(victim.key).digest == victim.digest and store.verify().ok
    quarantined = list((Path(url) / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith(victim.key)
    assert again.outcome.summary == first.outcome.summary


def test_every_student_method_trained_the_same_number_of_steps(tmp_path):
    config = small_config(str(tmp_path / "store"), methods=["supports_only", "augmented_supports", "base_pool", "tint",
                                                              "real_pool"])  # fmt: skip
    run = run_flow(benchmark, config=config, label="every method, one budget")
    record = find_run(config.store, run.outcome.run_id)
    store = ArtifactStore(config.store)
    steps = {(e, method): store.get(ref)["curves"]["steps"] for e, by_method in record.students.items()
             for method, ref in by_method.items()}  # fmt: skip
    assert {method for _, method in steps} == set(config.methods) and len(steps) == 2 * len(config.methods)
    assert set(steps.values()) == {config.student.training.steps}
    # the students of images really saw their images: one KD loss per step; supports-only none
    curves = {method: store.get(ref)["curves"]["curves"] for method, ref in record.students["0"].items()}
    assert "kd_loss" not in curves["supports_only"]
    assert all(len(curves[m]["kd_loss"]) == config.student.training.steps for m in config.methods[1:])


def test_the_controls_are_cached_and_changing_one_controls_m_reruns_only_its_steps(tmp_path):
    config = small_config(str(tmp_path / "store"), methods=["supports_only", "augmented_supports", "base_pool"])
    first = run_flow(benchmark, config=config)
    assert first.executed()["augment-supports"] == 2 and first.executed()["pool"] == 4  # base and real (reference)
    assert run_flow(benchmark, config=config, label="controls, second run").all_cached

    controls = config.controls
    more_copies = config.updated(controls=controls.updated(augmented_supports=controls.augmented_supports.updated(
        images_per_class=6)))  # fmt: skip
    changed = run_flow(benchmark, config=more_copies, label="augmented_supports M changed")
    assert changed.executed() == {"augment-supports": 2, "label": 2, "quality": 2, "distill": 2, "evaluate": 2,
                                  "aggregate": 1}  # fmt: skip
    more_base = config.updated(controls=controls.updated(base_pool=controls.base_pool.updated(images_per_class=6)))
    changed = run_flow(benchmark, config=more_base, label="base_pool M changed")
    assert changed.executed() == {"pool": 2, "label": 2, "quality": 2, "distill": 2, "evaluate": 2, "aggregate": 1}
    summary = changed.outcome.summary
    assert summary.methods["base_pool"].teacher_agreement is None  # base images are meant for no episode class
    assert set(summary.methods["base_pool"].gains) == {"supports_only", "augmented_supports"}
