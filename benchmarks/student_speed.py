"""What distillation buys in size and speed: the student against the teacher, CPU latency and throughput under torch
and onnxruntime, measured in one run.

    python benchmarks/student_speed.py [--pairs demo,gpu] [--repeats 30] [--batch 64] [--json PATH]

Pairs (random weights: size and speed depend on shapes only; nothing is downloaded):
- demo: the demo's digits recipe, teacher ``tint_convnet`` against student ``resnet12_tiny``, both at 16×16.
- gpu: examples/sd15-gpu.yaml's, teacher ``vit_base_patch16_224.dino`` at 224×224 against student ``resnet12`` at
  84×84.

Each model is a 5-way classifier as the pipeline uses it: the teacher with its prototype head
(``TeacherClassifier``), the student with its cosine head. Per model: parameters, multiply-accumulates per image
(torch's flop counter), the fp32 ONNX file's size, latency (median of ``--repeats`` passes of one image) and
throughput (images per second at ``--batch``, median of max(3, repeats/10) passes) under torch and under
onnxruntime on this machine's CPU threads. Ratios are teacher ÷ student (throughput: student ÷ teacher).

Time on the 2-core CPU machine (2026-11-30): 2 min 55 s, 137 s of it the ViT-B/16 teacher; figures in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from tint_core.export.measure import ModelCost, measure_cost
from tint_core.export.onnx import export_onnx
from tint_core.fewshot import digits_recipe
from tint_core.fewshot.backbones import FeatureExtractor
from tint_core.fewshot.config import BackboneConfig, StudentConfig
from tint_core.fewshot.student import create_student
from tint_core.fewshot.teacher import PrototypeTeacher, TeacherClassifier
from tint_core.pipeline.config import BenchmarkConfig

GPU_CONFIG = Path(__file__).parents[1] / "examples" / "sd15-gpu.yaml"
N_WAY = 5


def pairs() -> dict[str, tuple[BackboneConfig, BackboneConfig]]:
    """Name → (teacher backbone, student backbone), weights left out (random)."""
    gpu = BenchmarkConfig.from_yaml(GPU_CONFIG)
    return {
        "demo": (digits_recipe.teacher_backbone(), digits_recipe.student_backbone()),
        "gpu": (gpu.teacher.model.backbone.updated(weights=None), gpu.student.model.backbone.updated(weights=None)),
    }


def _supports(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(N_WAY, 3, size, size, generator=generator), torch.arange(N_WAY)


def teacher_module(backbone: BackboneConfig) -> torch.nn.Module:
    teacher = PrototypeTeacher(FeatureExtractor.from_config(backbone))
    teacher.process_support_set(*_supports(backbone.input_size))
    return TeacherClassifier(teacher).eval()


def student_module(backbone: BackboneConfig) -> torch.nn.Module:
    student = create_student(StudentConfig(backbone=backbone), N_WAY)
    student.init_head_from_prototypes(*_supports(backbone.input_size))
    return student.eval()


def measure(module: torch.nn.Module, size: int, repeats: int, batch: int, folder: Path, name: str) -> ModelCost:
    started = time.perf_counter()
    path = export_onnx(module, folder / f"{name}.onnx", size, {})
    cost = measure_cost(module, size, repeats, batch, path)
    print(f"  {name}: measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return cost


def ratios(teacher: ModelCost, student: ModelCost) -> dict[str, float]:
    return {
        "parameters": teacher.parameters / student.parameters, "macs": teacher.macs / student.macs,
        "file": teacher.file_bytes / student.file_bytes,
        "torch_latency": teacher.torch.latency_ms / student.torch.latency_ms,
        "torch_throughput": student.torch.throughput / teacher.torch.throughput,
        "onnxruntime_latency": teacher.onnxruntime.latency_ms / student.onnxruntime.latency_ms,
        "onnxruntime_throughput": student.onnxruntime.throughput / teacher.onnxruntime.throughput,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="demo,gpu", help="comma-separated: demo, gpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    known = pairs()
    chosen = args.pairs.split(",")
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown pair(s) {unknown}; choose from {sorted(known)}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in chosen:
            teacher, student = known[name]
            print(f"{name}: teacher {teacher.name} at {teacher.input_size}, student {student.name} at "
                  f"{student.input_size}", file=sys.stderr)  # fmt: skip
            costs = {"teacher": measure(teacher_module(teacher), teacher.input_size, args.repeats, args.batch,
                                        Path(folder), f"{name}-teacher"),
                     "student": measure(student_module(student), student.input_size, args.repeats, args.batch,
                                        Path(folder), f"{name}-student")}  # fmt: skip
            results[name] = {"teacher": {"name": teacher.name, **costs["teacher"].model_dump()},
                             "student": {"name": student.name, **costs["student"].model_dump()},
                             "ratios": ratios(costs["teacher"], costs["student"])}  # fmt: skip
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, batch "
          f"{args.batch}, {args.repeats} repeats")  # fmt: skip
    header = ("pair", "model", "params", "MMACs", "ONNX MB", "torch ms", "torch img/s", "ort ms", "ort img/s")
    print(" | ".join(header))
    for name, result in results.items():
        for role in ("teacher", "student"):
            cost = result[role]
            print(f"{name} | {role} {cost['name']} | {cost['parameters'] / 1e6:.3f} M | {cost['macs'] / 1e6:.1f} | "
                  f"{cost['file_bytes'] / 1e6:.2f} | {cost['torch']['latency_ms']:.2f} | "
                  f"{cost['torch']['throughput']:,.0f} | {cost['onnxruntime']['latency_ms']:.2f} | "
                  f"{cost['onnxruntime']['throughput']:,.0f}")  # fmt: skip
        r = result["ratios"]
        print(f"{name} | teacher ÷ student | {r['parameters']:.1f}× | {r['macs']:.1f}× | {r['file']:.1f}× | "
              f"{r['torch_latency']:.1f}× | {r['torch_throughput']:.1f}× (student ÷ teacher) | "
              f"{r['onnxruntime_latency']:.1f}× | {r['onnxruntime_throughput']:.1f}×")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
