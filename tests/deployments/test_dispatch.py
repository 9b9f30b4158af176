"""The dispatch of a chunk of units to the GPU pool, without a server: what it submits, when it submits again, and
when it gives up."""

from types import SimpleNamespace
from uuid import uuid4

import pytest
from prefect.logging import disable_run_logger
from prefect.states import Cancelled, Completed, Crashed, Failed

from tasks import dispatch
from tint_core.pipeline.config import (
    ExecutionConfig,
    FewShotUnit,
    GeneratorConfig,
    SpecializationUnit,
    StudentSetup,
    TeacherSetup,
)
from tint_core.store import ArtifactRef

EPISODES = [ArtifactRef(store="s3://b/tint", key="a" * 64, digest="b" * 64),
            ArtifactRef(store="s3://b/tint", key="c" * 64, digest="d" * 64)]  # fmt: skip


@pytest.fixture
def deployment_runs(monkeypatch):
    """Replace ``run_deployment``: each call ends in the next of the states the test sets; calls are recorded."""
    record = SimpleNamespace(states=[], calls=[])

    def run_deployment(name, parameters, **options):
        record.calls.append((name, parameters, options))
        return SimpleNamespace(id=uuid4(), name=f"run-{len(record.calls)}", state=record.states[len(record.calls) - 1])

    monkeypatch.setattr(dispatch, "run_deployment", run_deployment)
    monkeypatch.setattr(dispatch, "unit_refs", lambda store, episode, classes, generator, methods: [episode])
    return record


def run_chunk(attempts: int) -> list[ArtifactRef]:
    execution = ExecutionConfig(fan_out="deployments", deployment="specialize/gpu", attempts=attempts)
    with disable_run_logger():
        return dispatch.run_units_on_workers.fn(execution, "s3://b/tint", EPISODES, [[0, 2], [1]], GeneratorConfig(),
                                                ["tint", "ti_only"])  # fmt: skip


def test_a_crashed_or_failed_run_is_submitted_again_until_one_completes(deployment_runs):
    deployment_runs.states = [Crashed(), Failed(), Completed()]
    refs = run_chunk(attempts=3)
    assert refs == EPISODES  # every unit's artifacts, read from the store once a run completed
    assert len(deployment_runs.calls) == 3
    name, parameters, options = deployment_runs.calls[0]
    assert name == "specialize/gpu" and options["tags"] == ["tint-unit"]
    assert parameters["units"] == [SpecializationUnit(episode=EPISODES[0], classes=[0, 2]),
                                   SpecializationUnit(episode=EPISODES[1], classes=[1])]  # fmt: skip
    assert parameters["methods"] == ["tint", "ti_only"] and parameters["store"] == "s3://b/tint"
    assert all(call[1] == parameters for call in deployment_runs.calls)  # the same units each time


def test_a_chunk_that_never_completes_fails_the_task_naming_every_state(deployment_runs):
    deployment_runs.states = [Crashed(), Cancelled()]
    with pytest.raises(
        dispatch.UnitsFailedError, match=r"2 specialisation unit\(s\) .* 2 attempts .*Crashed, Cancelled"
    ):
        run_chunk(attempts=2)
    assert len(deployment_runs.calls) == 2


def test_episodes_few_shot_work_is_submitted_again_after_a_crash_with_every_method_s_images(deployment_runs,
                                                                                           monkeypatch):  # fmt: skip
    monkeypatch.setattr(dispatch, "fewshot_refs", lambda store, unit, *rest: [unit.episode])
    deployment_runs.states = [Crashed(), Completed()]
    execution = ExecutionConfig(fewshot_fan_out="deployments", fewshot_deployment="fewshot/gpu", steps_per_device=2)
    images = [{"supports_only": None, "tint": [[EPISODES[1]]]}, {"supports_only": None, "tint": [[EPISODES[0]]]}]
    teacher, student = TeacherSetup(), StudentSetup()
    with disable_run_logger():
        refs = dispatch.run_episodes_on_workers.fn(execution, "s3://b/tint", EPISODES, images, [None, [EPISODES[1]]],
                                                   teacher, student, None, None, 3)  # fmt: skip
    assert refs == EPISODES
    assert len(deployment_runs.calls) == 2 and deployment_runs.calls[0][1] == deployment_runs.calls[1][1]
    name, parameters, options = deployment_runs.calls[0]
    assert name == "fewshot/gpu" and options["tags"] == ["tint-fewshot"]
    assert parameters["units"] == [FewShotUnit(episode=EPISODES[0], images=images[0], reference=None),
                                   FewShotUnit(episode=EPISODES[1], images=images[1], reference=[EPISODES[1]])]  # fmt: skip
    assert parameters["teacher"] == teacher and parameters["student"] == student
    assert parameters["quality_k"] == 3 and parameters["steps_per_device"] == 2
    deployment_runs.states += [Failed(), Failed()]
    with disable_run_logger(), pytest.raises(dispatch.UnitsFailedError, match=r"few-shot work of 2 episode\(s\)"):
        dispatch.run_episodes_on_workers.fn(execution.updated(attempts=2), "s3://b/tint", EPISODES, images,
                                            [None, None], teacher, student, None, None, 3)  # fmt: skip
