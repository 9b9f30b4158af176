"""A pipeline step's output: the content key it is stored under, and computing it only when the store lacks it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tint_core.store import ArtifactRef, ArtifactStore, artifact_key

logger = logging.getLogger("tint_core.pipeline")


@dataclass(frozen=True)
class Step:
    """A named, versioned step; bump ``version`` whenever its output changes for the same inputs."""

    name: str
    version: int

    def output(self, params: Any = None, inputs: Mapping[str, object] | None = None, backbone: Any = None) -> Output:
        """The output this step makes from ``params`` and ``inputs`` (digests or ``ArtifactRef``s)."""
        return Output(self, params, dict(inputs or {}), backbone)


@dataclass(frozen=True)
class Output:
    """One artifact a step produces: what it depends on, hence its key."""

    step: Step
    params: Any
    inputs: dict[str, object] = field(default_factory=dict)
    backbone: Any = None

    @cached_property
    def key(self) -> str:
        """``artifact_key`` of the step, its version, parameters, input digests and backbone identity."""
        return artifact_key(step=self.step.name, version=self.step.version, params=self.params, inputs=self.inputs,
                            backbone=self.backbone)  # fmt: skip

    def ensure(self, store: ArtifactStore, compute: Callable[[], Mapping[str, Any]]) -> ArtifactRef:
        """The stored artifact's reference, computing and storing ``compute()``'s parts first if it is absent."""
        if store.exists(self.key):
            return store.ref(self.key)
        started = time.perf_counter()
        parts = compute()
        return self.put(store, parts, time.perf_counter() - started)

    def put(self, store: ArtifactStore, parts: Mapping[str, Any], seconds: float | None = None) -> ArtifactRef:
        """Store ``parts`` as this output, with the ``seconds`` computing them took (a no-op returning the stored
        reference if another writer was first)."""
        ref = store.put(self.key, parts, step=self.step.name, params=self.params, inputs=self.inputs,
                        seconds=seconds)  # fmt: skip
        logger.debug("stored %s artifact %s", self.step.name, self.key[:12])
        return ref
