"""The short forms: what a person decides for a run, applied over a preset (or over a whole configuration).

A benchmark run from the Prefect UI asks for a preset, the dataset, N, K, Q, the episodes, the methods, the store
and where units run; everything else comes from the preset. ``overrides`` reaches any other field by its dotted
path, and the flows' ``config`` parameter takes a whole configuration instead of the preset: nothing a YAML file can
set is out of reach. The resolved configuration is what runs, and what the run's record and report keep.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tint_core.config import TintConfig
from tint_core.pipeline.config import BenchmarkConfig, DistillAppConfig, Method
from tint_core.pipeline.presets import BENCHMARK_PRESETS, DISTILL_PRESETS

OVERRIDES_HELP = ("Advanced: KEY=VALUE lines, each a dotted path to any field of the configuration and a YAML value "
                  "(docs/configuration.md), applied last; e.g. generator.generation.images_per_class=64.")  # fmt: skip


class BenchmarkRequest(TintConfig, title="Benchmark run"):
    """A benchmark run as a person asks for it: a preset and the few choices that differ between runs."""

    preset: Literal[tuple(BENCHMARK_PRESETS)] = Field(  # type: ignore[valid-type]  (the presets' names)
        "demo",
        description="demo: the main job (digits, CPU, minutes). digits-experiment: every method and control on the "
        "digits. sd15: Stable Diffusion 1.5 and a DINO teacher on a GPU (SPEC; set the dataset and store). smoke: "
        "tiny random-weight models, seconds, to check a cluster.",
    )
    dataset: str | None = Field(
        None, description="Dataset folder or s3:// URL (root/<split>/<class>/<image>), or 'digits'; none: the preset's."
    )
    n_way: int | None = Field(None, title="Classes per episode (N)", ge=2, le=100, description="None: the preset's.")
    k_shot: int | None = Field(None, title="Supports per class (K)", ge=1, le=100, description="None: the preset's.")
    n_query: int | None = Field(None, title="Queries per class (Q)", ge=1, le=1000, description="None: the preset's.")
    episodes: int | None = Field(None, ge=2, le=100_000, description="E, at least 2 for an interval; none: the "
                                 "preset's.")  # fmt: skip
    methods: list[Method] | None = Field(
        None, description="supports_only, augmented_supports, base_pool, ti_only, tint, tint@<α>, tint@random, "
        "real_pool; none: the preset's.",
    )
    store: str | None = Field(None, description="Artifact store: a local folder or s3://bucket/prefix; none: the "
                              "preset's.")  # fmt: skip
    fan_out: Literal["tasks", "deployments"] | None = Field(
        None, title="Where units run", description="tasks: in this flow run, one at a time per device; deployments: "
        "on the GPU pool's workers (the specialize deployment); none: the preset's.",
    )
    overrides: list[str] = Field(default_factory=list, title="Advanced: field overrides", description=OVERRIDES_HELP)

    def resolve(self, config: BenchmarkConfig | None = None) -> BenchmarkConfig:
        """The configuration to run: ``config`` (else the preset) with this request's choices and overrides.

        Raises:
            ConfigError: an override names an unknown field or an invalid value.
        """
        base = config if config is not None else BENCHMARK_PRESETS[self.preset]()
        episodes = {name: getattr(self, name) for name in ("n_way", "k_shot", "n_query", "episodes")
                    if getattr(self, name) is not None}  # fmt: skip
        changes: dict[str, object] = {"episodes": base.episodes.updated(**episodes)}
        if self.dataset is not None:
            changes["dataset"] = base.dataset.updated(source=self.dataset)
        if self.methods is not None:
            changes["methods"] = self.methods
        if self.store is not None:
            changes["store"] = self.store
        if self.fan_out is not None:
            changes["execution"] = base.execution.updated(fan_out=self.fan_out)
        return base.updated(**changes).with_overrides(self.overrides, source="overrides")


class DistillRequest(TintConfig, title="Distil a student"):
    """The application as a person asks for it: the supports, where the student goes, a preset."""

    supports: str = Field(description="Folder (local or s3://...) with one subfolder of support images per class.")
    output: str = Field(description="Local folder receiving student.safetensors, student.json, report.md and "
                        "pictures/.")  # fmt: skip
    preset: Literal[tuple(DISTILL_PRESETS)] = Field(  # type: ignore[valid-type]  (the presets' names)
        "sd15", description="sd15: Stable Diffusion 1.5, a DINO teacher, a ResNet-12 student (GPU; weights in the "
        "local cache). digits: the shipped digits backbone, teacher and student (CPU, minutes).",
    )
    store: str | None = Field(None, description="Artifact store: a local folder or s3://bucket/prefix; none: the "
                              "preset's.")  # fmt: skip
    overrides: list[str] = Field(default_factory=list, title="Advanced: field overrides", description=OVERRIDES_HELP)

    @classmethod
    def of(cls, config: DistillAppConfig) -> DistillRequest:
        """The request that runs ``config`` as it is (with the flow's ``config`` parameter)."""
        return cls(supports=config.supports, output=config.output)

    def resolve(self, config: DistillAppConfig | None = None) -> DistillAppConfig:
        """The configuration to run: ``config`` (else the preset) with these supports, output, store, overrides."""
        base = config if config is not None else DISTILL_PRESETS[self.preset](self.supports, self.output)
        changes: dict[str, object] = {"supports": self.supports, "output": self.output}
        if self.store is not None:
            changes["store"] = self.store
        return base.updated(**changes).with_overrides(self.overrides, source="overrides")
