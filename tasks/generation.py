"""Generator tasks: specialise a unit of classes, generate their images; both hold the backbone's device alone (they
share one loaded backbone, whose scheduler and token embeddings they change)."""

from prefect import get_run_logger, task

from tasks.caching import StoredArtifacts
from tasks.runtime import STEP_OPTIONS, on_device, progress_logger
from tint_core.pipeline import generation
from tint_core.pipeline.config import GeneratorConfig
from tint_core.store import ArtifactRef


@task(name="specialize", cache_policy=StoredArtifacts(keys=generation.specialize_keys), tags=["device"],
      **STEP_OPTIONS)  # fmt: skip
def specialize_unit(store: str, episode: ArtifactRef, classes: list[int], generator: GeneratorConfig
                    ) -> list[ArtifactRef]:  # fmt: skip
    """Textual + null-text inversion of some of an episode's classes on one device; one artifact per class."""
    refs = on_device(generator.specialization.backbone.device, generation.specialize_unit, store, episode, classes,
                     generator, progress_logger(f"specialise classes {classes}"), exclusive=True)  # fmt: skip
    get_run_logger().info("specialised classes %s: %s", classes, ", ".join(ref.key[:12] for ref in refs))
    return refs


@task(name="generate", cache_policy=StoredArtifacts(keys=generation.generate_keys), tags=["device"], **STEP_OPTIONS)
def generate_unit(store: str, specializations: list[ArtifactRef], generator: GeneratorConfig, method: str
                  ) -> list[ArtifactRef]:  # fmt: skip
    """Generate each specialised class's images with ``method`` (tint or ti_only); one image set per class."""
    return on_device(generator.specialization.backbone.device, generation.generate_unit, store, specializations,
                     generator, method, progress_logger(f"generate {method}"), exclusive=True)  # fmt: skip
