"""The few-shot half on a GPU against the CPU: labelling and distillation speed, and digits accuracy per setting.

    python benchmarks/fewshot_device.py [--settings cpu-fp32,cuda-fp32,cuda-bf16] [--episodes 10]
                                        [--pretrain-epochs N] [--only speed|accuracy] [--json PATH]

A setting is DEVICE-PRECISION (cpu-fp32, cuda-fp32, cuda-bf16, cuda:1-bf16, …); the first one is the reference that
speed-ups and the agreement check are measured against. A device this machine lacks stops the script at once, in one
line, before any work.

1. Speed at the GPU configuration's shapes, random weights, nothing downloaded: the teacher and the student of
   examples/sd15-gpu.yaml (ViT-B/16 at 224 px, ResNet-12 at 84 px), on 84 px random images (the dataset's size).
   Labelling: the teacher's ``soft_labels`` (prototypes from 5 supports) over 16 images on the CPU, 512 in batches
   of 256 on a GPU, after a one-batch warm-up; the time includes the copies to and from the device, as in the
   pipeline. Distillation: ``distill`` with the configuration's recipe at 64 unlabelled images (random teacher
   logits) + 5 supports per step, 2 steps on the CPU, 30 on a GPU, after a one-step warm-up. Images per second
   count every image forwarded (64 + 5 per distillation step). cuDNN autotuning stays off, as in the pipeline.
2. Accuracy on digits: for each setting, in its own temporary store (the device is not in the artifact keys, so a
   shared store would hand one setting the artifacts of another), the digits recipe (``digits_teacher``,
   ``digits_student``) with both models' ``compute`` set to the setting, base pre-training included; E 5-way 1-shot
   episodes of the novel digits (15 queries per class, seed 0): the teacher's score, then the student distilled on
   the episode's real pool with the teacher's labels and its score (evaluated in fp32 on the setting's device).
   Mean ± 95% interval per setting; a setting AGREES when its teacher's and its student's means both lie within the
   reference's intervals. The exit status is 1 when one disagrees.

"fp32" on a GPU is torch's default there: cuDNN convolutions in TF32, matrix products in full fp32 (this script
changes neither, like the pipeline).

Time: about 3 minutes on the H200 machine (an estimate, not yet measured; most of it the CPU reference). On the 2-core
CPU VM with tests running beside it (2026-11-30), ``--settings cpu-fp32 --episodes 3`` took 4 minutes: about 2 for
the speed part, 67 s of base pre-training (the recipe's 15 epochs, both models) and 42 s for the 3 episodes (200
distillation steps each). ``--pretrain-epochs`` lowers both models' epochs in every setting alike, should pre-training
be too slow somewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tint_core.devices import check_device, resolve_device
from tint_core.evaluation.accuracy import AccuracySummary, summarize
from tint_core.fewshot.config import BackboneConfig, ComputeConfig, DistillConfig, StudentConfig, TeacherConfig
from tint_core.fewshot.distill import distill
from tint_core.fewshot.student import create_student
from tint_core.fewshot.teacher import PrototypeTeacher
from tint_core.pipeline import classify, data, unlabelled
from tint_core.pipeline.config import BenchmarkConfig, EpisodeConfig, StudentSetup, TeacherSetup
from tint_core.pipeline.presets import digits_dataset, digits_student, digits_teacher
from tint_core.store import ArtifactStore

GPU_CONFIG = Path(__file__).parents[1] / "examples" / "sd15-gpu.yaml"
N_WAY = 5
POOL = 256  # unlabelled images distillation draws its batches from
MODELS = ("teacher", "student")


@dataclass(frozen=True)
class Setting:
    """One device and precision the few-shot models compute in."""

    name: str
    compute: ComputeConfig

    @property
    def device(self) -> torch.device:
        return resolve_device(self.compute.device)


def parse_settings(text: str) -> list[Setting]:
    """``'cpu-fp32,cuda-bf16'`` → settings, each device checked on this machine.

    Raises:
        ValueError: in one line, for a malformed or repeated setting or a device this machine lacks.
    """
    settings: list[Setting] = []
    for name in (part.strip() for part in text.split(",") if part.strip()):
        device, _, precision = name.rpartition("-")
        if not device or precision not in ("fp32", "bf16"):
            raise ValueError(f"setting {name!r} is not DEVICE-PRECISION with precision fp32 or bf16 (e.g. cuda-bf16)")
        if name in (setting.name for setting in settings):
            raise ValueError(f"setting {name!r} is given twice")
        check_device(device, f"setting {name!r}")
        settings.append(Setting(name, ComputeConfig(device=device, precision=precision)))
    if not settings:
        raise ValueError("--settings names no setting")
    return settings


def timed(device: torch.device, work: Callable[[], object]) -> float:
    """Wall seconds of ``work()``, the device's queue drained before and after (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


