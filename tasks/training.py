"""Training a latent diffusion model on the base classes, and exporting it as a checkpoint folder."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.caching import StoredArtifacts
from tasks.runtime import CPU, STEP_OPTIONS, on_device, progress_logger
from tint_core.diffusion.config import DigitsBackboneConfig
from tint_core.pipeline import training
from tint_core.pipeline.resources import open_store
from tint_core.store import ArtifactRef


@task(name="train-diffusion", cache_policy=StoredArtifacts(keys=training.diffusion_training_keys), **STEP_OPTIONS)
def train_diffusion(store: str, dataset: ArtifactRef, training_config: DigitsBackboneConfig,
                    image_size: int) -> ArtifactRef:  # fmt: skip
    """Train the digits-style latent diffusion model on the dataset's base split."""
    return on_device(CPU, training.train_diffusion, store, dataset, training_config, image_size,
                     progress_logger("train the diffusion model", every=0.1))  # fmt: skip


@task(name="export-backbone", cache_policy=NO_CACHE)
def export_backbone(store: str, trained: ArtifactRef, folder: str) -> str:
    """Write the trained model as a diffusers checkpoint folder (always runs: cheap)."""
    return str(training.export_backbone(open_store(store), trained, folder))
