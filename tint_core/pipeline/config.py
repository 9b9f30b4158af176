"""The pipeline's configuration: one pydantic model per flow, also the YAML file and the Prefect UI form.

Class defaults follow SPEC (Stable Diffusion 1.5, a DINO teacher, 600 five-way episodes); ``presets.py`` holds the
small configurations that run on a CPU (the demo, the tests).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tint_core.config import TintConfig
from tint_core.diffusion.config import DigitsBackboneConfig, GenerationConfig, SpecializationConfig
from tint_core.evaluation.config import CostModel
from tint_core.export.config import ExportConfig
from tint_core.fewshot.config import DistillConfig, PretrainConfig, StrongAugmentConfig, StudentConfig, TeacherConfig
from tint_core.store import ArtifactRef

METHODS: tuple[str, ...] = ("supports_only", "augmented_supports", "base_pool", "ti_only", "tint", "real_pool")
# tint with its own α: tint@0.5 (a fixed α in [0, 1]) or tint@random (α ~ U[0, 1] per image)
_TINT_VARIANT = re.compile(r"tint@(random|0(\.\d+)?|1(\.0*)?)")
DIGITS = "digits"


def _check_method(name: str) -> str:
    if name not in METHODS and not _TINT_VARIANT.fullmatch(name):
        raise ValueError(f"unknown method {name!r}: use one of {', '.join(METHODS)}, tint@<alpha in [0, 1]> or "
                         "tint@random")  # fmt: skip
    return name


Method = Annotated[str, AfterValidator(_check_method)]


def method_kind(method: str) -> str:
    """The method a name belongs to: ``tint@0.5`` and ``tint@random`` are ``tint``."""
    return "tint" if method.startswith("tint@") else _check_method(method)


def generator_method(method: str) -> str | None:
    """The generation engine's sampling method for a benchmark method (``tint`` or ``text_only``); None when the
    method uses no synthetic images."""
    return {"ti_only": "text_only", "tint": "tint"}.get(method_kind(method))


def method_generation(method: str, generation: GenerationConfig) -> GenerationConfig:
    """The generation settings of a method: a tint variant's α replaces the configured one."""
    variant = method.removeprefix("tint@") if method.startswith("tint@") else None
    if variant is None:
        return generation
    if variant == "random":
        return generation.updated(random_alpha=True)
    return generation.updated(alpha=float(variant), random_alpha=False)


def method_order(method: str) -> tuple[int, str]:
    """Sort key of methods in tables: supports_only, the controls, ti_only, tint and its variants, real_pool."""
    return METHODS.index(method_kind(method)), method


class DatasetConfig(TintConfig, title="Dataset"):
    """Where the images come from and how they are loaded."""

    source: str = Field(
        DIGITS,
        description="'digits' (scikit-learn's bundled handwritten digits, written into the store once; base = 0-4, "
        "novel = 5-9) or the URL of an ImageFolder tree root/<split>/<class>/<image> (a local folder or s3://...); "
        "split folders base/val/novel (or train/val/test).",
    )
    digits_size: int = Field(16, ge=8, le=64, description="Side of the digits PNGs; ignored for other sources.")
    digits_per_class: int | None = Field(
        None,
        ge=1,
        le=183,
        description="Images of each digit written (the first in scikit-learn's order); None: all of them (174-183 "
        "each). Fewer make a smaller store that is quicker to write and to pre-train on (the smoke preset); ignored "
        "for other sources.",
    )
    image_size: int | None = Field(
        None,
        ge=8,
        le=1024,
        description="Resize every image to this square side on loading; None: images keep "
        "their size (they must then all be the same size).",
    )


class EpisodeConfig(TintConfig, title="Episodes"):
    """The few-shot episodes: N classes from a split, K supports and Q queries per class, E episodes, seeded."""

    split: str = Field("novel", description="Split the classes are drawn from (base, val, novel or an alias).")
    n_way: int = Field(5, title="Classes per episode (N)", ge=2, le=100, description="N: classes per episode.")
    k_shot: int = Field(1, title="Supports per class (K)", ge=1, le=100, description="K: support images per class.")
    n_query: int = Field(15, title="Queries per class (Q)", ge=1, le=1000, description="Q: query images per class (disjoint from the supports).")
    episodes: int = Field(600, ge=2, le=100_000, description="E: episodes (at least 2, for an interval).")
    seed: int = Field(0, description="Episode e is drawn from (seed, e): raising E keeps the first episodes.")


