"""The specialisation units as a flow of their own: the work a GPU worker runs (deployments/prefect.yaml).

Each unit is some of an episode's classes, specialised and then generated from, on this process's device; units run
one after another. The artifacts are the ones the benchmark's tasks would write, under the same keys, with the same
cache records, so the benchmark that dispatched the units finds them all in the shared store.
"""

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.stopping import stoppable
from tasks import StepTasks
from tasks.runtime import set_steps_per_device
from tint_core.pipeline.config import GeneratorConfig, Method, SpecializationUnit, generator_method
from tint_core.store import ArtifactRef


class UnitOutcome(BaseModel):
    """A unit's class specialisations and, per generating method, its classes' image sets (in class order)."""

    specializations: list[ArtifactRef]
    images: dict[str, list[ArtifactRef]]


@flow(name="specialize")
@stoppable
def specialize(store: str, units: list[SpecializationUnit], methods: list[Method] | None = None,
               generator: GeneratorConfig | None = None) -> list[UnitOutcome]:  # fmt: skip
    """Specialise the backbone to each unit's classes, then generate their images for each generating method.

    Args:
        store: the artifact store shared with the parent flow.
        units: episode artifacts (the benchmark's sample-episode step) and the positions of the classes to specialise.
        methods: generating methods to sample images for (default: tint): ti_only, tint, tint@<alpha>, tint@random.
        generator: advanced: backbone, specialisation and generation settings (the benchmark always passes its own;
            none: the defaults, Stable Diffusion 1.5 as in SPEC).
    """
    generator = generator if generator is not None else GeneratorConfig()
    set_steps_per_device(1)  # units one after another on the device, whatever an earlier flow of this process set
    steps, logger = StepTasks(store), get_run_logger()
    generating = [method for method in (methods or ["tint"]) if generator_method(method)]
    outcomes = []
    for index, unit in enumerate(units, start=1):
        specializations = steps.specialize_unit(store, unit.episode, unit.classes, generator)
        images = {method: steps.generate_unit(store, specializations, generator, method) for method in generating}
        outcomes.append(UnitOutcome(specializations=specializations, images=images))
        logger.info("unit %d of %d done: episode %s, classes %s", index, len(units), unit.episode.key[:12],
                    unit.classes)  # fmt: skip
    return outcomes
