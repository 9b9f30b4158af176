"""The ``tint`` command line, a thin layer over the library (no Prefect):

    tint specialize SUPPORTS OUTPUT     one specialisation folder per class subfolder of SUPPORTS
    tint generate SPECIALISATIONS OUTPUT
                                        synthetic images, one subfolder per class
    tint store list|verify|gc URL       inspect and maintain an artifact store (local folder or s3://…)
    tint plan STORE [RUN]               episodes and queries for a target interval, from a recorded run
    tint report STORE [RUN]             render a recorded run's HTML report again
    tint export STORE [RUN] --method M --output DIR
                                        a run's student as ONNX (checked against torch) with its model card

``flows.cli`` adds the commands that run flows (benchmark, distill, demo); the installed ``tint`` is that one.
A command imports the model code it runs when it runs: ``--help`` and bad usage answer at once.
Exit codes: 0 done; 1 bad input or environment (the message says which), a failed run, or a store that fails
verification; 2 bad usage (unknown option, missing argument).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from tint_core.diffusion.config import DEFAULT_MODEL_ID, BackboneConfig, GenerationConfig, SpecializationConfig
from tint_core.pipeline.runs import find_run
from tint_core.store import ArtifactStore, StoreError
from tint_core.store.store import DEFAULT_GC_AGE

if TYPE_CHECKING:
    from tint_core.diffusion import ClassSpecialization
    from tint_core.progress import ProgressFn

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Specialise Stable Diffusion to few-shot classes and generate their images; run the benchmark and "
    "distillation flows; plan evaluations, render run reports, maintain the artifact store.",
)
store_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain an artifact store (local folder or s3://…).")
app.add_typer(store_app, name="store")
# No markup: paths, URLs and class names are printed as they are, brackets included.
console = Console(stderr=True, markup=False)
stdout = Console(markup=False)

# Errors that mean "the input or the environment is wrong": the message is the whole story, no traceback. A missing
# checkpoint (BackboneNotFoundError) is a FileNotFoundError, an unreadable image (ImageReadError) a ValueError.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, StoreError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except USER_ERRORS as error:
        console.print(Text("error: ", style="red") + Text(str(error)), soft_wrap=True)  # paths stay whole
        raise typer.Exit(code=1) from None


@contextlib.contextmanager
def _progress() -> Iterator[ProgressFn]:
    """A rich progress bar per stage, fed by the library's ``progress(stage, done, total)`` callbacks."""
    with Progress(
        TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    ) as bar:  # fmt: skip
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage.replace("_", " "), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def class_folders(root: Path) -> dict[str, list[Path]]:
    """Class name → its image files, for every subfolder of ``root`` (sorted; hidden files ignored)."""
    from tint_core.data.datasets import IMAGE_SUFFIXES

    if not root.is_dir():
        raise FileNotFoundError(f"support folder {root} does not exist")
    classes = {}
    for folder in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        classes[folder.name] = sorted(
            path for path in folder.iterdir()
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
        )  # fmt: skip
    if not classes:
        raise ValueError(f"{root} has no class subfolders: put each class's support images in {root}/<class name>/")
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise ValueError(f"class folder(s) without images in {root}: {', '.join(empty)}")
    return classes


