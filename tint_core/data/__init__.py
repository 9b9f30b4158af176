"""Few-shot datasets (ImageFolder trees or Parquet manifests on any fsspec URL) and seeded episodes."""

from tint_core.data.datasets import FewShotDataset, ImageRecord, load_images
from tint_core.data.digits import write_digits_dataset
from tint_core.data.episodes import Episode, EpisodeSampler, load_episodes, save_episodes

__all__ = [
    "Episode",
    "EpisodeSampler",
    "FewShotDataset",
    "ImageRecord",
    "load_episodes",
    "load_images",
    "save_episodes",
    "write_digits_dataset",
]
