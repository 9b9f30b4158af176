"""The Stable Diffusion backbone: components, loading (offline-first), and the primitive operations
every algorithm uses (encode, decode, text embeddings with learned tokens, noise prediction).

A ``Backbone`` never changes during specialisation: learned token vectors are injected into the
token-embedding output at the init word's position instead of being added to the tokenizer, so
several classes (and threads of work) share one backbone. Saved tokens still load through
diffusers' ``load_textual_inversion`` and produce the same text embedding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tint_core.devices import PRECISIONS, resolve_device
from tint_core.diffusion.config import DEFAULT_MODEL_ID, RANDOM_BACKBONES
from tint_core.images import check_image_batch

if TYPE_CHECKING:  # diffusers and transformers are imported where a backbone is built: they take seconds
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

logger = logging.getLogger(__name__)

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
# Checkpoints shipped inside the package, by name: trained here, small enough to commit.
BUILTIN_CHECKPOINTS = {"digits": Path(__file__).resolve().parents[1] / "assets" / "digits-ldm"}
_HASHED_FILE_BYTES = 64 * 2**20  # weight files up to this size enter a checkpoint's identity by content


class BackboneNotFoundError(FileNotFoundError):
    """A checkpoint is neither a local folder nor in the local Hugging Face cache."""


@dataclass(eq=False)
class Backbone:
    """A Stable Diffusion 1.x/2.x model ready for inversion and sampling.

    Frozen weights live in ``dtype`` on ``device``; every tensor the algorithms optimise or
    accumulate (token vectors, null embeddings, latents, losses) stays float32.
    """

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    identity: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    _text_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _compiled_unet: Callable[..., object] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from diffusers import DDIMScheduler

        prediction = self.scheduler.config.prediction_type
        if prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported scheduler prediction_type {prediction!r}: need 'epsilon' or 'v_prediction'")
        # DDIM with trailing spacing is part of the method (SPEC §2), whatever the checkpoint ships.
        self.scheduler = DDIMScheduler.from_config(self.scheduler.config, timestep_spacing="trailing")
        self.to(self.device, self.dtype)

    @classmethod
    def from_components(
        cls,
        components: dict[str, object],
        identity: str,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
    ) -> Backbone:
        """Assemble a backbone from diffusers/transformers components (keys of ``COMPONENTS``)."""
        missing = [name for name in COMPONENTS if components.get(name) is None]
        if missing:
            raise ValueError(f"missing backbone components: {', '.join(missing)}")
        return cls(
            **{name: components[name] for name in COMPONENTS},
            identity=identity,
            device=torch.device(device),
            dtype=resolve_dtype(dtype),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None) -> Backbone:
        """Move the frozen weights (in place) and return ``self``."""
        self.device = torch.device(device) if device is not None else self.device
        self.dtype = resolve_dtype(dtype) if dtype is not None else self.dtype
        for module in (self.unet, self.vae, self.text_encoder):
            module.to(device=self.device)
            if next(module.parameters()).dtype != self.dtype:
                module.to(dtype=self.dtype)
            module.requires_grad_(False)
            module.eval()
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(self.device, torch.float32)
        return self

    def compile_unet(self, backend: str | Callable[..., object] = "inductor", mode: str | None = None) -> Backbone:
        """Run every later noise prediction through ``torch.compile`` of the UNet; returns ``self``.

        The compiled module shares the UNet's weights, so results match eager execution up to kernel
        rounding. Each new batch size, dtype or grad mode compiles once more (minutes on a GPU for SD 1.5;
        it pays back over a 5000-step textual inversion, not over a few calls). Calling it again
        changes nothing.
        """
        if self._compiled_unet is None:
            # fullgraph: a graph break would silently fall back to slow Python-level execution
            self._compiled_unet = torch.compile(self.unet, backend=backend, mode=mode, fullgraph=True)
        return self

    @property
    def compiled(self) -> bool:
        """Whether noise predictions run through ``torch.compile`` (see ``compile_unet``)."""
        return self._compiled_unet is not None

    # ----------------------------------------------------------------------------------------------
    # geometry

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def working_size(self) -> int:
        """Image side the backbone works at (512 for SD 1.5)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = int(self.unet.config.sample_size)
        return (int(self.unet.config.in_channels), size, size)

    @property
    def text_shape(self) -> tuple[int, int]:
        """(sequence length, width) of a prompt embedding."""
        return (int(self.tokenizer.model_max_length), int(self.text_encoder.config.hidden_size))

    def timesteps(self, num_steps: int) -> list[int]:
        """The DDIM timesteps for ``num_steps`` sampling steps, descending (trailing spacing)."""
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(num_steps)
        return [int(t) for t in scheduler.timesteps]

    # ----------------------------------------------------------------------------------------------
    # images ↔ latents

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] at the working size → latents (B, 4, h, w), float32."""
        check_image_batch(images)
        if images.shape[-2:] != (self.working_size, self.working_size):
            raise ValueError(
                f"images must be {self.working_size}×{self.working_size} for this backbone, "
                f"got {tuple(images.shape[-2:])}: prepare them first"
            )
        scale = self.vae.config.scaling_factor
        latents = []
        for chunk in images.split(batch_size):
            pixels = (chunk.to(self.device, self.dtype) * 2 - 1)
            latents.append(self.vae.encode(pixels).latent_dist.mean.float() * scale)
        return torch.cat(latents)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Latents (B, 4, h, w) → images (B, 3, H, W) in [0, 1], float32."""
        scale = self.vae.config.scaling_factor
        images = []
        for chunk in latents.split(batch_size):
            pixels = self.vae.decode((chunk / scale).to(self.device, self.dtype)).sample.float()
            images.append(((pixels + 1) / 2).clamp_(0, 1))
        return torch.cat(images)

    # ----------------------------------------------------------------------------------------------
    # text

    def token_ids(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts → (B, 77) token ids, padded to the tokenizer's maximum length."""
        return self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)

    def word_token_id(self, word: str) -> int:
        """The single token id of ``word``; raises ValueError when it is empty, several words or tokens."""
        if not word or not word.strip():
            raise ValueError("init word is empty: give one word the tokenizer knows, e.g. 'object'")
        if len(word.split()) != 1:
            raise ValueError(f"init word {word!r} has {len(word.split())} words: give exactly one")
        ids = self.tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(
                f"init word {word!r} is {len(ids)} tokens for this tokenizer "
                f"({self.tokenizer.convert_ids_to_tokens(ids)}): choose a word that is a single token"
            )
        return int(ids[0])

    def token_vector(self, token_id: int) -> torch.Tensor:
        """The (width,) float32 embedding row of a token."""
        return self.text_encoder.get_input_embeddings().weight[token_id].detach().float().clone()

    def text_embeddings(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        vectors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode token ids, optionally replacing one token per prompt by a learned vector.

        Args:
            ids: (B, 77) token ids.
            positions: (B,) index in each prompt whose token embedding is replaced.
            vectors: (B, width) replacement vectors; gradients flow back to them.

        Returns:
            (B, 77, width) float32 text embeddings (the encoder's last hidden state).
        """
        if (positions is None) != (vectors is None):
            raise ValueError("positions and vectors go together")
        if vectors is None:
            return self.text_encoder(ids.to(self.device))[0].float()
        rows = torch.arange(ids.shape[0], device=self.device)
        cols = positions.to(self.device)

        def inject(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            return output.index_put((rows, cols), vectors.to(output.dtype))

        # The hook is registered on a shared module, so only one encoding at a time may use it.
        with self._text_lock:
            handle = self.text_encoder.get_input_embeddings().register_forward_hook(inject)
            try:
                return self.text_encoder(ids.to(self.device))[0].float()
            finally:
                handle.remove()

    # ----------------------------------------------------------------------------------------------
    # noise prediction

    def predict_noise(self, latents: torch.Tensor, timesteps: torch.Tensor | int, text: torch.Tensor) -> torch.Tensor:
        """ε-prediction of the UNet, float32, for latents (B, 4, h, w) at timesteps (B,) or scalar.

        v-prediction checkpoints are converted: ε = sqrt(ᾱ_t)·v + sqrt(1 − ᾱ_t)·z_t.
        """
        if isinstance(timesteps, int):  # filled on the device: a host-to-device copy would synchronise
            t = torch.full((latents.shape[0],), timesteps, device=self.device, dtype=torch.long)
        else:
            t = timesteps.to(self.device).long().expand(latents.shape[0])
        unet = self.unet if self._compiled_unet is None else self._compiled_unet
        out = unet(latents.to(self.dtype), t, encoder_hidden_states=text.to(self.dtype)).sample.float()
        if self.scheduler.config.prediction_type == "v_prediction":
            alpha = self.alphas_cumprod[t].view(-1, 1, 1, 1)
            out = alpha.sqrt() * out + (1 - alpha).sqrt() * latents.float()
        return out


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """'fp32' | 'bf16' | torch dtype → torch dtype (fp16 is refused: null-text inversion fails in it)."""
    if isinstance(dtype, str):
        if dtype not in PRECISIONS:
            raise ValueError(f"unknown precision {dtype!r}; choose one of {sorted(PRECISIONS)}")
        return PRECISIONS[dtype]
    if dtype not in PRECISIONS.values():
        raise ValueError(f"unsupported dtype {dtype}: use float32 or bfloat16")
    return dtype


def load_backbone(
    source: str = DEFAULT_MODEL_ID,
    device: str | torch.device = "auto",
    precision: str | torch.dtype = "fp32",
    seed: int = 0,
    compile_unet: bool = False,
) -> Backbone:
    """Load a backbone, never downloading.

    Args:
        source: ``"tiny"`` or ``"sd15-random"`` (random weights built in process, seeded by ``seed``),
            ``"digits"`` (the latent diffusion model trained here on digits 0-4, shipped with the package),
            a local diffusers checkpoint folder, or a Hugging Face hub id already in the local cache.
        device: "auto", "cpu", "cuda", "cuda:1", …
        precision: "fp32" (default) or "bf16" for the frozen weights.
        compile_unet: run the UNet through ``torch.compile`` (see ``Backbone.compile_unet``).

    Raises:
        BackboneNotFoundError: not a folder and not in the local cache; the message says how to get it.
        ValueError: a checkpoint folder misses a component, or the model type is unsupported.
    """
    from tint_core.diffusion import random_backbones

    target = resolve_device(device)
    if source == "tiny":
        components, identity = random_backbones.tiny_components(seed), backbone_identity(source, seed)
    elif source == "sd15-random":
        components = random_backbones.sd15_random_components(seed, device=target)
        identity = backbone_identity(source, seed)
    else:
        folder, identity = _locate_checkpoint(source)
        components = _load_components(folder)
    backbone = Backbone.from_components(components, identity, target, precision)
    return backbone.compile_unet() if compile_unet else backbone


def backbone_identity(source: str = DEFAULT_MODEL_ID, seed: int = 0) -> str:
    """The identity ``load_backbone(source, seed=seed)`` gives, found without loading any weights.

    Cheap enough to compute before every pipeline step (it goes into artifact keys), and it fails early with
    ``BackboneNotFoundError`` when the checkpoint is not available offline.
    """
    if source in RANDOM_BACKBONES:
        return f"{source}:seed={seed}"
    return _locate_checkpoint(source)[1]


def _locate_checkpoint(source: str) -> tuple[Path, str]:
    """A local folder, a shipped checkpoint, or the snapshot of a hub id in the local cache, with a stable identity."""
    if source in BUILTIN_CHECKPOINTS:
        return BUILTIN_CHECKPOINTS[source], f"{source}:{_config_digest(BUILTIN_CHECKPOINTS[source])}"
    path = Path(source).expanduser()
    if path.is_dir():
        return path, f"folder:{path.resolve().name}:{_config_digest(path)}"
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise BackboneNotFoundError(f"backbone {source!r} is not a checkpoint folder (expected a diffusers folder)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(source, local_files_only=True))
    except LocalEntryNotFoundError as error:
        raise BackboneNotFoundError(
            f"backbone {source!r} is not in the local Hugging Face cache and tint never downloads. "
            f"On a machine with internet run `huggingface-cli download {source}` (then copy "
            f"~/.cache/huggingface to this machine), or pass the path of a local diffusers checkpoint folder."
        ) from error
    return snapshot, f"hub:{source}@{snapshot.name}"


def _config_digest(folder: Path) -> str:
    """Short SHA-256 over the files: their content up to 64 MiB each, the size of larger ones (gigabytes of Stable
    Diffusion weights are not re-read for every key; a retrained small model always gets a new identity)."""
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            relative = file.relative_to(folder).as_posix()
            size = file.stat().st_size
            content = file.read_bytes() if size <= _HASHED_FILE_BYTES else str(size).encode()
            digest.update(relative.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


def _load_components(folder: Path) -> dict[str, object]:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    missing = [name for name in COMPONENTS if not (folder / name).is_dir()]
    if missing:
        raise ValueError(f"checkpoint folder {folder} is missing component folder(s): {', '.join(missing)}")
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    if unet_config.get("addition_embed_type") or unet_config.get("in_channels", 4) != 4:
        raise ValueError(f"{folder} is not a Stable Diffusion 1.x/2.x text-to-image checkpoint (SDXL/inpainting unsupported)")
    # low_cpu_mem_usage needs `accelerate`, which is not a dependency: ask for the plain loader instead of a warning
    return {
        # use_safetensors: a checkpoint's pickled .bin weights are never read (they could run code)
        "unet": UNet2DConditionModel.from_pretrained(folder, subfolder="unet", low_cpu_mem_usage=False,
                                                     use_safetensors=True),
        "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", low_cpu_mem_usage=False, use_safetensors=True),
        "text_encoder": CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", use_safetensors=True),
        "tokenizer": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        "scheduler": DDIMScheduler.from_pretrained(folder, subfolder="scheduler"),
    }