# 1. speed --------------------------------------------------------------------------------------------------------


def labelling_seconds(setting: Setting, backbone: BackboneConfig, supports: torch.Tensor, images: torch.Tensor,
                      batch_size: int) -> float:  # fmt: skip
    """Seconds of the teacher's ``soft_labels`` over ``images``, after a one-batch warm-up."""
    teacher = PrototypeTeacher.from_config(TeacherConfig(backbone=backbone, compute=setting.compute))
    teacher.process_support_set(supports, torch.arange(N_WAY))
    teacher.soft_labels(images[:batch_size], batch_size)  # warm-up: kernels chosen, memory allocated
    return timed(setting.device, lambda: teacher.soft_labels(images, batch_size))


def distillation_seconds(setting: Setting, backbone: BackboneConfig, training: DistillConfig, supports: torch.Tensor,
                         pool: torch.Tensor, logits: torch.Tensor) -> float:  # fmt: skip
    """Seconds of ``distill`` for ``training.steps`` steps, after a one-step warm-up."""
    student = create_student(StudentConfig(backbone=backbone, compute=setting.compute), N_WAY)
    labels = torch.arange(N_WAY)
    student.init_head_from_prototypes(supports, labels)
    distill(student, supports, labels, training.updated(steps=1), pool, logits)  # warm-up
    return timed(setting.device, lambda: distill(student, supports, labels, training, pool, logits))


def measure_speed(setting: Setting, teacher_backbone: BackboneConfig, student_backbone: BackboneConfig,
                  training: DistillConfig, image_size: int) -> dict[str, float]:  # fmt: skip
    """Labelling and distillation images per second of the GPU configuration's models in ``setting``."""
    on_gpu = setting.device.type != "cpu"
    labelled, label_batch, steps = (512, 256, 30) if on_gpu else (16, 16, 2)
    generator = torch.Generator().manual_seed(0)
    supports = torch.rand(N_WAY, 3, image_size, image_size, generator=generator)
    images = torch.rand(labelled, 3, image_size, image_size, generator=generator)
    pool = torch.rand(POOL, 3, image_size, image_size, generator=generator)
    logits = 3 * torch.randn(POOL, N_WAY, generator=generator)  # spread like τ = 10 cosine logits, roughly
    label_seconds = labelling_seconds(setting, teacher_backbone, supports, images, label_batch)
    distill_seconds = distillation_seconds(setting, student_backbone, training.updated(steps=steps), supports, pool,
                                           logits)  # fmt: skip
    if on_gpu:
        torch.cuda.empty_cache()  # the next setting starts from the same free memory
    return {
        "label_images": labelled, "label_seconds": label_seconds, "label_images_per_s": labelled / label_seconds,
        "distill_steps": steps, "distill_seconds": distill_seconds,
        "distill_images_per_s": steps * (training.batch_size + N_WAY) / distill_seconds,
    }  # fmt: skip


