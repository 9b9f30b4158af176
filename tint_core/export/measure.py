"""What a classifier costs to run: parameters, multiply-accumulates per image, file size, CPU latency at batch 1
and throughput at a larger batch, under torch and under onnxruntime — measured, never estimated."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import BaseModel, Field
from torch import nn

from tint_core.devices import module_device


class Speed(BaseModel):
    """CPU speed of one runtime: median latency of one image, throughput of a batch."""

    latency_ms: float = Field(description="median wall time of a batch of one image, milliseconds")
    throughput: float = Field(description="images per second at batch size `batch`")
    batch: int
    repeats: int = Field(description="timed runs at batch 1 (the throughput takes the median of fewer)")
    threads: int


class ModelCost(BaseModel):
    """One model's size and CPU speed."""

    parameters: int
    macs: int = Field(description="multiply-accumulates per image at the model's input size (torch's flop counter / 2)")
    input_size: int
    file_bytes: int | None = Field(None, description="size of the exported fp32 ONNX file")
    torch: Speed
    onnxruntime: Speed | None = None


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def macs_per_image(module: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward pass on one (1, 3, S, S) image (half of torch's FLOP count)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), counter:
            module(torch.rand(1, 3, input_size, input_size, device=module_device(module)))
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


def measure_speed(run: Callable[[torch.Tensor], object], input_size: int, batch: int = 64, repeats: int = 30,
                  threads: int | None = None) -> Speed:  # fmt: skip
    """Time ``run`` (one forward pass of a (B, 3, S, S) CPU batch): warm-up passes, then ``repeats`` passes of one
    image (median) and ``max(3, repeats // 10)`` passes of ``batch`` images (median).

    Random inputs: speed depends on shapes only.
    """
    if repeats < 1 or batch < 1:
        raise ValueError(f"repeats and batch must be ≥ 1, got {repeats} and {batch}")
    generator = torch.Generator().manual_seed(0)
    one = torch.rand(1, 3, input_size, input_size, generator=generator)
    many = torch.rand(batch, 3, input_size, input_size, generator=generator)

    def median_seconds(inputs: torch.Tensor, times: int) -> float:
        run(inputs)  # warm-up: allocations, lazy initialisation, caches
        timed = []
        for _ in range(times):
            started = time.perf_counter()
            run(inputs)
            timed.append(time.perf_counter() - started)
        return statistics.median(timed)

    latency = median_seconds(one, repeats)
    throughput = batch / median_seconds(many, max(3, repeats // 10))
    return Speed(latency_ms=1000 * latency, throughput=throughput, batch=batch, repeats=repeats,
                 threads=threads or torch.get_num_threads())  # fmt: skip


def torch_runner(module: nn.Module) -> Callable[[torch.Tensor], object]:
    """One eval-mode, gradient-free forward pass of ``module`` on a CPU batch."""
    module.eval()

    @torch.inference_mode()
    def run(batch: torch.Tensor) -> torch.Tensor:
        return module(batch)

    return run


def measure_cost(module: nn.Module, input_size: int, repeats: int = 30, batch: int = 64,
                 onnx_file: Path | None = None) -> ModelCost:  # fmt: skip
    """Parameters, MACs and torch speed of a CPU module; file size and onnxruntime speed of its export, if given."""
    from tint_core.export.onnx import OnnxClassifier

    onnx_speed = None
    if onnx_file is not None:
        onnx_speed = measure_speed(OnnxClassifier(onnx_file).run, input_size, batch, repeats)
    return ModelCost(parameters=count_parameters(module), macs=macs_per_image(module, input_size), input_size=input_size,
                     file_bytes=onnx_file.stat().st_size if onnx_file else None,
                     torch=measure_speed(torch_runner(module), input_size, batch, repeats), onnxruntime=onnx_speed)  # fmt: skip