def _prepare_output(output: Path, names: list[str], overwrite: bool) -> None:
    existing = [name for name in names if (output / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{output} already holds {', '.join(existing)}: choose another folder or pass --overwrite"
        )
    output.mkdir(parents=True, exist_ok=True)


def _backbone_config(
    config: SpecializationConfig, source: str | None, device: str | None, precision: str | None
) -> BackboneConfig:
    overrides = {"source": source, "device": device, "precision": precision}
    return config.backbone.updated(**{key: value for key, value in overrides.items() if value is not None})


@app.command()
def specialize(
    supports: Annotated[Path, typer.Argument(help="Folder with one subfolder of support images per class.")],
    output: Annotated[Path, typer.Argument(help="Folder receiving one specialisation folder per class.")],
    config: Annotated[
        Path | None, typer.Option(help="SpecializationConfig YAML; omitted fields keep the spec's defaults.")
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Overrides backbone.source: a hub id in the local cache, a checkpoint folder, 'tiny' or 'sd15-random'."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Overrides backbone.device ('auto', 'cpu', 'cuda', …).")] = None,
    precision: Annotated[str | None, typer.Option(help="Overrides backbone.precision ('fp32' or 'bf16').")] = None,
    seed: Annotated[int, typer.Option(help="Root seed: same inputs and seed give the same specialisations.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace specialisations already in OUTPUT.")] = False,
) -> None:
    """Specialise the backbone to every class: textual inversion, DDIM and null-text inversion of its supports."""
    from tint_core.diffusion import load_backbone
    from tint_core.diffusion import specialize as specialize_classes
    from tint_core.images import load_image

    with user_errors():
        settings = SpecializationConfig.from_yaml(config) if config else SpecializationConfig()
        settings = settings.updated(backbone=_backbone_config(settings, backbone, device, precision))
        files = class_folders(supports)
        _prepare_output(output, list(files), overwrite)
        images = {name: [load_image(path) for path in paths] for name, paths in files.items()}
        model = load_backbone(**settings.backbone.model_dump())
        console.print(f"{len(images)} classes, {sum(map(len, images.values()))} supports, backbone {model.identity}")
        with _progress() as progress:
            results = specialize_classes(model, images, settings, seed=seed, progress=progress)
        table = Table("class", "token", "supports", "PSNR dB (per support)")
        for name, result in results.items():
            result.save(output / name)
            table.add_row(
                name, result.token, str(result.num_supports), " ".join(f"{v:.1f}" for v in result.psnr.tolist())
            )
        stdout.print(table)
        console.print(f"specialisations written to {output}")


def load_specializations(root: Path) -> dict[str, ClassSpecialization]:
    """Folder name → specialisation, for ``root`` itself or each of its subfolders holding one."""
    from tint_core.diffusion.specialization import TOKEN_FILE, ClassSpecialization

    if (root / TOKEN_FILE).is_file():
        return {root.name: ClassSpecialization.load(root)}
    if not root.is_dir():
        raise FileNotFoundError(f"specialisation folder {root} does not exist")
    found = {
        path.name: ClassSpecialization.load(path) for path in sorted(root.iterdir()) if (path / TOKEN_FILE).is_file()
    }
    if not found:
        raise ValueError(f"{root} holds no specialisation (folders with {TOKEN_FILE}): run `tint specialize` first")
    return found


@app.command()
def generate(
    specializations: Annotated[
        Path, typer.Argument(help="A folder written by `tint specialize` (or one class's folder).")
    ],
    output: Annotated[Path, typer.Argument(help="Folder receiving one subfolder of PNG images per class.")],
    images: Annotated[int, typer.Option(min=1, help="Images per class.")] = 16,
    alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Noise mix: 0 reproduces a support, 1 is a fresh image.")
    ] = 1.0,
    random_alpha: Annotated[bool, typer.Option(help="Draw alpha ~ U[0, 1] per image.")] = False,
    size: Annotated[
        int | None, typer.Option(help="Side of the images; default: the size of each class's supports.")
    ] = None,
    backbone: Annotated[str, typer.Option(help="The backbone the classes were specialised on.")] = DEFAULT_MODEL_ID,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', …")] = "auto",
    precision: Annotated[str, typer.Option(help="'fp32' or 'bf16'.")] = "fp32",
    backbone_seed: Annotated[int, typer.Option(help="Seed of the random weights of 'tiny' / 'sd15-random'.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per UNet batch.")] = 16,
    seed: Annotated[int, typer.Option(help="Same specialisations and seed give the same images.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace class folders already in OUTPUT.")] = False,
) -> None:
    """Generate TINT images of every specialised class."""
    from tint_core.diffusion import generate_images, load_backbone
    from tint_core.images import tensor_to_pil

    with user_errors():
        classes = load_specializations(specializations)
        _prepare_output(output, list(classes), overwrite)
        config = GenerationConfig(images_per_class=images, alpha=alpha, random_alpha=random_alpha, output_size=size)
        model = load_backbone(backbone, device=device, precision=precision, seed=backbone_seed)
        with _progress() as progress:
            generated = generate_images(model, list(classes.values()), config, seed=seed, batch_size=batch_size,
                                        progress=progress)  # fmt: skip
        for label, name in enumerate(classes):
            folder = output / name
            if folder.exists():  # --overwrite: no image of an earlier, larger run may stay behind
                shutil.rmtree(folder)
            folder.mkdir()
            for index, image in enumerate(generated.images[generated.labels == label]):
                tensor_to_pil(image).save(folder / f"{index:05d}.png")
        console.print(f"{len(generated.images)} images of {len(classes)} classes written to {output}")


