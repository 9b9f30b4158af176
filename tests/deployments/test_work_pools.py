"""The deployments as people run them: a real server, pools and deployments made by deployments/setup.sh, process
workers, S3 on moto. The benchmark deployment fans its units out over the GPU pool's two workers; a worker killed in
the middle of a unit costs a retry, not the benchmark."""

import os
import signal
import threading
import time
from contextlib import contextmanager

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.records import read_task_runs
from tests.conftest import files_under, read_bucket, secret_leaks
from tests.deployments.conftest import REPO, Cluster
from tests.pipeline.helpers import small_config, timings
from tint_core.pipeline.config import BenchmarkConfig, ExecutionConfig
from tint_core.store import ArtifactStore

# Run beside the worker image's build, a test here has taken up to 515 s of the suite's 600 per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@contextmanager
def api(cluster: Cluster):
    with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
        yield


def on_workers(store: str) -> BenchmarkConfig:
    """The small benchmark with its units on the GPU pool; 40 TI steps, so that a unit's specialisations last long
    enough to be interrupted (a class's take seconds on one thread, and the kills below wait for one to be computing
    rather than for a fixed time; each step more is CPU the rest of the suite waits for); TINT against the supports
    only (the other controls add work, not dispatching)."""
    config = small_config(store, methods=["supports_only", "tint"], execution=ExecutionConfig(fan_out="deployments"))
    specialization = config.generator.specialization
    return config.updated(generator=config.generator.updated(specialization=specialization.updated(
        textual_inversion=specialization.textual_inversion.updated(steps=40))))  # fmt: skip


def trigger(config: BenchmarkConfig) -> tuple[FlowRun, float]:
    """Run the benchmark deployment as the UI's "Run" button does, and wait for it."""
    started = time.perf_counter()
    # An empty run section: the deployment's default choices (preset, store, …) must not apply over this configuration.
    run = run_deployment("benchmark/tint-benchmark", parameters={"run": {}, "config": config.model_dump(mode="json")},
                         timeout=900, poll_interval=1, as_subflow=False)  # fmt: skip
    return run, time.perf_counter() - started


def unit_runs(benchmark_run: FlowRun) -> list[FlowRun]:
    """The specialize deployment runs a benchmark run dispatched."""
    parents = [run.id for run in read_task_runs(benchmark_run.id)]
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(any_=parents)))  # fmt: skip


def test_setup_stores_the_schedules_and_a_typed_parameter_schema(cluster):
    with api(cluster), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("benchmark/tint-benchmark")
        schedules = {schedule.slug: schedule for schedule in deployment.schedules}
        pools = {name: client.read_work_pool(name) for name in ("tint-cpu", "tint-gpu")}
        specialize = client.read_deployment_by_name("specialize/tint-specialize")
    assert schedules["nightly"].schedule.cron == "0 2 * * *" and schedules["weekly-large"].schedule.cron == "0 4 * * 6"
    assert not any(schedule.active for schedule in schedules.values())  # inactive until someone turns them on
    assert schedules["weekly-large"].parameters["run"]["episodes"] == 100
    assert deployment.parameters["run"]["store"] == cluster.store  # TINT_STORE, read when deploying
    assert deployment.work_pool_name == "tint-cpu" and specialize.work_pool_name == "tint-gpu"
    assert pools["tint-gpu"].concurrency_limit == 2
    # The form: the short run section first, a whole configuration only on request; titles, not class names.
    schema = deployment.parameter_openapi_schema
    assert list(schema["properties"]) == ["run", "config"]
    assert schema["properties"]["run"]["$ref"].endswith("/BenchmarkRequest")
    assert {item.get("$ref", "").rsplit("/", 1)[-1] for item in schema["properties"]["config"]["anyOf"]} == {
        "BenchmarkConfig", ""}  # fmt: skip
    sections = {name: definition["title"] for name, definition in schema["definitions"].items()}
    assert sections["BenchmarkRequest"] == "Benchmark run" and sections["ExecutionConfig"] == "Where units run"
    assert not [title for name, title in sections.items() if title == name]
    episodes = schema["definitions"]["EpisodeConfig"]["properties"]["episodes"]
    assert episodes["type"] == "integer" and episodes["minimum"] == 2 and episodes["description"].startswith("E:")
    env = pools["tint-gpu"].base_job_template["variables"]["properties"]["env"]["default"]
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"


@pytest.fixture(scope="module")
def undisturbed(cluster) -> tuple[BenchmarkConfig, FlowRun, float]:
    """The benchmark deployment triggered once with its units on the workers: the configuration, the run, seconds."""
    config = on_workers(f"{cluster.store}/run")
    with api(cluster):
        run, seconds = trigger(config)
    assert run.state.is_completed(), run.state
    return config, run, seconds


