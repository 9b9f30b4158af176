"""int8 quantisation of an exported classifier with onnxruntime, kept only when it stays accurate enough."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field


class QuantizationResult(BaseModel):
    """The int8 model's accuracy beside the fp32 one's on the same labelled images, and whether it was kept."""

    images: int = Field(description="labelled images both models were measured on")
    fp32_accuracy: float
    int8_accuracy: float
    max_drop: float = Field(description="largest accuracy drop (fraction) the int8 model may have and be kept")
    kept: bool

    @property
    def drop(self) -> float:
        return self.fp32_accuracy - self.int8_accuracy

    def __str__(self) -> str:
        verdict = "kept" if self.kept else "not written"
        return (f"int8 {100 * self.int8_accuracy:.1f}% against fp32 {100 * self.fp32_accuracy:.1f}% on {self.images} "
                f"images ({-100 * self.drop:+.1f} points; at most {100 * self.max_drop:g} may be lost) → {verdict}")  # fmt: skip


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Dynamic int8 quantisation of ``source``'s weights (activations quantised at run time) into ``target``.

    The graph is first put through onnxruntime's pre-processing (shape inference, constant folding), which
    quantisation needs to see every convolution and matrix product.
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    target = Path(target)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        prepared = Path(folder) / "prepared.onnx"
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # onnxruntime logs its advice through the root logger
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(quiet)
    return target


def accept_quantized(fp32_accuracy: float, int8_accuracy: float, images: int, max_drop: float) -> QuantizationResult:
    """The accuracy rule: keep the int8 model when it loses at most ``max_drop`` (a fraction) of accuracy."""
    if not 0 <= max_drop <= 1:
        raise ValueError(f"max_drop is a fraction of accuracy in [0, 1], got {max_drop}")
    kept = fp32_accuracy - int8_accuracy <= max_drop + 1e-12  # accuracies are ratios of counts: no rounding games
    return QuantizationResult(images=images, fp32_accuracy=fp32_accuracy, int8_accuracy=int8_accuracy,
                              max_drop=max_drop, kept=kept)  # fmt: skip
