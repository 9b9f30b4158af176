"""Ready-made benchmark configurations on the bundled digits.

``demo_config`` is the main job's embedded default: the digits latent diffusion model shipped with the package
(trained here on digits 0-4 only), the digits teacher/student recipe, a local store, CPU; five-way one-shot episodes
of the novel digits 5-9. It runs end to end in minutes on two cores. ``digits_tint_config`` is the experiment of
benchmarks/digits_tint.py: the same data, every method and control, settings closer to SPEC. Every student trains for
the same budget of steps (``tint_core.fewshot.digits_recipe.training``). ``smoke_config`` is the pipeline end to end
in seconds on tiny random-weight models (a check that a server, its workers and the store work; its numbers mean
nothing). ``BENCHMARK_PRESETS`` names them for the run form and ``tint benchmark --preset``.
"""

from __future__ import annotations

from tint_core.diffusion.config import (
    DIGITS_CAPTION,
    BackboneConfig,
    EngineConfig,
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
)
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.config import BackboneConfig as FeatureBackboneConfig
from tint_core.fewshot.config import DistillConfig, PretrainConfig, StudentConfig, TeacherConfig
from tint_core.pipeline.config import (
    AugmentedSupportsConfig,
    BenchmarkConfig,
    ControlsConfig,
    DatasetConfig,
    DistillAppConfig,
    EpisodeConfig,
    EvaluationConfig,
    GeneratorConfig,
    StudentSetup,
    TeacherSetup,
)

DEMO_STORE = "outputs/demo/store"
METHODS_OF_THE_EXPERIMENT = ("supports_only", "augmented_supports", "base_pool", "ti_only", "tint", "tint@0.5",
                             "tint@random", "real_pool")  # fmt: skip


def digits_generator(ti_steps: int, images_per_class: int, ddim_steps: int) -> GeneratorConfig:
    """The shipped digits backbone on the CPU; its prompt template is the wording of its training captions."""
    return GeneratorConfig(
        specialization=SpecializationConfig(
            backbone=BackboneConfig(source="digits", device="cpu"),
            textual_inversion=TextualInversionConfig(steps=ti_steps, prompt_template=DIGITS_CAPTION, init_word="digit"),
            null_text=NullTextConfig(num_steps=ddim_steps),
            engine=EngineConfig(generation_batch_size=64),
        ),
        generation=GenerationConfig(images_per_class=images_per_class),
    )


def digits_teacher() -> TeacherSetup:
    """The digits teacher: pre-trained 15 epochs on base digits 0-4, centred on their mean feature."""
    return TeacherSetup(model=TeacherConfig(backbone=recipe.teacher_backbone()),
                        pretrain=recipe.teacher_pretrain(epochs=15), centre_on_base=True)  # fmt: skip


def digits_student() -> StudentSetup:
    """The digits student: pre-trained 15 epochs on base digits 0-4, trained for the common budget."""
    return StudentSetup(model=StudentConfig(backbone=recipe.student_backbone()),
                        pretrain=recipe.student_pretrain(epochs=15), training=recipe.training())  # fmt: skip


def digits_dataset() -> DatasetConfig:
    """scikit-learn's bundled digits at the recipe's size."""
    return DatasetConfig(source="digits", digits_size=recipe.SIZE)


def digits_config(store: str, episodes: EpisodeConfig, generator: GeneratorConfig, methods: list[str]) -> BenchmarkConfig:
    """Novel digits with the digits teacher/student recipe (both pre-trained 15 epochs on base digits 0-4)."""
    return BenchmarkConfig(
        store=store,
        dataset=digits_dataset(),
        episodes=episodes,
        generator=generator,
        teacher=digits_teacher(),
        student=digits_student(),
        methods=methods,
        controls=ControlsConfig(augmented_supports=AugmentedSupportsConfig(transforms=recipe.DIGITS_STRONG_AUGMENT)),
        evaluation=EvaluationConfig(target_half_width=0.02),
    )


def demo_generator() -> GeneratorConfig:
    """The demo's specialisation and generation: 100 TI steps, 10 DDIM/NTI steps, 20 images per class."""
    return digits_generator(ti_steps=100, images_per_class=20, ddim_steps=10)


def demo_config(store: str = DEMO_STORE) -> BenchmarkConfig:
    """Eight five-way one-shot episodes of novel digits 5-9: supports only, augmented supports, TI only, TINT at
    α = 1 and 0.5, real pool."""
    return digits_config(
        store, EpisodeConfig(split="novel", n_way=5, k_shot=1, n_query=15, episodes=8, seed=0), demo_generator(),
        ["supports_only", "augmented_supports", "ti_only", "tint", "tint@0.5", "real_pool"],
    )  # fmt: skip


