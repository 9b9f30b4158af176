"""Generator steps: specialise a unit of classes (textual + null-text inversion), generate each class's images.

A unit is any group of an episode's classes computed together on one device; artifacts are one per class and their
keys never mention the unit, so grouping classes by episode or running them one by one gives the same keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tint_core.devices import resolve_device
from tint_core.diffusion import (
    Backbone,
    BackboneConfig,
    ClassSpecialization,
    backbone_identity,
    generate_images,
    load_backbone,
    specialize,
)
from tint_core.pipeline.config import GeneratorConfig, generator_method, method_generation
from tint_core.pipeline.data import load_episode
from tint_core.pipeline.resources import MODELS, open_store
from tint_core.pipeline.step import Output, Step
from tint_core.progress import ProgressFn
from tint_core.store import ArtifactRef, ArtifactStore, ImageSet

logger = logging.getLogger("tint_core.pipeline")

SPECIALIZE = Step("specialize", 2)  # 2: the supports' reconstructions stored
GENERATE = Step("generate", 1)


def diffusion_backbone(config: BackboneConfig) -> Backbone:
    """The diffusion backbone, loaded once per worker process and kept for the next steps."""
    identity = backbone_identity(config.source, config.seed)
    key = ("diffusion", identity, str(resolve_device(config.device)), config.precision, config.compile_unet)
    return MODELS.get(key, lambda: load_backbone(**config.model_dump()))


def _specialization_params(generator: GeneratorConfig, class_name: str) -> dict[str, object]:
    # Device, compilation and the engine's scheduling change how fast, not what: they stay out of the key.
    spec = generator.specialization
    return {
        "preparation": spec.preparation, "textual_inversion": spec.textual_inversion, "null_text": spec.null_text,
        "precision": spec.backbone.precision, "seed": generator.seed, "class_name": class_name,
    }  # fmt: skip


def _specialize_outputs(store: ArtifactStore, episode: ArtifactRef, classes: Sequence[int],
                        generator: GeneratorConfig) -> list[Output]:  # fmt: skip
    data = load_episode(store, episode)
    backbone = generator.specialization.backbone
    identity = backbone_identity(backbone.source, backbone.seed)
    return [
        SPECIALIZE.output(_specialization_params(generator, data.classes[index].name),
                          {"supports": data.classes[index].supports_digest}, identity)
        for index in classes
    ]  # fmt: skip


def specialize_keys(store: str, episode: ArtifactRef, classes: list[int], generator: GeneratorConfig) -> list[str]:
    """Keys of the unit's class specialisations (one per class)."""
    return [output.key for output in _specialize_outputs(open_store(store), episode, classes, generator)]


def specialize_unit(store: str, episode: ArtifactRef, classes: list[int], generator: GeneratorConfig,
                    progress: ProgressFn | None = None) -> list[ArtifactRef]:  # fmt: skip
    """Specialise the backbone to the episode's ``classes`` together, computing only those not in the store.

    Returns:
        One reference per class, in the order of ``classes``: parts ``inversion`` (tensors), ``token``
        ({token: vector}), ``meta`` (JSON strings, see ``ClassSpecialization.to_tensors``) and ``reconstructions``
        (ImageSet with column psnr: each support as its null embeddings reproduce it, for reports). Each manifest
        records an equal share of the unit's compute time.
    """
    opened = open_store(store)
    outputs = _specialize_outputs(opened, episode, classes, generator)
    missing = [(index, output) for index, output in zip(classes, outputs, strict=True)
               if not opened.exists(output.key)]  # fmt: skip
    if missing:
        data = load_episode(opened, episode)
        supports = {data.classes[index].name: data.class_supports(index) for index, _ in missing}
        backbone = diffusion_backbone(generator.specialization.backbone)
        started = time.perf_counter()
        results = specialize(backbone, supports, generator.specialization, seed=generator.seed, progress=progress)
        share = (time.perf_counter() - started) / len(missing)
        for (_, output), result in zip(missing, results.values(), strict=True):
            tensors, meta = result.to_tensors()
            reconstructions = ImageSet.from_tensors(result.reconstructions, {"psnr": result.psnr.tolist()})
            output.put(opened, {"inversion": tensors, "token": {result.token: result.token_vector}, "meta": meta,
                                "reconstructions": reconstructions}, share)  # fmt: skip
    return [opened.ref(output.key) for output in outputs]


