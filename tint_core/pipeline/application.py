"""The application's last step: write the distilled student and a report into a plain folder.

<output>/student.safetensors   the student (timm backbone tensors under ``extractor.backbone.*``, cosine head)
<output>/student.json          timm name and kwargs, input size, head scale, class names, per-step training curves and
                               the steps taken
<output>/report.md             supports, their reconstruction quality, synthetic images, teacher agreement
<output>/pictures/<class>.png  the class's supports, their null-text reconstructions and its first TINT images
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tint_core.fewshot.student import save_student_state
from tint_core.pipeline.data import load_episode
from tint_core.pipeline.generation import load_specialization
from tint_core.pipeline.resources import open_store
from tint_core.store import ArtifactRef

STUDENT_FILE = "student.safetensors"
PICTURES = "pictures"


def _write_atomically(path: Path, content: str | bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content)
    os.replace(temporary, path)


def export_student(store: str, student: ArtifactRef, labels: ArtifactRef, supports: ArtifactRef,
                   specializations: list[ArtifactRef], images: list[ArtifactRef], output: str) -> Path:  # fmt: skip
    """Write the student, its description, a Markdown report and each class's pictures into ``output`` (created
    if needed).

    Each file is written under a temporary name and renamed, so a crash never leaves a half-written student.

    Args:
        supports: the support set (index-supports); specializations and images: per class, in its order.

    Returns:
        The path of the student file; ``tint_core.fewshot.student.load_student`` reads it back.
    """
    opened = open_store(store)
    folder = Path(output).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    artifact = opened.get(student)
    description, training = artifact["model"], artifact["curves"]
    temporary = folder / f".{STUDENT_FILE}.tmp"
    save_student_state(artifact["weights"], description, temporary)
    os.replace(temporary, folder / STUDENT_FILE)
    curves = training["curves"]
    _write_atomically(folder / "student.json", json.dumps({**description, "curves": curves,
                                                          "steps": training["steps"]}, indent=1))  # fmt: skip

    from tint_core.report.strips import class_strip  # matplotlib: only when a folder is written

    summary = opened.get(labels)["summary"]
    specs = [load_specialization(opened, ref) for ref in specializations]
    support_set = load_episode(opened, supports)
    (folder / PICTURES).mkdir(exist_ok=True)
    for index, (spec_ref, images_ref) in enumerate(zip(specializations, images, strict=True)):
        name = support_set.classes[index].name
        strip, _ = class_strip(opened, name, support_set.class_supports(index), spec_ref, {"tint": images_ref})
        _write_atomically(folder / PICTURES / f"{name}.png", strip)
    lines = [
        f"# Distilled student: {description['timm_name']}, {len(description['classes'])} classes", "",
        (f"Student file: `{STUDENT_FILE}` (load with `tint_core.fewshot.student.load_student`, or build "
         f"`timm.create_model({description['timm_name']!r}, num_classes=0, **model_kwargs)` and load the "
         "`extractor.backbone.*` tensors without that prefix). Input: RGB in [0, 1] at "
         f"{description['input_size']}×{description['input_size']}."), "",
        "| class | supports | reconstruction PSNR per support (dB) | teacher agreement on synthetic images |",
        "|---|---|---|---|",
    ]  # fmt: skip
    for spec in specs:
        psnr = " ".join(f"{value:.1f}" for value in spec.psnr.tolist())
        agreement = summary["agreement_per_class"].get(spec.class_name)
        lines.append(f"| {spec.class_name} | {spec.num_supports} | {psnr} | "
                     f"{'—' if agreement is None else f'{100 * agreement:.0f}%'} |")  # fmt: skip
    final = {name: values[-1] for name, values in curves.items()}
    losses = ", ".join(f"{name} {value:.4f}" for name, value in final.items())
    lines += [
        "",
        (
            f"{summary['images']} synthetic images labelled by the teacher; it put "
            f"{100 * summary['agreement']:.0f}% in their intended class."
        ),
        f"Distillation: {training['steps']} steps, final {losses}.",
        "",
        *[f"![class {spec.class_name}]({PICTURES}/{spec.class_name}.png)" for spec in specs],
    ]
    _write_atomically(folder / "report.md", "\n".join(lines) + "\n")
    return folder / STUDENT_FILE
