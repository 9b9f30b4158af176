"""The installed ``tint`` command: the library's commands (``tint_core.cli``) plus those that run the flows.

    tint benchmark CONFIG.yaml [--set KEY=VALUE]…   the benchmark flow (the same flow the deployments run)
    tint demo [--store URL]                         the benchmark on the embedded demo defaults (the main job)
    tint distill SUPPORTS OUTPUT [--preset digits | --config YAML]
                                                    the application: a support folder → a distilled student

Prefect and the model code are imported only when one of these runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tint_core.cli import app, console, main, stdout, user_errors
from tint_core.pipeline.config import BenchmarkConfig, DistillAppConfig
from tint_core.pipeline.presets import DISTILL_PRESETS, demo_config

if TYPE_CHECKING:
    from prefect.states import State

__all__ = ["app", "main"]

DistillPreset = enum.Enum("DistillPreset", {name: name for name in DISTILL_PRESETS}, type=str)
SETS_HELP = "Change one field: a dotted path and a YAML value, e.g. --set episodes.episodes=4 (repeatable)."
VERBOSE_HELP = "Log every task run, not only the flow's stages and progress."
RANDOM_WEIGHTS_NOTE = """\
Note: the '{source}' diffusion backbone has random weights, so its synthetic images are noise and the ti_only and
tint rows say nothing about TINT; they show the pipeline working end to end. For real figures, use a Stable
Diffusion checkpoint (and a real teacher) on a GPU, for example:
    tint benchmark examples/sd15-gpu.yaml
