"""Specialisation units run on workers: a chunk of units becomes one run of the ``specialize`` deployment.

The task waits for the run and submits it again when it crashed (its worker died: Prefect marks a run whose
heartbeats stop as Crashed, deployments/automations/) or failed. Nothing comes back through Prefect: the worker's
tasks wrote their artifacts and cache records to the shared store, where the benchmark's own tasks find them. The
task is cached like a step: when every artifact of its units is already in the store, no deployment run is made.
"""

from typing import Any

from prefect import get_run_logger, task
from prefect.deployments import run_deployment

from tasks.caching import StoredArtifacts
from tasks.runtime import STEP_OPTIONS
from tint_core.pipeline.config import ExecutionConfig, GeneratorConfig, SpecializationUnit
from tint_core.pipeline.generation import specialize_keys, unit_refs
from tint_core.store import ArtifactRef

POLL_SECONDS = 2.0  # how often a waiting chunk asks the API for its run's state


class UnitsFailedError(RuntimeError):
    """Every attempt at a chunk of specialisation units ended without completing."""


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
    logger = get_run_logger()
    units = [SpecializationUnit(episode=episode, classes=group) for episode, group in zip(episodes, classes)]
    parameters = {"store": store, "units": units, "generator": generator, "methods": methods}
    states = []
    for attempt in range(1, execution.attempts + 1):
        run = run_deployment(execution.deployment, parameters=parameters, poll_interval=POLL_SECONDS,
                             tags=["tint-unit"])  # fmt: skip
        if run.state is not None and run.state.is_completed():
            return [ref for unit in units for ref in unit_refs(store, unit.episode, unit.classes, generator, methods)]
        states.append(run.state.name if run.state else "unknown")
        logger.warning("deployment run %s of %d unit(s) ended %s (attempt %d of %d)", run.name, len(units),
                       states[-1], attempt, execution.attempts)  # fmt: skip
    raise UnitsFailedError(f"{len(units)} specialisation unit(s) did not complete on {execution.deployment!r} in "
                           f"{execution.attempts} attempts (states: {', '.join(states)})")  # fmt: skip
