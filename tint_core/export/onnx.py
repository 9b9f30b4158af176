"""ONNX export of an image classifier, and onnxruntime inference over it.

The exported graph takes ``images``: float32 (batch, 3, S, S) RGB in [0, 1] at the model's input size S (the
batch axis is dynamic) and returns ``logits`` (batch, n_way). Normalisation is inside the graph; resizing is not
(resize with antialiased bilinear interpolation first, as :class:`OnnxClassifier` does). What a user needs to feed
the model — classes, input size, mean and std — is in the model's metadata (:func:`read_metadata`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tint_core.images import check_image_batch, resize

OPSET = 18  # what torch's dynamo exporter targets natively; onnxruntime ≥ 1.14 runs it
INPUT, OUTPUT = "images", "logits"
METADATA_PREFIX = "tint_"


class ExportMismatchError(ValueError):
    """An exported model does not reproduce the torch model it came from (the message says by how much)."""


def export_onnx(model: nn.Module, path: str | Path, input_size: int, metadata: Mapping[str, object],
                opset: int = OPSET) -> Path:  # fmt: skip
    """Export a CPU classifier (B, 3, S, S) → (B, n_way) in eval mode to one ONNX file with a dynamic batch axis.

    Args:
        metadata: JSON-serialisable values, stored as ``tint_<name>`` metadata properties.
    """
    import onnx

    path = Path(path)
    example = torch.rand(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals, not on this model
            program = torch.onnx.export(model, (example,), input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                                        dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)  # fmt: skip
    finally:
        model.train(was_training)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {f"{METADATA_PREFIX}{name}": json.dumps(value) for name, value in metadata.items()})
    onnx.save(proto, str(path))
    return path


def read_metadata(path: str | Path) -> dict[str, object]:
    """The ``tint_*`` metadata of a model written by :func:`export_onnx`, decoded (prefix removed)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {prop.key[len(METADATA_PREFIX):]: json.loads(prop.value) for prop in proto.metadata_props
            if prop.key.startswith(METADATA_PREFIX)}  # fmt: skip


class OnnxClassifier:
    """An exported classifier under onnxruntime on the CPU: images in [0, 1] of any size → logits.

    Args:
        path: an ONNX file written by :func:`export_onnx` (or any model with one (B, 3, S, S) input).
        threads: onnxruntime's intra-op threads; 0 lets it choose (one per core).
    """

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        shape = self.session.get_inputs()[0].shape
        self.input_name, self.input_size = self.session.get_inputs()[0].name, int(shape[-1])

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """One forward pass of a (B, 3, S, S) float32 batch already at the input size."""
        return torch.from_numpy(self.session.run(None, {self.input_name: batch.numpy()})[0])

    def __call__(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, n_way) logits, resized to the input size as the torch model resizes."""
        check_image_batch(images)
        return torch.cat([self.run(resize(chunk, self.input_size).float().contiguous())
                          for chunk in images.split(batch_size)])  # fmt: skip


@dataclass(frozen=True)
class ExportCheck:
    """How closely an exported model reproduced torch on real images."""

    images: int
    max_logit_difference: float
    predictions_equal: bool
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_logit_difference <= self.tolerance and self.predictions_equal

    def __str__(self) -> str:
        differing = "identical predictions" if self.predictions_equal else "predictions that differ"
        return (f"largest logit difference {self.max_logit_difference:.2e} (tolerance {self.tolerance:.0e}) and "
                f"{differing} on {self.images} images")  # fmt: skip


def check_export(reference: torch.Tensor, exported: OnnxClassifier, images: torch.Tensor,
                 tolerance: float = 1e-4) -> ExportCheck:  # fmt: skip
    """Compare torch's logits ``reference`` for ``images`` with the exported model's on the same images."""
    logits = exported(images)
    if logits.shape != reference.shape:
        raise ExportMismatchError(f"the exported model gives logits of shape {tuple(logits.shape)}, torch "
                                  f"{tuple(reference.shape)}")  # fmt: skip
    difference = float((logits - reference).abs().max())
    same = bool(torch.equal(logits.argmax(1), reference.argmax(1)))
    return ExportCheck(len(images), difference, same, tolerance)