def print_speed(speed: dict[str, dict[str, float]], reference: str) -> None:
    print("| setting | labelling images/s | speed-up | distillation images/s | speed-up |\n|---|---|---|---|---|")
    base = speed[reference]
    for name, rates in speed.items():
        label, train = rates["label_images_per_s"], rates["distill_images_per_s"]
        print(f"| {name} | {label:,.1f} | {label / base['label_images_per_s']:.1f}× | {train:,.1f} | "
              f"{train / base['distill_images_per_s']:.1f}× |")  # fmt: skip
    print()


# 2. accuracy on digits -------------------------------------------------------------------------------------------


def digits_setups(compute: ComputeConfig, pretrain_epochs: int | None) -> tuple[TeacherSetup, StudentSetup]:
    """The digits recipe with both models (pre-training included) computing in ``compute``."""
    teacher, student = digits_teacher(), digits_student()
    teacher = teacher.updated(model=teacher.model.updated(compute=compute))
    student = student.updated(model=student.model.updated(compute=compute))
    if pretrain_epochs is not None:
        teacher = teacher.updated(pretrain=teacher.pretrain.updated(epochs=pretrain_epochs))
        student = student.updated(pretrain=student.pretrain.updated(epochs=pretrain_epochs))
    return teacher, student


def measure_accuracy(setting: Setting, episodes: int, pretrain_epochs: int | None) -> dict[str, object]:
    """Per-episode teacher and real-pool student accuracies of ``setting`` on digits, in a store of its own."""
    teacher, student = digits_setups(setting.compute, pretrain_epochs)
    dataset_config = digits_dataset()
    episode_config = EpisodeConfig(n_way=N_WAY, k_shot=1, n_query=15, episodes=episodes, seed=0)
    scores: dict[str, list[float]] = {model: [] for model in MODELS}
    with tempfile.TemporaryDirectory(prefix=f"tint-{setting.name.replace(':', '')}-") as folder:
        url = str(Path(folder) / "store")
        store = ArtifactStore(url)
        dataset = data.index_dataset(url, dataset_config)
        started = time.perf_counter()
        prepared_teacher = classify.prepare_backbone(url, dataset, teacher.model.backbone, teacher.pretrain,
                                                     teacher.centre_on_base, setting.compute)  # fmt: skip
        prepared_student = classify.prepare_backbone(url, dataset, student.model.backbone, student.pretrain, False,
                                                     setting.compute)  # fmt: skip
        pretrain_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for episode_id in range(episodes):
            episode = data.sample_episode(url, dataset, episode_config, episode_id, dataset_config.image_size)
            score = classify.score_teacher(url, episode, teacher, prepared_teacher)
            scores["teacher"].append(store.get(score)["score"]["accuracy"])
            pool = unlabelled.draw_pool(url, dataset, episode, "real_pool", None, 0)
            labels = classify.label_images(url, episode, "real_pool", [pool], teacher, prepared_teacher)
            trained = classify.distill_student(url, episode, "real_pool", [pool], labels, student, prepared_student)
            score = classify.evaluate_student(url, episode, trained, setting.compute.device)
            scores["student"].append(store.get(score)["score"]["accuracy"])
        episodes_seconds = time.perf_counter() - started
    return {"scores": scores, "pretrain_seconds": pretrain_seconds, "episodes_seconds": episodes_seconds}


def agrees(summary: AccuracySummary, reference: AccuracySummary) -> bool:
    """Whether ``summary``'s mean lies within ``reference``'s interval."""
    return abs(summary.mean - reference.mean) <= reference.half_width


