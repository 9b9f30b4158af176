"""Units run on workers: a chunk of specialisation units becomes one run of the ``specialize`` deployment, a chunk
of episodes' few-shot work one run of the ``fewshot`` deployment.

Each task waits for its run and submits it again when it crashed (its worker died: Prefect marks a run whose
heartbeats stop as Crashed, deployments/automations/) or failed. Nothing comes back through Prefect: the worker's
tasks wrote their artifacts and cache records to the shared store, where the benchmark's own tasks find them. The
tasks are cached like steps: when every artifact of their units is already in the store, no deployment run is made.
"""

from typing import Any

from prefect import get_run_logger, task
from prefect.deployments import run_deployment

from tasks.caching import StoredArtifacts
from tasks.runtime import STEP_OPTIONS
from tint_core.pipeline.classify import fewshot_keys, fewshot_refs
from tint_core.pipeline.config import (
    ExecutionConfig,
    FewShotUnit,
    GeneratorConfig,
    SpecializationUnit,
    StudentSetup,
    TeacherSetup,
)
from tint_core.pipeline.generation import specialize_keys, unit_refs
from tint_core.store import ArtifactRef

POLL_SECONDS = 2.0  # how often a waiting chunk asks the API for its run's state


class UnitsFailedError(RuntimeError):
    """Every attempt at a chunk of units ended without completing."""


def run_until_completed(deployment: str, parameters: dict[str, Any], attempts: int, what: str, tag: str) -> None:
    """Run ``deployment`` with ``parameters`` until a run completes, at most ``attempts`` times.

    Raises:
        UnitsFailedError: every run crashed, failed or was cancelled (the message names ``what`` and each state).
    """
    logger = get_run_logger()
    states = []
    for attempt in range(1, attempts + 1):
        run = run_deployment(deployment, parameters=parameters, poll_interval=POLL_SECONDS, tags=[tag])
        if run.state is not None and run.state.is_completed():
            return
        states.append(run.state.name if run.state else "unknown")
        logger.warning("deployment run %s of %s ended %s (attempt %d of %d)", run.name, what, states[-1], attempt,
                       attempts)  # fmt: skip
    raise UnitsFailedError(f"{what} did not complete on {deployment!r} in {attempts} attempts (states: "
                           f"{', '.join(states)})")  # fmt: skip


def _specialization_keys(store: str, episodes: list[ArtifactRef], classes: list[list[int]], generator: GeneratorConfig,
                         **_: Any) -> list[str]:  # fmt: skip
    return [
        key for episode, group in zip(episodes, classes) for key in specialize_keys(store, episode, group, generator)
    ]


def _generation(generator: GeneratorConfig, methods: list[str], **_: Any) -> dict[str, Any]:
    return {"generator": generator, "methods": methods}  # what the image sets depend on beyond the specialisations


@task(name="run-units-on-workers", tags=["dispatch"],
      cache_policy=StoredArtifacts(keys=_specialization_keys, variant=_generation),
      **STEP_OPTIONS)  # fmt: skip
def run_units_on_workers(execution: ExecutionConfig, store: str, episodes: list[ArtifactRef],
                         classes: list[list[int]], generator: GeneratorConfig, methods: list[str]
                         ) -> list[ArtifactRef]:  # fmt: skip
    """Run units (``episodes[i]``'s classes ``classes[i]``) as one deployment run; return references to what they
    wrote (every unit's specialisations, then its image sets per method).

    Raises:
        UnitsFailedError: ``execution.attempts`` runs in a row crashed, failed or were cancelled.
    """
    units = [SpecializationUnit(episode=episode, classes=group) for episode, group in zip(episodes, classes)]
    parameters = {"store": store, "units": units, "generator": generator, "methods": methods}
    run_until_completed(execution.deployment, parameters, execution.attempts,
                        f"{len(units)} specialisation unit(s)", "tint-unit")  # fmt: skip
    return [ref for unit in units for ref in unit_refs(store, unit.episode, unit.classes, generator, methods)]


def _fewshot_units(episodes: list[ArtifactRef], images: list[dict[str, list[list[ArtifactRef]] | None]],
                   references: list[list[ArtifactRef] | None]) -> list[FewShotUnit]:  # fmt: skip
    return [FewShotUnit(episode=episode, images=by_method, reference=reference)
            for episode, by_method, reference in zip(episodes, images, references, strict=True)]  # fmt: skip


def _episode_keys(store: str, episodes: list[ArtifactRef], images: list[dict[str, list[list[ArtifactRef]] | None]],
                  references: list[list[ArtifactRef] | None], teacher: TeacherSetup, student: StudentSetup,
                  teacher_backbone: ArtifactRef | None, student_backbone: ArtifactRef | None, quality_k: int,
                  **_: Any) -> list[str]:  # fmt: skip
    return [key for unit in _fewshot_units(episodes, images, references)
            for key in fewshot_keys(store, unit, teacher, student, teacher_backbone, student_backbone, quality_k)]  # fmt: skip


def _training(student: StudentSetup, **_: Any) -> dict[str, Any]:
    # what the students (hence their scores) depend on beyond the labels; the device changes none of them
    return {"student": student.model_dump(mode="json", exclude={"model": {"compute": {"device"}}})}


@task(name="run-episodes-on-workers", tags=["dispatch"],
      cache_policy=StoredArtifacts(keys=_episode_keys, variant=_training), **STEP_OPTIONS)  # fmt: skip
def run_episodes_on_workers(execution: ExecutionConfig, store: str, episodes: list[ArtifactRef],
                            images: list[dict[str, list[list[ArtifactRef]] | None]],
                            references: list[list[ArtifactRef] | None], teacher: TeacherSetup, student: StudentSetup,
                            teacher_backbone: ArtifactRef | None, student_backbone: ArtifactRef | None,
                            quality_k: int) -> list[ArtifactRef]:  # fmt: skip
    """Run episodes' few-shot work (``episodes[i]`` with every method's ``images[i]`` and quality reference
    ``references[i]``) as one run of the fewshot deployment; return references to everything it wrote.

    Raises:
        UnitsFailedError: ``execution.attempts`` runs in a row crashed, failed or were cancelled.
    """
    units = _fewshot_units(episodes, images, references)
    parameters = {"store": store, "units": units, "teacher": teacher, "student": student,
                  "teacher_backbone": teacher_backbone, "student_backbone": student_backbone, "quality_k": quality_k,
                  "steps_per_device": execution.steps_per_device}  # fmt: skip
    run_until_completed(execution.fewshot_deployment, parameters, execution.attempts,
                        f"few-shot work of {len(units)} episode(s)", "tint-fewshot")  # fmt: skip
    return [ref for unit in units
            for ref in fewshot_refs(store, unit, teacher, student, teacher_backbone, student_backbone, quality_k)]  # fmt: skip