"""


@contextlib.contextmanager
def _flow_progress() -> Iterator[None]:
    """A progress bar of the benchmark's steps and units in a terminal; elsewhere the flow's plain log lines."""
    from flows.console import watching_progress

    if not console.is_terminal:
        yield
        return
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        steps = bar.add_task("steps", total=None)
        units = bar.add_task("specialisation units", total=None)

        def update(steps_done: int, total_steps: int, units_done: int, total_units: int) -> None:
            bar.update(steps, completed=steps_done, total=total_steps)
            bar.update(units, completed=units_done, total=total_units)

        with watching_progress(update):
            yield


def _stopped(what: str) -> typer.Exit:
    import signal

    from flows.stopping import exit_code, stop_signal

    console.print(f"stopped by {signal.Signals(stop_signal()).name}: the {what} flow run is marked Crashed; every "
                  "step it finished is in the store, and running the same command again reuses them", soft_wrap=True)  # fmt: skip
    return typer.Exit(code=exit_code())


def _failed(what: str, error: BaseException) -> typer.Exit:
    console.print(f"error: the {what} flow failed: {error}", soft_wrap=True)
    console.print("its task runs and logs are in the Prefect UI; fix the cause and run again (finished steps are "
                  "reused)")
    return typer.Exit(code=1)


def _run_flow(what: str, start: Callable[[], State]) -> tuple[Any, list]:
    """Start a flow run in this process and wait for its outcome and for Prefect to record every task run.

    SIGINT/SIGTERM stop it within seconds, its embedded Prefect server included (flows.stopping), and say so in one
    line with the signal's exit status; a failed run says so in one line with exit status 1.
    """
    from flows.records import wait_for_task_runs
    from flows.stopping import start_embedded_server, stop_on_signals, stopped

    with stop_on_signals():
        try:
            start_embedded_server()
            state = start()
            outcome = state.result()
            return outcome, wait_for_task_runs(state.state_details.flow_run_id, outcome.task_runs)
        except typer.Exit:
            raise
        except BaseException as error:
            if stopped():
                raise _stopped(what) from None
            if isinstance(error, Exception):
                raise _failed(what, error) from None
            raise


def _run_benchmark(config: BenchmarkConfig, verbose: bool) -> None:
    """Run the benchmark flow in this process (Prefect's ephemeral server unless PREFECT_API_URL is set), print
    the results, and wait until Prefect has recorded every task run."""
    from flows.benchmark import BenchmarkOutcome, benchmark
    from flows.console import quiet_terminal
    from tint_core.diffusion.config import RANDOM_BACKBONES
    from tint_core.pipeline.results import summary_markdown, verdict

    source = config.generator.specialization.backbone.source
    quiet_terminal(verbose=verbose, random_backbone=source in RANDOM_BACKBONES)
    started = time.perf_counter()
    with _flow_progress():
        outcome: BenchmarkOutcome
        outcome, recorded = _run_flow("benchmark", lambda: benchmark(config=config, return_state=True))
    cached = sum(run.state.name == "Cached" for run in recorded)
    stdout.print(summary_markdown(outcome.summary, with_verdict=False), highlight=False, soft_wrap=True)
    stdout.print(f"{len(recorded)} task runs recorded by Prefect ({cached} cached) in "
                 f"{time.perf_counter() - started:.0f} s", highlight=False)  # fmt: skip
    stdout.print(f"report: {outcome.report}", highlight=False, soft_wrap=True)
    stdout.print(f"results (table and summary): {outcome.results.uri}", highlight=False, soft_wrap=True)
    stdout.print(f"artifact store: {outcome.results.store}  (tint store list, tint plan, tint report)", highlight=False,
                 soft_wrap=True)  # fmt: skip
    if config.needs_generator and source in RANDOM_BACKBONES:
        stdout.print(RANDOM_WEIGHTS_NOTE.format(source=source), highlight=False)
    if verdict(outcome.summary):
        stdout.print(verdict(outcome.summary), highlight=False, soft_wrap=True)  # the run's answer, last


@app.command(rich_help_panel="Flows")
def benchmark(
    config: Annotated[Path, typer.Argument(help="BenchmarkConfig YAML (docs/configuration.md).")],
    sets: Annotated[list[str] | None, typer.Option("--set", help=SETS_HELP)] = None,
    verbose: Annotated[bool, typer.Option(help=VERBOSE_HELP)] = False,
) -> None:
    """Run the benchmark flow: every method on the same seeded episodes, results with intervals, a report."""
    with user_errors():
        from tint_core.pipeline.checks import check_benchmark

        settings = BenchmarkConfig.from_yaml(config).with_overrides(sets or [])
        check_benchmark(settings)  # before Prefect starts: a bad input costs a line, not a server start-up
        _run_benchmark(settings, verbose)


@app.command(rich_help_panel="Flows")
def demo(
    store: Annotated[str | None, typer.Option(help="Artifact store; default: outputs/demo/store.")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help=SETS_HELP)] = None,
    verbose: Annotated[bool, typer.Option(help=VERBOSE_HELP)] = False,
) -> None:
    """The main job: the benchmark flow on its embedded defaults (digits, the built-in backbone, CPU)."""
    with user_errors():
        from tint_core.pipeline.checks import check_benchmark

        settings = (demo_config(store) if store else demo_config()).with_overrides(sets or [])
        check_benchmark(settings)
        _run_benchmark(settings, verbose)


@app.command(rich_help_panel="Flows")
def distill(
    supports: Annotated[Path, typer.Argument(help="Folder with one subfolder of support images per class.")],
    output: Annotated[
        Path, typer.Argument(help="Folder receiving student.safetensors, student.json, report.md, pictures/, "
                             "student.onnx and its model card.")
    ],
    preset: Annotated[
        DistillPreset | None,
        typer.Option(help="An embedded configuration: 'digits' runs on a CPU (the digits backbone, teacher and "
                     "student, prepared on base digits 0-4 in the demo's store)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="DistillAppConfig YAML for the models and settings (docs/configuration.md).")
    ] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help=SETS_HELP)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a student already in OUTPUT.")] = False,
) -> None:
    """Run the distill flow: specialise the supports, generate TINT images, label them, distil a student."""
    with user_errors():
        base = {"supports": str(supports), "output": str(output)}
        if preset is not None and config is not None:
            raise ValueError("give --preset or --config, not both (--set changes single fields of either)")
        if preset is not None:
            settings = DISTILL_PRESETS[preset.value](str(supports), str(output))
        elif config is not None:
            settings = DistillAppConfig.from_yaml(config).updated(**base)
        else:
            settings = DistillAppConfig.from_mapping(base, source="arguments")
        settings = settings.with_overrides(sets or [])
        if (Path(settings.output) / "student.safetensors").exists() and not overwrite:
            raise FileExistsError(f"{settings.output} already holds a student: choose another folder or pass "
                                  "--overwrite")  # fmt: skip
        from tint_core.pipeline.checks import check_distill_app

        check_distill_app(settings)
        from flows.console import quiet_terminal
        from flows.distill import DistillOutcome
        from flows.distill import distill as distill_flow
        from tint_core.pipeline.requests import DistillRequest

        quiet_terminal()
        outcome: DistillOutcome
        outcome, _ = _run_flow("distill", lambda: distill_flow(DistillRequest.of(settings), settings, return_state=True))
        stdout.print(f"student: {outcome.student}\nreport: {outcome.report}", highlight=False, soft_wrap=True)
        if outcome.onnx is not None:
            card = Path(outcome.onnx).parent / "model_card.md"
            stdout.print(f"onnx: {outcome.onnx}\nmodel card: {card}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
