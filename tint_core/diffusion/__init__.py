"""The TINT generation engine: Stable Diffusion backbone, textual inversion, DDIM and null-text
inversion, TINT sampling (SPEC §2–6).

Names are imported on first use (as diffusers and transformers do): the configuration models are light, while the
backbone pulls in diffusers, which takes seconds that a command's ``--help`` or a configuration check should not pay.
"""

# ruff: noqa: F401  (the TYPE_CHECKING imports are the lazy exports; ruff cannot read a computed __all__)
from __future__ import annotations

from typing import TYPE_CHECKING

from tint_core.lazy import lazy_exports

_HOMES = {
    "backbone": ("Backbone", "BackboneNotFoundError", "backbone_identity", "load_backbone"),
    "config": ("BackboneConfig", "DigitsBackboneConfig", "EngineConfig", "GenerationConfig", "NullTextConfig",
               "PreparationConfig", "SpecializationConfig", "TextualInversionConfig"),  # fmt: skip
    "generation": ("GeneratedImages", "generate_images", "reconstruct"),
    "specialization": ("ClassSpecialization", "specialize"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from tint_core.diffusion.backbone import Backbone, BackboneNotFoundError, backbone_identity, load_backbone
    from tint_core.diffusion.config import (
        BackboneConfig,
        DigitsBackboneConfig,
        EngineConfig,
        GenerationConfig,
        NullTextConfig,
        PreparationConfig,
        SpecializationConfig,
        TextualInversionConfig,
    )
    from tint_core.diffusion.generation import GeneratedImages, generate_images, reconstruct
    from tint_core.diffusion.specialization import ClassSpecialization, specialize
