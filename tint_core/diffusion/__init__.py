"""The TINT generation engine: Stable Diffusion backbone, textual inversion, DDIM and null-text
inversion, TINT sampling (SPEC §2–6)."""

from tint_core.diffusion.backbone import Backbone, BackboneNotFoundError, backbone_identity, load_backbone
from tint_core.diffusion.config import (
    BackboneConfig,
    EngineConfig,
    GenerationConfig,
    NullTextConfig,
    PreparationConfig,
    SpecializationConfig,
    TextualInversionConfig,
)
from tint_core.diffusion.generation import GeneratedImages, generate_images, reconstruct
from tint_core.diffusion.specialization import ClassSpecialization, specialize

__all__ = [
    "Backbone",
    "BackboneConfig",
    "BackboneNotFoundError",
    "ClassSpecialization",
    "EngineConfig",
    "GeneratedImages",
    "GenerationConfig",
    "NullTextConfig",
    "PreparationConfig",
    "SpecializationConfig",
    "TextualInversionConfig",
    "backbone_identity",
    "generate_images",
    "load_backbone",
    "reconstruct",
    "specialize",
]