def report_accuracy(accuracy: dict[str, dict[str, object]], reference: str) -> dict[str, bool]:
    """Print each setting's mean accuracies and, for each other setting, whether it agrees with the reference; add
    the summaries (``summary``) and verdicts (``agrees``) to ``accuracy``. Returns the verdicts."""
    summaries = {name: {model: summarize(result["scores"][model]) for model in MODELS}
                 for name, result in accuracy.items()}  # fmt: skip
    base = summaries[reference]
    print("| setting | teacher (%) | Δ teacher (points) | student (%) | Δ student (points) | pre-training s | "
          "episodes s |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for name, result in accuracy.items():
        cells = [f"{100 * summaries[name][m].mean:.1f} ± {100 * summaries[name][m].half_width:.1f} | "
                 f"{100 * (summaries[name][m].mean - base[m].mean):+.1f}" for m in MODELS]  # fmt: skip
        print(f"| {name} | {' | '.join(cells)} | {result['pretrain_seconds']:.0f} | {result['episodes_seconds']:.0f} |")
    print()
    verdicts = {}
    for name in accuracy:
        if name == reference:
            continue
        outside = [model for model in MODELS if not agrees(summaries[name][model], base[model])]
        verdicts[name] = not outside
        why = (f"{' and '.join(outside)} mean outside its 95% interval" if outside
               else "teacher and student means within its 95% intervals")  # fmt: skip
        print(f"{name}: {'DISAGREES' if outside else 'AGREES'} with {reference} ({why})")
    for name, result in accuracy.items():
        result["summary"] = {model: summary.model_dump() for model, summary in summaries[name].items()}
        if name in verdicts:
            result["agrees"] = verdicts[name]
    return verdicts


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]  # none without CUDA
    return {"torch": torch.__version__, "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "gpus": gpus}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="cpu-fp32,cuda-fp32,cuda-bf16",
                        help="comma list of DEVICE-PRECISION; the first is the reference")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=10, help="digits episodes for the accuracy check (≥ 2)")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help="base pre-training epochs of both digits models (default: the recipe's 15)")  # fmt: skip
    parser.add_argument("--only", choices=("speed", "accuracy"), help="run one part only")
    parser.add_argument("--config", type=Path, default=GPU_CONFIG, help="the GPU configuration (speed part)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    if args.episodes < 2:
        parser.error("--episodes must be at least 2 (an interval needs two episodes)")
    if args.pretrain_epochs is not None and args.pretrain_epochs < 1:
        parser.error("--pretrain-epochs must be at least 1")
    try:
        settings = parse_settings(args.settings)
    except ValueError as error:
        print(f"{Path(__file__).name}: {error}", file=sys.stderr)
        return 2
    reference = settings[0].name
    started = time.perf_counter()
    results: dict[str, object] = {"machine": machine(), "reference": reference}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, GPUs: "
          f"{', '.join(results['machine']['gpus']) or 'none'}; reference {reference}\n")  # fmt: skip

    if args.only in (None, "speed"):
        config = BenchmarkConfig.from_yaml(args.config)
        teacher_backbone = config.teacher.model.backbone.updated(weights=None)  # the real shape, random weights
        student_backbone = config.student.model.backbone.updated(weights=None)
        training = config.student.training.updated(batch_size=64)
        image_size = config.dataset.image_size or student_backbone.input_size
        print(f"Speed: teacher {teacher_backbone.name} at {teacher_backbone.input_size} px, student "
              f"{student_backbone.name} at {student_backbone.input_size} px, {image_size} px images\n")  # fmt: skip
        speed = {setting.name: measure_speed(setting, teacher_backbone, student_backbone, training, image_size)
                 for setting in settings}  # fmt: skip
        print_speed(speed, reference)
        results["speed"] = speed

    every = True
    if args.only in (None, "accuracy"):
        epochs = args.pretrain_epochs or "the recipe's"
        print(f"Accuracy: digits, {args.episodes} 5-way 1-shot episodes, teacher and real-pool student, "
              f"{epochs} pre-training epochs\n")  # fmt: skip
        accuracy = {setting.name: measure_accuracy(setting, args.episodes, args.pretrain_epochs)
                    for setting in settings}  # fmt: skip
        every = all(report_accuracy(accuracy, reference).values())
        results["accuracy"] = accuracy

    results["wall_seconds"] = time.perf_counter() - started
    print(f"\n{results['wall_seconds']:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if every else 1


if __name__ == "__main__":
    sys.exit(main())