class GeneratorConfig(TintConfig, title="Image generator"):
    """The diffusion model's specialisation to each class and the images it then generates."""

    specialization: SpecializationConfig = Field(
        default_factory=SpecializationConfig, description="Backbone, textual inversion, null-text inversion, engine."
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="TINT sampling.")
    seed: int = Field(0, description="Root seed of specialisation and generation (each class derives its own).")


class SpecializationUnit(TintConfig, title="Specialisation unit"):
    """Some of an episode's classes, specialised together on one device (the unit a GPU worker runs)."""

    episode: ArtifactRef = Field(description="The episode artifact (the benchmark's sample-episode step).")
    classes: list[int] = Field(min_length=1, description="Positions of the classes in the episode.")


class FewShotUnit(TintConfig, title="Few-shot unit"):
    """An episode's few-shot work (the unit a fewshot worker runs): the teacher's score and, per method, the teacher's
    labels, the images' quality, the student and its score."""

    episode: ArtifactRef = Field(description="The episode artifact (the benchmark's sample-episode step).")
    images: dict[str, list[list[ArtifactRef]] | None] = Field(
        description="Method → its unlabelled images, per unit of the episode (None for supports_only)."
    )
    reference: list[ArtifactRef] | None = Field(
        None, description="The episode classes' real pool, the reference of the images' quality (None: not measured)."
    )


class TeacherSetup(TintConfig, title="Teacher"):
    """The few-shot teacher and how its backbone is prepared."""

    model: TeacherConfig = Field(default_factory=TeacherConfig, description="Backbone, prototype head, fine-tuning.")
    pretrain: PretrainConfig | None = Field(
        None, description="Pre-train the backbone on the dataset's base split first (None: use model.backbone.weights)."
    )
    centre_on_base: bool = Field(
        False, description="Subtract the mean feature of the base images before cosine similarity."
    )


class StudentSetup(TintConfig, title="Student"):
    """The tiny student, its base-class pre-training, and how every method's student is trained on an episode."""

    model: StudentConfig = Field(default_factory=StudentConfig, description="Architecture and initial weights.")
    pretrain: PretrainConfig | None = Field(
        default_factory=PretrainConfig,
        description="Pre-train the backbone on the dataset's base split first (None: use model.backbone.weights).",
    )
    training: DistillConfig = Field(
        default_factory=DistillConfig,
        description="One budget for every method: the same steps, optimiser, schedule and augmentation, the supports "
        "in every batch; methods with unlabelled images add a batch of them, distilled from the teacher's labels.",
    )


class AugmentedSupportsConfig(TintConfig, title="Augmented supports (control)"):
    """The augmented_supports control: M strongly augmented copies of each class's supports, labelled by the teacher
    like a generated set. It answers: does diffusion beat cheap augmentation?"""

    images_per_class: int | None = Field(
        None, ge=1, le=100_000,
        description="M: copies per class, cycling through its supports (None: as many as each generating method "
        "makes, generator.generation.images_per_class).",
    )  # fmt: skip
    transforms: StrongAugmentConfig = Field(default_factory=StrongAugmentConfig, description="Transforms per copy.")
    seed: int = Field(0, description="Root seed (each class derives its own from its supports).")


class BasePoolConfig(TintConfig, title="Base-class pool (control)"):
    """The base_pool control: real images of the base classes, labelled by the teacher. It answers: is
    class-specific data needed at all?"""

    images_per_class: int | None = Field(
        None, ge=1, le=100_000,
        description="M: base images per class of the episode (M·N in all, drawn without replacement); None: as many "
        "as each generating method makes, generator.generation.images_per_class.",
    )  # fmt: skip
    seed: int = Field(0, description="Root seed (each episode derives its own draw).")


class ControlsConfig(TintConfig, title="Controls"):
    """The cheap controls, scored like every method when named in methods."""

    augmented_supports: AugmentedSupportsConfig = Field(
        default_factory=AugmentedSupportsConfig, description="Augmented copies of the supports."
    )
    base_pool: BasePoolConfig = Field(default_factory=BasePoolConfig, description="Real images of the base classes.")


