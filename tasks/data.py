"""Data tasks: index the dataset, draw episodes, index a folder of supports."""

from prefect import task

from tasks.caching import StoredArtifacts
from tasks.runtime import STEP_OPTIONS
from tint_core.pipeline import data
from tint_core.pipeline.config import DatasetConfig, EpisodeConfig
from tint_core.store import ArtifactRef


@task(name="index-dataset", cache_policy=StoredArtifacts(keys=data.dataset_keys), **STEP_OPTIONS)
def index_dataset(store: str, dataset: DatasetConfig) -> ArtifactRef:
    """List the dataset's images by split and class (writing the bundled digits into the store first if needed)."""
    return data.index_dataset(store, dataset)


@task(name="sample-episode", task_run_name="sample-episode-{episode_id}",
      cache_policy=StoredArtifacts(keys=data.episode_keys), **STEP_OPTIONS)  # fmt: skip
def sample_episode(store: str, dataset: ArtifactRef, episodes: EpisodeConfig, episode_id: int,
                   image_size: int | None) -> ArtifactRef:  # fmt: skip
    """Draw one seeded episode and record the digest of each of its images."""
    return data.sample_episode(store, dataset, episodes, episode_id, image_size)


@task(name="index-supports", cache_policy=StoredArtifacts(keys=data.support_set_keys), **STEP_OPTIONS)
def index_support_set(store: str, folder: str, image_size: int | None) -> ArtifactRef:
    """Record a folder of support images (one subfolder per class) with the digest of each image."""
    return data.index_support_set(store, folder, image_size)