def test_the_benchmark_deployment_runs_its_units_on_both_gpu_workers(cluster, undisturbed):
    """(Triggered again, it dispatches no unit: the few-shot test below.)"""
    config, first, first_seconds = undisturbed
    with api(cluster):
        units = unit_runs(first)
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[first.id])))  # fmt: skip
    assert len(units) == 2 and all(run.state.is_completed() for run in units)  # one per episode (unit: episode)
    assert {run.labels["prefect.worker.name"] for run in units} == {"gpu-a", "gpu-b"}
    assert first.labels["prefect.worker.name"] == "cpu-a"
    store = ArtifactStore(config.store)
    steps = [manifest.step for manifest in store.list()]
    assert steps.count("specialize") == 6 and steps.count("generate") == 6  # 2 episodes × 3 classes
    assert steps.count("aggregate") == 1
    assert {artifact.type for artifact in artifacts} >= {"markdown", "table", "progress"}
    timings.append(f"benchmark deployment, 2 units on 2 GPU-pool workers: {first_seconds:.0f} s")


def step_digests(store: ArtifactStore, steps: tuple[str, ...]) -> dict[str, list[str]]:
    """The content digests of the store's artifacts of each of ``steps`` (keys differ with the store's location)."""
    found: dict[str, list[str]] = {step: [] for step in steps}
    for manifest in store.list():
        if manifest.step in found:
            found[manifest.step].append(manifest.digest)
    return {step: sorted(values) for step, values in found.items()}


FEWSHOT_STEPS = ("teacher_score", "label", "quality", "distill", "evaluate")


def test_few_shot_units_on_both_gpu_workers_write_the_in_process_artifacts_and_rerun_from_the_store(cluster,
                                                                                                    undisturbed):  # fmt: skip
    """The undisturbed run computed its few-shot steps in its own process. With those artifacts gone, the same
    configuration with its few-shot work on the GPU pool computes them on the workers, digest for digest, and
    dispatches no specialisation unit (they are in the store); triggered once more, it dispatches nothing at all."""
    reference = undisturbed[0]
    store = ArtifactStore(reference.store)
    in_process = step_digests(store, FEWSHOT_STEPS)
    for manifest in store.list():
        if manifest.step in FEWSHOT_STEPS:
            store.quarantine(manifest.key, "test: the few-shot half computed again on workers")
    config = reference.updated(execution=reference.execution.updated(fewshot_fan_out="deployments"))
    with api(cluster):
        first, seconds = trigger(config)
        assert first.state.is_completed(), first.state
        dispatched = unit_runs(first)
        second, second_seconds = trigger(config)
        assert second.state.is_completed(), second.state
        again = unit_runs(second)
        second_tasks = read_task_runs(second.id)
    # One fewshot run per episode (episodes_per_run: 1), on both GPU-pool workers; no unit run: all in the store.
    assert len(dispatched) == 2 and all("teacher" in run.parameters for run in dispatched)
    assert all(run.state.is_completed() for run in dispatched)
    assert {run.labels["prefect.worker.name"] for run in dispatched} == {"gpu-a", "gpu-b"}
    assert sum(len(steps) for steps in in_process.values()) == 2 * (1 + 4 * len(reference.methods) - 2)
    assert step_digests(store, FEWSHOT_STEPS) == in_process
    keys = [manifest.key for manifest in store.list()]
    assert store.verify(keys).valid == keys
    assert again == [] and all(run.state.name == "Cached" for run in second_tasks)
    timings.append(f"the few-shot half of 2 episodes on 2 GPU-pool workers: {seconds:.0f} s, the same digests as "
                   f"in process; second trigger, all cached: {second_seconds:.0f} s")  # fmt: skip


def _crash_faster(cluster: Cluster, within: int) -> None:
    """The crashed-run automation of deployments/, with a shorter silence before a run counts as Crashed."""
    from prefect.events.schemas.automations import AutomationCore

    spec = yaml.safe_load((REPO / "deployments/automations/crashed-runs.yaml").read_text())
    spec["trigger"]["within"] = within
    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(spec["name"]):
            client.delete_automation(automation.id)
        client.create_automation(AutomationCore.model_validate(spec))


@pytest.mark.timeout(1200)  # a benchmark, a 50 s silence before the crash is noticed, and the unit's rerun
def test_a_worker_killed_in_the_middle_of_a_unit_costs_a_retry_and_changes_no_artifact(cluster, undisturbed):
    reference = undisturbed[0]
    disturbed = reference.updated(store=f"{cluster.store}/disturbed")
    with api(cluster):
        _crash_faster(cluster, within=50)
        outcome: dict = {}

        def trigger_disturbed() -> None:
            with api(cluster):  # settings are context variables: a new thread starts without them
                outcome["run"] = trigger(disturbed)[0]

        thread = threading.Thread(target=trigger_disturbed)
        started = time.perf_counter()
        thread.start()
        victim = _kill_the_worker_of_a_running_unit(cluster)
        thread.join(timeout=900)
        seconds = time.perf_counter() - started
        run = outcome["run"]
        units = unit_runs(run)
    assert run.state.is_completed(), run.state
    # The killed unit's run was marked Crashed when its heartbeats stopped; the same unit ran again elsewhere.
    crashed = [unit for unit in units if unit.state.name == "Crashed"]
    assert len(crashed) == 1 and crashed[0].labels["prefect.worker.name"] == victim
    again = [unit for unit in units if unit.state.is_completed() and unit.parameters == crashed[0].parameters]
    assert len(again) == 1 and again[0].labels["prefect.worker.name"] != victim
    assert len(units) == 3
    timings.append(f"benchmark with a GPU worker killed mid-unit: {seconds:.0f} s (crash detected after 50 s of "
                   "silence, the unit rerun on the other worker)")  # fmt: skip
    # The same artifacts as the undisturbed run (content digests; keys differ with the store's location), every one
    # complete and verified: nothing half-written.
    reference_store, store = ArtifactStore(reference.store), ArtifactStore(disturbed.store)
    assert step_digests(store, ("specialize", "generate")) == step_digests(reference_store, ("specialize", "generate"))
    keys = [manifest.key for manifest in store.list()]
    assert store.verify(keys).valid == keys


