"""The specialisation unit as a flow of its own: some of an episode's classes, specialised and then generated from,
on one device. A GPU worker runs it alone; the artifacts are the ones the benchmark's tasks would write."""

from prefect import flow
from pydantic import BaseModel

from tasks import StepTasks
from tint_core.pipeline.config import GeneratorConfig, Method, generator_method
from tint_core.store import ArtifactRef


class UnitOutcome(BaseModel):
    """The unit's class specialisations and, per generating method, its classes' image sets (in class order)."""

    specializations: list[ArtifactRef]
    images: dict[str, list[ArtifactRef]]


@flow(name="specialize")
def specialize(store: str, episode: ArtifactRef, classes: list[int], generator: GeneratorConfig,
               methods: list[Method] | None = None) -> UnitOutcome:  # fmt: skip
    """Specialise the backbone to the episode's ``classes``, then generate their images for each generating method.

    Args:
        store: the artifact store shared with the parent flow.
        episode: the episode artifact (from the benchmark's sample-episode step, or a support folder's index).
        classes: positions of the classes in the episode.
        generator: backbone, specialisation and generation settings.
        methods: generating methods to sample images for (default: tint): ti_only, tint, tint@<alpha>, tint@random.
    """
    steps = StepTasks(store)
    specializations = steps.specialize_unit(store, episode, classes, generator)
    generating = [method for method in (methods or ["tint"]) if generator_method(method)]
    images = {method: steps.generate_unit(store, specializations, generator, method) for method in generating}
    return UnitOutcome(specializations=specializations, images=images)
