"""Seeded N-way K-shot Q-query episodes, stored as Parquet.

An episode is a pure function of (dataset split, N, K, Q, sampler seed, episode id): the sampler derives a
per-episode seed from the pair, so episode 17 is the same whether it is drawn first or after a thousand others,
and a stored episode can be checked by drawing it again.
"""

from __future__ import annotations

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tint_core.data.datasets import FewShotDataset, canonical_split


class Episode(BaseModel):
    """One few-shot task; images are ordered class-major (label 0's images first).

    Attributes:
        episode_id: index of the episode among those the sampler draws.
        seed: the sampler seed; ``(episode_id, seed)`` reproduces the episode.
        split: canonical split the classes come from.
        classes: the N class names; position = label.
        support_paths: N·K paths, class-major.
        query_paths: N·Q paths, class-major, disjoint from the supports.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: int = Field(ge=0)
    seed: int
    split: str
    classes: list[str]
    k_shot: int = Field(ge=1)
    n_query: int = Field(ge=0)
    support_paths: list[str]
    query_paths: list[str]

    @model_validator(mode="after")
    def _check_sizes(self) -> Episode:
        n_way = len(self.classes)
        if len(self.support_paths) != n_way * self.k_shot or len(self.query_paths) != n_way * self.n_query:
            raise ValueError(
                f"episode {self.episode_id}: expected {n_way}×{self.k_shot} supports and {n_way}×{self.n_query} "
                f"queries, got {len(self.support_paths)} and {len(self.query_paths)}"
            )
        if set(self.support_paths) & set(self.query_paths):
            raise ValueError(f"episode {self.episode_id}: supports and queries overlap")
        return self

    @property
    def n_way(self) -> int:
        return len(self.classes)

    @property
    def support_labels(self) -> torch.Tensor:
        """(N·K,) int64 labels of the supports."""
        return torch.arange(self.n_way).repeat_interleave(self.k_shot)

    @property
    def query_labels(self) -> torch.Tensor:
        """(N·Q,) int64 labels of the queries."""
        return torch.arange(self.n_way).repeat_interleave(self.n_query)


class EpisodeSampler:
    """Draws episodes from one split; validates the request up front, never loads an image.

    Args:
        dataset: where the classes and paths come from.
        split: split name or alias (``novel``/``test``, …).
        n_way, k_shot, n_query: N classes, K supports and Q queries per class.
        seed: sampler seed; each episode's generator is seeded from (seed, episode id).

    Raises:
        ValueError: N exceeds the number of classes, or a class has fewer than K + Q images (named).
    """

    def __init__(self, dataset: FewShotDataset, split: str, n_way: int, k_shot: int, n_query: int, seed: int = 0):
        self.split = canonical_split(split)
        self.n_way, self.k_shot, self.n_query, self.seed = n_way, k_shot, n_query, seed
        self._check_shape()
        self.classes = dataset.classes(self.split)
        self._paths = {label: dataset.paths(self.split, label) for label in self.classes}
        self._check_enough_classes()
        self._check_enough_images()

    def _check_shape(self) -> None:
        if self.n_way < 2 or self.k_shot < 1 or self.n_query < 0:
            raise ValueError(f"need N ≥ 2, K ≥ 1, Q ≥ 0; got N={self.n_way}, K={self.k_shot}, Q={self.n_query}")

    def _check_enough_classes(self) -> None:
        if self.n_way > len(self.classes):
            raise ValueError(
                f"N={self.n_way} ways requested but split {self.split!r} has only {len(self.classes)} classes"
            )

    def _check_enough_images(self) -> None:
        need = self.k_shot + self.n_query
        short = {label: len(paths) for label, paths in self._paths.items() if len(paths) < need}
        if short:
            listed = ", ".join(f"{label!r} has {count}" for label, count in short.items())
            raise ValueError(f"split {self.split!r}: K+Q = {need} images per class needed but class {listed}")

    def episode_generator(self, episode_id: int) -> torch.Generator:
        """The generator that draws episode ``episode_id`` (independent of other episodes)."""
        state = np.random.SeedSequence([self.seed, episode_id]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def sample(self, episode_id: int) -> Episode:
        """Draw episode ``episode_id``: N random classes, then K + Q distinct images of each."""
        generator = self.episode_generator(episode_id)
        chosen = torch.randperm(len(self.classes), generator=generator)[: self.n_way].tolist()
        supports, queries = [], []
        for index in chosen:
            paths = self._paths[self.classes[index]]
            picks = torch.randperm(len(paths), generator=generator)[: self.k_shot + self.n_query].tolist()
            supports += [paths[i] for i in picks[: self.k_shot]]
            queries += [paths[i] for i in picks[self.k_shot :]]
        # Lists are class-major within each role, which is what the label properties assume.
        return Episode(
            episode_id=episode_id,
            seed=self.seed,
            split=self.split,
            classes=[self.classes[i] for i in chosen],
            k_shot=self.k_shot,
            n_query=self.n_query,
            support_paths=supports,
            query_paths=queries,
        )

    def episodes(self, count: int, start: int = 0) -> list[Episode]:
        """Episodes ``start .. start + count - 1``."""
        return [self.sample(episode_id) for episode_id in range(start, start + count)]


def save_episodes(episodes: list[Episode], url: str, storage_options: dict | None = None) -> None:
    """Write episodes as Parquet, one row per image: episode_id, seed, split, k_shot, n_query, role, label, class,
    path."""
    rows = []
    for e in episodes:
        for role, paths, labels in (("support", e.support_paths, e.support_labels),
                                    ("query", e.query_paths, e.query_labels)):
            rows += [
                {"episode_id": e.episode_id, "seed": e.seed, "split": e.split, "k_shot": e.k_shot,
                 "n_query": e.n_query, "role": role, "label": label, "class": e.classes[label], "path": path}
                for path, label in zip(paths, labels.tolist(), strict=True)
            ]
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    with fs.open(path, "wb") as stream:
        pq.write_table(pa.Table.from_pylist(rows), stream)


def load_episodes(url: str, storage_options: dict | None = None) -> list[Episode]:
    """Read episodes written by :func:`save_episodes`, in stored order."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    with fs.open(path, "rb") as stream:
        rows = pq.read_table(stream).to_pylist()
    grouped: dict[int, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["episode_id"], []).append(row)
    episodes = []
    for episode_id, members in grouped.items():
        n_way = max(row["label"] for row in members) + 1
        classes = [next(row["class"] for row in members if row["label"] == label) for label in range(n_way)]
        # A stable sort by label restores class-major order without trusting the stored row order.
        ordered = sorted(members, key=lambda row: row["label"])
        first = members[0]
        episodes.append(
            Episode(
                episode_id=episode_id,
                seed=first["seed"],
                split=first["split"],
                classes=classes,
                k_shot=first["k_shot"],
                n_query=first["n_query"],
                support_paths=[row["path"] for row in ordered if row["role"] == "support"],
                query_paths=[row["path"] for row in ordered if row["role"] == "query"],
            )
        )
    return episodes
