"""Models initialised from torch's global RNG get the same weights whatever other threads build meanwhile (the flows
build diffusion backbones and timm models in parallel threads)."""

import threading

import torch

from tint_core.diffusion.random_backbones import tiny_components
from tint_core.fewshot.backbones import create_backbone
from tint_core.seeding import global_rng_seeded


def _weights(seed: int) -> dict[str, torch.Tensor]:
    components = tiny_components(seed)
    return {f"{name}.{key}": value for name in ("unet", "vae", "text_encoder")
            for key, value in components[name].state_dict().items()}  # fmt: skip


def test_a_model_built_while_other_threads_seed_models_gets_the_weights_it_gets_alone():
    alone = _weights(3)
    stop = threading.Event()

    def build_others() -> None:
        seed = 100
        while not stop.is_set():
            create_backbone("resnet12_tiny", seed=seed, img_size=16)
            seed += 1

    others = [threading.Thread(target=build_others) for _ in range(2)]
    for thread in others:
        thread.start()
    try:
        together = [_weights(3) for _ in range(3)]
    finally:
        stop.set()
        for thread in others:
            thread.join()
    for weights in together:
        assert weights.keys() == alone.keys()
        assert all(torch.equal(weights[key], alone[key]) for key in alone)


def test_the_seeded_block_restores_the_global_rng():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with global_rng_seeded(1):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with global_rng_seeded(1):
        assert torch.equal(torch.rand(3), inside)