def load_specialization(store: ArtifactStore, ref: ArtifactRef) -> ClassSpecialization:
    """The class specialisation stored under ``ref``."""
    artifact = store.get(ref)
    meta = artifact["meta"]
    return ClassSpecialization.from_tensors(artifact["inversion"], meta, artifact["token"][meta["token"]])


def _generate_outputs(specializations: Sequence[ArtifactRef], generator: GeneratorConfig, method: str) -> list[Output]:
    sampling = generator_method(method)
    if sampling is None:
        raise ValueError(f"method {method!r} generates no images; generating methods: ti_only, tint, tint@<alpha>")
    backbone = generator.specialization.backbone
    identity = backbone_identity(backbone.source, backbone.seed)
    # The sampling and its effective settings, not the method's name: tint and tint@1 share their images.
    params = {"generation": method_generation(method, generator.generation), "method": sampling,
              "seed": generator.seed}  # fmt: skip
    return [GENERATE.output(params, {"specialization": ref}, identity) for ref in specializations]


def generate_keys(store: str, specializations: list[ArtifactRef], generator: GeneratorConfig, method: str) -> list[str]:
    """Keys of the unit's image sets (one per class)."""
    return [output.key for output in _generate_outputs(specializations, generator, method)]


def generate_unit(store: str, specializations: list[ArtifactRef], generator: GeneratorConfig, method: str,
                  progress: ProgressFn | None = None) -> list[ArtifactRef]:  # fmt: skip
    """Generate ``generator.generation.images_per_class`` images of each class with ``method`` (tint or ti_only).

    Each image is seeded by (seed, class, index), so a class's images do not depend on its unit.

    Returns:
        One reference per class: parts ``images`` (ImageSet with columns support, alpha) and ``meta``
        (JSON: class_name, method).
    """
    opened = open_store(store)
    outputs = _generate_outputs(specializations, generator, method)
    missing = [(ref, output) for ref, output in zip(specializations, outputs, strict=True)
               if not opened.exists(output.key)]  # fmt: skip
    if missing:
        specs = [load_specialization(opened, ref) for ref, _ in missing]
        backbone = diffusion_backbone(generator.specialization.backbone)
        started = time.perf_counter()
        generated = generate_images(
            backbone, specs, method_generation(method, generator.generation), seed=generator.seed,
            batch_size=generator.specialization.engine.generation_batch_size, method=generator_method(method),
            progress=progress,
        )  # fmt: skip
        share = (time.perf_counter() - started) / len(missing)
        for label, ((_, output), spec) in enumerate(zip(missing, specs, strict=True)):
            rows = generated.labels == label
            images = ImageSet.from_tensors(generated.images[rows], {
                "support": generated.support_index[rows].tolist(), "alpha": generated.alpha[rows].tolist(),
            })  # fmt: skip
            output.put(opened, {"images": images, "meta": {"class_name": spec.class_name, "method": method}}, share)
    return [opened.ref(output.key) for output in outputs]


def unit_refs(store: str, episode: ArtifactRef, classes: list[int], generator: GeneratorConfig,
              methods: Sequence[str]) -> list[ArtifactRef]:  # fmt: skip
    """References to a unit's class specialisations, then its image sets per method, all already in the store
    (written by a worker's run of the unit).

    Raises:
        ArtifactNotFoundError: one of them is missing.
    """
    artifacts = open_store(store)
    specializations = [artifacts.ref(key) for key in specialize_keys(store, episode, classes, generator)]
    images = [artifacts.ref(key) for method in methods for key in generate_keys(store, specializations, generator,
                                                                                 method)]  # fmt: skip
    return specializations + images