def digits_distill_config(supports: str, output: str, store: str = DEMO_STORE) -> DistillAppConfig:
    """The application on a CPU (``tint distill SUPPORTS OUTPUT --preset digits``): the shipped digits backbone with
    the demo's specialisation, and the digits teacher and student prepared on the base digits 0-4. The store is the
    demo's, so a demo already run has prepared both backbones; supports are resized to the recipe's size."""
    return DistillAppConfig(supports=supports, output=output, store=store, image_size=recipe.SIZE,
                            generator=demo_generator(), base=digits_dataset(), teacher=digits_teacher(),
                            student=digits_student())  # fmt: skip


# ``tint distill --preset NAME``: the application's embedded configurations.
DISTILL_PRESETS = {
    "sd15": lambda supports, output: DistillAppConfig(supports=supports, output=output),
    "digits": digits_distill_config,
}


def digits_tint_config(k_shot: int, episodes: int, store: str = "outputs/digits-tint/store",
                       seed: int = 1) -> BenchmarkConfig:  # fmt: skip
    """The experiment: every method, α = 1, 0.5 and random, 300 TI steps, 25 DDIM steps, 32 images per class, on
    the episodes of ``seed`` (1; the unequal-budget experiment of 2026-11-26 used 0)."""
    return digits_config(
        store, EpisodeConfig(split="novel", n_way=5, k_shot=k_shot, n_query=15, episodes=episodes, seed=seed),
        digits_generator(ti_steps=300, images_per_class=32, ddim_steps=25), list(METHODS_OF_THE_EXPERIMENT),
    )  # fmt: skip


def smoke_config(store: str = "outputs/smoke/store") -> BenchmarkConfig:
    """The demo's shape at test scale, on the tiny random-weight backbone and networks: 3-way 1-shot, 4 queries,
    2 episodes, supports only, TI only, TINT and the real pool, on the first 20 images of each digit; seconds per
    run."""
    base = demo_config(store)
    generator = GeneratorConfig(
        specialization=SpecializationConfig(
            backbone=BackboneConfig(source="tiny", device="cpu"),
            textual_inversion=TextualInversionConfig(steps=3, warmup_steps=1),
            null_text=NullTextConfig(num_steps=3, inner_steps=2),
        ),
        generation=GenerationConfig(images_per_class=4),
    )
    teacher = FeatureBackboneConfig(name="tint_convnet_tiny", input_size=16,
                                    model_kwargs={"img_size": 16, "global_pool": "flatten"})  # fmt: skip
    student = FeatureBackboneConfig(name="resnet12_tiny", input_size=16, model_kwargs={"img_size": 16})
    return base.updated(
        # A ninth of the digits: the store is written and the backbones pre-trained in a ninth of the time (a run on
        # S3 makes 1797 requests to write them all), and 20 leave spare images for the real pool and the quality's
        # neighbours at K up to 12 (Q = 4, k = 3).
        dataset=base.dataset.updated(digits_per_class=20),
        methods=["supports_only", "ti_only", "tint", "real_pool"],
        episodes=base.episodes.updated(n_way=3, n_query=4, episodes=2),
        generator=generator,
        teacher=TeacherSetup(model=TeacherConfig(backbone=teacher), pretrain=PretrainConfig(epochs=1),
                             centre_on_base=True),  # fmt: skip
        student=StudentSetup(model=StudentConfig(backbone=student), pretrain=PretrainConfig(epochs=1),
                             training=DistillConfig(steps=3, batch_size=16)),  # fmt: skip
    )


# The run form's and `tint benchmark --preset`'s embedded configurations (store: each its own default).
BENCHMARK_PRESETS = {
    "demo": demo_config,
    "digits-experiment": lambda: digits_tint_config(k_shot=1, episodes=10),
    "sd15": lambda: BenchmarkConfig(),
    "smoke": smoke_config,
}


def demo_yaml() -> str:
    """``examples/demo.yaml``: the demo configuration written out, with a header saying how to regenerate it."""
    header = ("# The main job's embedded defaults (tint_core.pipeline.presets.demo_config), written out: `make demo` "
              "runs them.\n# Regenerate after changing demo_config:\n#   python -c 'from tint_core.pipeline.presets "
              "import demo_yaml; print(demo_yaml(), end=\"\")' > examples/demo.yaml\n")  # fmt: skip
    return header + demo_config().to_yaml()