def _a_unit_computing(timeout: float = 300.0) -> FlowRun:
    """Wait for a unit on the GPU pool to be computing a class specialisation (so its run has sent its first heartbeat
    and has work left) and return its run; a unit that finished first is passed over for one still computing."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            running = [run for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))))
                       if run.labels.get("prefect.work-pool.name") == "tint-gpu" and run.infrastructure_pid]  # fmt: skip
            for run in running:
                if any(task.name.startswith("specialize") and task.state_type == StateType.RUNNING
                       for task in read_task_runs(run.id)):  # fmt: skip
                    return run
            time.sleep(0.25)
    raise TimeoutError("no unit on the GPU pool was seen computing a specialisation")


def _kill_the_worker_of_a_running_unit(cluster: Cluster) -> str:
    """Kill the worker of a unit in the middle of its work, and the run's process (a node lost); return the worker's
    name. Waiting for the computation rather than for a fixed time keeps the kill inside the unit on any machine."""
    run = _a_unit_computing()
    time.sleep(1)  # the heartbeat event on its way to the server
    name = run.labels["prefect.worker.name"]
    os.kill(int(str(run.infrastructure_pid).rsplit(":", 1)[-1]), signal.SIGKILL)
    os.killpg(os.getpgid(cluster.workers[name].pid), signal.SIGKILL)
    return name


@pytest.mark.timeout(1200)
def test_the_server_killed_and_restarted_under_a_running_benchmark_then_a_second_trigger_reuses_its_work(
        cluster, undisturbed):  # fmt: skip
    """On the store of the worker-killing test above (on a new one where it did not run): with its units' work set
    aside, the restarted run computes the units again (as a run that is interrupted would), not the rest as well."""
    reference = undisturbed[0]
    config = reference.updated(store=f"{cluster.store}/disturbed")
    store = ArtifactStore(config.store)
    for manifest in store.list():
        if manifest.step in ("specialize", "generate"):
            store.quarantine(manifest.key, "test: the units computed again under a server that is killed")
    with api(cluster):
        started = run_deployment("benchmark/tint-benchmark", timeout=0, as_subflow=False,
                                 parameters={"run": {}, "config": config.model_dump(mode="json")})  # fmt: skip
        _a_unit_computing()
        cluster.kill_server()
        time.sleep(5)  # down for a while: every client's calls fail meanwhile
        cluster.start_server()
        deadline = time.monotonic() + 600
        with get_client(sync_client=True) as client:
            while not (run := client.read_flow_run(started.id)).state.is_final():
                assert time.monotonic() < deadline, f"not final 600 s after the restart: {run.state}"
                time.sleep(2)
        # The run carried on, or ended in a state that says what happened: never left Running.
        assert run.state.is_completed() or (run.state.type in (StateType.FAILED, StateType.CRASHED)
                                            and run.state.message), run.state  # fmt: skip
        before = {manifest.key: manifest.created for manifest in store.list()}
        second, seconds = trigger(config)
    assert second.state.is_completed(), second.state
    after = {manifest.key: manifest.created for manifest in store.list()}
    assert {key: after[key] for key in before} == before  # every finished artifact reused, not remade
    steps = ("specialize", "generate")
    assert step_digests(store, steps) == step_digests(ArtifactStore(reference.store), steps)
    timings.append(f"the server killed and restarted under a benchmark run: the run ended {run.state.name} "
                   f"({len(before)} artifacts finished); a second trigger completed in {seconds:.0f} s, reusing them")


def test_no_process_of_the_cluster_wrote_its_secret_anywhere(cluster):
    """Last, after every run above: the server's and the workers' logs, the Prefect database and every object the
    runs wrote hold no trace of the AWS secret key they all had in their environment."""
    # The digits' PNGs (thousands per store) are encoded from scikit-learn's bundled arrays, nothing else: left out
    # here to save half a minute; the main job's test searches them too.
    cluster.database.checkpoint()
    outputs = (files_under(cluster.logs) | files_under(cluster.home) | files_under(cluster.database.data)
               | read_bucket(cluster.store, skip="/datasets/"))  # fmt: skip
    assert any("/base/" in name for name in outputs) and any("worker-gpu-a" in name for name in outputs)
    assert any("/artifacts/" in name for name in outputs)
    assert secret_leaks(cluster.secret, outputs) == []
