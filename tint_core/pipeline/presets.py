"""Ready-made benchmark configurations.

``demo_config`` is the main job's embedded default: the bundled digits, the tiny random-weight diffusion backbone,
the digits teacher/student recipe, a local store, CPU. It runs end to end in minutes on two cores. The tiny backbone
has random weights: its images are noise, so the demo's numbers show the machinery, not what TINT can do.
"""

from __future__ import annotations

from tint_core.diffusion.config import (
    BackboneConfig,
    GenerationConfig,
    NullTextConfig,
    SpecializationConfig,
    TextualInversionConfig,
)
from tint_core.fewshot import digits_recipe as recipe
from tint_core.fewshot.distill import DistillConfig
from tint_core.fewshot.student import StudentConfig
from tint_core.fewshot.teacher import TeacherConfig
from tint_core.pipeline.config import (
    BenchmarkConfig,
    DatasetConfig,
    EpisodeConfig,
    EvaluationConfig,
    GeneratorConfig,
    StudentSetup,
    TeacherSetup,
)

DEMO_STORE = "outputs/demo/store"


def demo_config(store: str = DEMO_STORE) -> BenchmarkConfig:
    """Five-way one-shot episodes of novel digits 5-9, every method, on the tiny backbone (see the module docstring)."""
    return BenchmarkConfig(
        store=store,
        dataset=DatasetConfig(source="digits", digits_size=recipe.SIZE),
        episodes=EpisodeConfig(split="novel", n_way=5, k_shot=1, n_query=15, episodes=10, seed=0),
        generator=GeneratorConfig(
            specialization=SpecializationConfig(
                backbone=BackboneConfig(source="tiny", device="cpu"),
                textual_inversion=TextualInversionConfig(steps=100, warmup_steps=10),
                null_text=NullTextConfig(num_steps=10),
            ),
            generation=GenerationConfig(images_per_class=40),
        ),
        teacher=TeacherSetup(
            model=TeacherConfig(backbone=recipe.teacher_backbone()),
            pretrain=recipe.teacher_pretrain(epochs=15),
            centre_on_base=True,
        ),
        student=StudentSetup(
            model=StudentConfig(backbone=recipe.student_backbone()),
            pretrain=recipe.student_pretrain(epochs=15),
            distill=DistillConfig(epochs=10, augment=recipe.DIGITS_AUGMENT),
            supports_only=DistillConfig(epochs=50, augment=recipe.DIGITS_AUGMENT),
        ),
        evaluation=EvaluationConfig(target_half_width=0.02),
    )


def demo_yaml() -> str:
    """``examples/demo.yaml``: the demo configuration written out, with a header saying how to regenerate it."""
    header = (
        "# The main job's embedded defaults (tint_core.pipeline.presets.demo_config), written out: `make demo` "
        "runs them.\n# Regenerate after changing demo_config:\n#   python -c 'from tint_core.pipeline.presets "
        'import demo_yaml; print(demo_yaml(), end="")\' > examples/demo.yaml\n'
    )
    return header + demo_config().to_yaml()