@store_app.command("list")
def store_list(
    url: Annotated[str, typer.Argument(help="Store URL: a local folder or s3://bucket/prefix.")],
    step: Annotated[str | None, typer.Option(help="Only artifacts of this step.")] = None,
) -> None:
    """List complete artifacts, oldest first."""
    with user_errors():
        manifests = ArtifactStore(url).list(step)
        table = Table("key", "step", "created (UTC)", "parts", "bytes")
        for manifest in manifests:
            size = sum(part.size for part in manifest.parts.values())
            table.add_row(manifest.key[:16], manifest.step, f"{manifest.created:%Y-%m-%d %H:%M:%S}",
                          str(len(manifest.parts)), f"{size:,}")  # fmt: skip
        stdout.print(table)
        console.print(f"{len(manifests)} artifacts in {url}")


@store_app.command()
def verify(
    url: Annotated[str, typer.Argument(help="Store URL: a local folder or s3://bucket/prefix.")],
    quarantine: Annotated[
        bool, typer.Option(help="Move artifacts that fail aside (--no-quarantine only reports).")
    ] = True,
) -> None:
    """Check every part of every artifact against its manifest; exit code 1 if any is corrupt."""
    with user_errors():
        report = ArtifactStore(url).verify(quarantine=quarantine)
        stdout.print(str(report), highlight=False)
        for key, place in report.quarantined.items():
            console.print(f"quarantined {key} to {place}")
        if not report.ok:
            raise typer.Exit(code=1)


@store_app.command()
def gc(
    url: Annotated[str, typer.Argument(help="Store URL: a local folder or s3://bucket/prefix.")],
    older_than: Annotated[
        float, typer.Option(min=0, help="Only leftovers untouched for this many seconds.")
    ] = DEFAULT_GC_AGE,
) -> None:
    """Remove what crashed or losing writers left behind (never a complete artifact)."""
    with user_errors():
        report = ArtifactStore(url).gc(older_than=older_than)
        stdout.print(f"removed {report.files} files, {report.bytes:,} bytes")


HALF_WIDTH_HELP = "Target half width of the 95% interval (0.01 = ±1 point); default: the run's target."


def existing_store(url: str) -> str:
    """``url`` if it names a store that exists; opening a local folder would otherwise create it."""
    if "://" not in url and not Path(url).expanduser().is_dir():
        raise FileNotFoundError(f"store {url} does not exist")
    return url