class ExecutionConfig(TintConfig, title="Where units run"):
    """Where the specialisation units and the episodes' few-shot work run. Artifacts and keys are the same either
    way."""

    fan_out: Literal["tasks", "deployments"] = Field(
        "tasks",
        title="Fan-out",
        description="'tasks': units run as tasks of this flow, one at a time per device. 'deployments': each chunk of "
        "units runs as a flow run of the specialize deployment, picked up by a worker of its work pool (GPU "
        "workers); this flow fans in over the shared store.",
    )
    deployment: str = Field(
        "specialize/tint-specialize",
        description="The specialize deployment, as '<flow name>/<deployment name>' (fan_out: deployments).",
    )
    units_per_run: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Specialisation units per deployment run: a larger chunk spreads a run's fixed orchestration "
        "cost over more units (see docs/deployments.md), a smaller one spreads the work over more workers.",
    )
    attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Deployment runs tried per chunk: a run that crashes with its worker, or fails, is submitted "
        "again (what it already wrote is reused) before the benchmark gives up.",
    )
    fewshot_fan_out: Literal["tasks", "deployments"] = Field(
        "tasks",
        title="Few-shot fan-out",
        description="'tasks': each episode's few-shot work (the teacher's score; per method: labels, image-set quality, "
        "the student, its score) runs as tasks of this flow. 'deployments': each chunk of episodes runs as a flow run "
        "of the fewshot deployment on its pool's workers, with the same attempts; this flow fans in over the store.",
    )
    fewshot_deployment: str = Field(
        "fewshot/tint-fewshot",
        description="The fewshot deployment, as '<flow name>/<deployment name>' (fewshot_fan_out: deployments).",
    )
    episodes_per_run: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Episodes per fewshot deployment run (fewshot_fan_out: deployments): larger chunks spread a run's "
        "fixed cost, smaller ones spread the work over more workers.",
    )
    steps_per_device: int = Field(
        1,
        ge=1,
        le=64,
        description="Heavy steps that run side by side on one device of a process: 1 runs them one at a time; more "
        "lets few-shot steps (pre-training, scoring, labelling, distillation, evaluation) fill a GPU that one small "
        "model leaves idle. Specialisation and generation still take turns (they share one loaded backbone). "
        "Results are the same either way.",
    )


class EvaluationConfig(TintConfig, title="Evaluation"):
    """How results are summarised and what the planner aims for."""

    target_half_width: float = Field(
        0.01,
        gt=0,
        le=0.5,
        description="Half width of the 95% interval the planner proposes (E, Q) for (0.01 = ±1 point).",
    )
    cost: CostModel = Field(default_factory=CostModel, description="Relative cost of an episode and of a query.")
    quality_k: int = Field(
        3,
        title="Neighbours k of the precision/recall",
        ge=0,
        le=100,
        description="k of the k-nearest-neighbour manifolds (Kynkäänniemi et al., 2019) by which each method's "
        "unlabelled images are scored against the episode classes' unused real images, in the teacher's feature "
        "space: precision (how many fall on the real images' manifold) and recall (how much of it they cover); "
        "0 skips the measurement.",
    )


