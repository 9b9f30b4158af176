"""How a student is exported: the check's tolerance, the opset, int8 quantisation and its accuracy rule, and how
long speed is measured. A pydantic model: the distill application's ``export`` field and ``tint export``'s options."""

from __future__ import annotations

from pydantic import Field

from tint_core.config import TintConfig


class ExportConfig(TintConfig, title="Export"):
    """ONNX export of the student, checked against torch, with an optional int8 copy and a model card."""

    onnx: bool = Field(True, description="Write student.onnx, model_card.md and card.json (the distill "
                       "application; `tint export` always writes them).")  # fmt: skip
    tolerance: float = Field(1e-4, gt=0, le=1, description="Largest logit difference allowed between onnxruntime "
                             "and torch on real images (predictions must also be identical).")  # fmt: skip
    opset: int = Field(18, ge=18, le=23, description="ONNX opset (18: what torch's exporter writes natively).")
    quantize: bool = Field(False, description="Also write student.int8.onnx (dynamic int8 quantisation), if it "
                           "passes the accuracy rule.")  # fmt: skip
    max_quantized_drop: float = Field(0.01, ge=0, le=1, description="The accuracy rule: the int8 model is written only "
                                      "when it loses at most this fraction of accuracy (0.01 = 1 point) against the "
                                      "fp32 student on the same labelled images.")  # fmt: skip
    repeats: int = Field(30, ge=1, le=10_000, description="Timed passes of one image for the CPU latency (median); "
                         "the throughput takes the median of max(3, repeats/10) passes of a batch.")  # fmt: skip
    batch: int = Field(64, ge=1, le=4096, description="Batch size of the throughput measurement.")
