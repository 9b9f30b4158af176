"""Tasks making the unlabelled images that are not generated: augmented supports and pools of real images."""

from prefect import task

from tasks.caching import StoredArtifacts
from tasks.runtime import CPU, STEP_OPTIONS, on_device
from tint_core.pipeline import unlabelled
from tint_core.pipeline.config import AugmentedSupportsConfig
from tint_core.store import ArtifactRef


@task(name="augment-supports", cache_policy=StoredArtifacts(keys=unlabelled.augment_keys), **STEP_OPTIONS)
def augment_supports(store: str, episode: ArtifactRef, config: AugmentedSupportsConfig,
                     images_per_class: int) -> list[ArtifactRef]:  # fmt: skip
    """Strongly augmented copies of each class's supports; one image set per class."""
    return on_device(CPU, unlabelled.augment_supports, store, episode, config, images_per_class)


@task(name="pool", task_run_name="pool-{method}", cache_policy=StoredArtifacts(keys=unlabelled.pool_keys),
      **STEP_OPTIONS)  # fmt: skip
def draw_pool(store: str, dataset: ArtifactRef, episode: ArtifactRef, method: str, images_per_class: int | None,
              seed: int) -> list[ArtifactRef]:  # fmt: skip
    """List an episode's pool of real images: its classes' unused images, or images of the base classes."""
    return unlabelled.draw_pool(store, dataset, episode, method, images_per_class, seed)