class BenchmarkConfig(TintConfig, title="Benchmark"):
    """A few-shot benchmark: the same seeded episodes for every method, scored with intervals and paired gains."""

    store: str = Field(
        "outputs/store",
        description="Artifact store: a local folder or s3://bucket/prefix (credentials from the AWS environment).",
    )
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="Images and their splits.")
    episodes: EpisodeConfig = Field(default_factory=EpisodeConfig, description="N-way K-shot Q-query episodes.")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig, description="Diffusion specialisation.")
    teacher: TeacherSetup = Field(default_factory=TeacherSetup, description="Few-shot teacher.")
    student: StudentSetup = Field(default_factory=StudentSetup, description="Tiny student.")
    methods: list[Method] = Field(
        default_factory=lambda: list(METHODS),
        description="Compared on the same episodes: supports_only, augmented_supports and base_pool (the controls), "
        "ti_only (textual inversion only), tint (α of generator.generation), tint@<α> (e.g. tint@0.5), tint@random "
        "(α ~ U[0, 1] per image), real_pool (the classes' unused real images, where the split has spare ones).",
    )
    controls: ControlsConfig = Field(default_factory=ControlsConfig, description="The cheap controls' settings.")
    unit: Literal["episode", "class"] = Field(
        "episode",
        title="Specialisation unit",
        description="What one specialisation task covers: an episode's classes batched on one device, "
        "or a single class. Artifacts are per class either way, so the choice never changes a key.",
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig, description="Where units run.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Summary and planning.")

    @model_validator(mode="after")
    def _check_methods(self) -> BenchmarkConfig:
        if not self.methods:
            raise ValueError("methods is empty: name at least one of " + ", ".join(METHODS))
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods lists a method twice: {self.methods}")
        return self

    @property
    def needs_generator(self) -> bool:
        """Whether any method uses synthetic images (otherwise nothing is specialised)."""
        return any(generator_method(method) for method in self.methods)

    @property
    def measures_quality(self) -> bool:
        """Whether image-set quality is measured: k > 0 and some method has unlabelled images."""
        return self.evaluation.quality_k > 0 and any(method != "supports_only" for method in self.methods)

    def control_images(self, method: str) -> int:
        """M of a control (augmented_supports or base_pool): its own setting, else the generating methods' M."""
        control = {"augmented_supports": self.controls.augmented_supports, "base_pool": self.controls.base_pool}[method]
        return control.images_per_class or self.generator.generation.images_per_class


class DistillAppConfig(TintConfig, title="Distil a student"):
    """The application: one folder of support images per class → a distilled student; no queries needed."""

    supports: str = Field(description="Folder (local or s3://...) with one subfolder of support images per class.")
    output: str = Field(description="Local folder receiving student.safetensors, student.json, report.md, "
                        "pictures/ and (see export) student.onnx with its model card.")  # fmt: skip
    store: str = Field("outputs/store", description="Artifact store: a local folder or s3://bucket/prefix.")
    image_size: int | None = Field(
        None, ge=8, le=1024, description="Resize supports to this side on loading (None: they must share a size)."
    )
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig, description="Diffusion specialisation.")
    base: DatasetConfig | None = Field(
        None, title="Base classes", description="Images of other classes the teacher and student are pre-trained (and "
        "the teacher centred) on, as the benchmark does; only the base split is read. None: the backbones' weights "
        "are used as they are.",
    )
    teacher: TeacherSetup = Field(default_factory=TeacherSetup, description="Few-shot teacher and its preparation.")
    student: StudentSetup = Field(
        default_factory=lambda: StudentSetup(pretrain=None),
        description="Student, its preparation and its training (the distillation on the TINT images).",
    )
    export: ExportConfig = Field(default_factory=ExportConfig, description="The student as ONNX, checked against "
                                 "torch on the supports, with a model card measuring it against the teacher.")  # fmt: skip

    @model_validator(mode="after")
    def _preparation_needs_base(self) -> DistillAppConfig:
        if self.base is None and (self.teacher.pretrain or self.teacher.centre_on_base or self.student.pretrain):
            raise ValueError("pre-training or centring a backbone needs base classes: set base (e.g. the digits "
                             "dataset), or pretrain: null and centre_on_base: false")  # fmt: skip
        return self


class TrainBackboneConfig(TintConfig, title="Train the digits backbone"):
    """Train a small latent diffusion model on a dataset's base classes and export it as a checkpoint folder."""

    store: str = Field("outputs/store", description="Artifact store: a local folder or s3://bucket/prefix.")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="Images; the base split is used.")
    training: DigitsBackboneConfig = Field(default_factory=DigitsBackboneConfig, description="Architecture and "
                                           "schedule: the digits recipe.")  # fmt: skip
    output: str = Field("outputs/digits-ldm", description="Local folder receiving the diffusers checkpoint.")

    @property
    def image_size(self) -> int:
        """Side of the training images: ``dataset.image_size``, or for the digits their size."""
        if self.dataset.image_size is not None:
            return self.dataset.image_size
        if self.dataset.source == DIGITS:
            return self.dataset.digits_size
        raise ValueError("training needs images of one size: set dataset.image_size")