@app.command()
def plan(
    store: Annotated[str, typer.Argument(help="Store URL of a pilot benchmark run (local folder or s3://…).")],
    run: Annotated[str, typer.Argument(help="Run id (or its first characters), run name, or 'latest'.")] = "latest",
    half_width: Annotated[float | None, typer.Option(min=0.0001, max=0.5, help=HALF_WIDTH_HELP)] = None,
) -> None:
    """Episodes E and queries Q that reach a target interval, from a pilot run's per-episode variance."""
    from tint_core.evaluation.planner import plan_evaluation
    from tint_core.pipeline.results import BenchmarkSummary, episodes_for_half_width

    with user_errors():
        record = find_run(existing_store(store), run)
        opened = ArtifactStore(store)
        summary = BenchmarkSummary.model_validate(opened.get(record.results)["summary"])
        max_query = int(opened.inspect(record.results.key).params["max_query"])
        target = half_width or record.config.evaluation.target_half_width
        table = Table("model", "pilot accuracy (%)", "σ² between episodes", "E", "Q", "predicted ± (points)", "cost",
                      "E for ± on every gain", title=f"±{100 * target:g} points at 95%, {summary.n_way}-way, "
                      f"Q ≤ {max_query} (pilot: run {record.run_id[:8]}, {summary.episodes} episodes)")  # fmt: skip
        table.columns[0].min_width = max(len(method) for method in summary.methods)  # method names stay whole
        for method, result in summary.ordered():
            variance = result.variance
            try:
                proposal = plan_evaluation(variance.mean, variance.between_episode_variance, summary.n_way, target,
                                           record.config.evaluation.cost, max_query)  # fmt: skip
                cells = [str(proposal.n_episodes), str(proposal.n_query), f"{100 * proposal.predicted_half_width:.2f}",
                         f"{proposal.cost:g}"]  # fmt: skip
            except ValueError:
                cells = ["—"] * 4  # no E reaches the target at any Q the split allows
            needed = [episodes_for_half_width(gain.sd, target) for gain in result.gains.values()]
            gain = str(max(needed)) if needed else "—"
            table.add_row(method, f"{100 * variance.mean:.1f}", f"{variance.between_episode_variance:.5f}", *cells,
                          gain)  # fmt: skip
        stdout.print(table)


@app.command()
def report(
    store: Annotated[str, typer.Argument(help="Store URL the benchmark ran on (local folder or s3://…).")],
    run: Annotated[str, typer.Argument(help="Run id (or its first characters), run name, or 'latest'.")] = "latest",
    output: Annotated[
        Path | None, typer.Option(help="HTML file to write; default: tint-report-<run id>.html here.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Render a recorded benchmark run's report again, as one HTML file that opens offline."""
    from tint_core.report import write_report

    with user_errors():
        record = find_run(existing_store(store), run)
        path = write_report(record, output or Path(f"tint-report-{record.run_id[:8]}.html"), overwrite)
        stdout.print(f"report of run {record.run_id} ({record.run_name}) written to {path}")


@app.command()
def export(
    store: Annotated[str, typer.Argument(help="Store URL the benchmark ran on (local folder or s3://…).")],
    run: Annotated[str, typer.Argument(help="Run id (or its first characters), run name, or 'latest'.")] = "latest",
    method: Annotated[str, typer.Option(help="Whose student: a method of the run, e.g. tint or supports_only.")] = "tint",
    episode: Annotated[str | None, typer.Option(help="The episode whose student to export; default: the first.")] = None,
    output: Annotated[Path, typer.Option(help="Folder receiving student.onnx, model_card.md and card.json.")] = Path(
        "tint-student"),
    quantize: Annotated[bool, typer.Option(help="Also write student.int8.onnx if it passes the accuracy rule.")] = False,
    max_drop: Annotated[float, typer.Option(min=0, max=100, help="The accuracy rule: int8 may lose at most this many "
                                            "points against the fp32 student on the episode's queries.")] = 1.0,
    repeats: Annotated[int, typer.Option(min=1, help="Timed passes of one image for the latency (median).")] = 30,
    overwrite: Annotated[bool, typer.Option(help="Replace an export already in OUTPUT.")] = False,
) -> None:
    """Export a run's student to ONNX, checked against torch, with a model card that measures it against the teacher.

    The check runs on the episode's queries; so does int8's accuracy rule (--quantize).
    """
    from tint_core.export.card import headline
    from tint_core.export.config import ExportConfig
    from tint_core.pipeline.export import export_run_student

    with user_errors():
        config = ExportConfig(quantize=quantize, max_quantized_drop=max_drop / 100, repeats=repeats)
        with console.status("exporting, checking and measuring the student and its teacher"):
            card = export_run_student(existing_store(store), run, method, output, episode, config, overwrite)
        stdout.print(f"{card.title}: written to {output}", highlight=False, soft_wrap=True)
        stdout.print(headline(card), highlight=False, soft_wrap=True)
        if card.int8 is not None:
            stdout.print(str(card.int8.result), highlight=False, soft_wrap=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
