"""The benchmark flow: the same seeded episodes for every method, every step a cached artifact in one store.

    dataset ─► episodes ─► specialisation units (an episode's classes, or one class) ─► generated images per method
    base split ─► teacher and student backbones         teacher labels ◄─┘
                                  per episode × method: soft labels ─► distilled student ─► score ─► aggregate

Run the main job (the embedded demo defaults, or a YAML file):

    python -m flows.benchmark [CONFIG.yaml] [--store URL] [--episodes E]
"""

import argparse
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from flows.console import quiet_terminal, run_main
from flows.records import Submissions, wait_for_task_runs
from tasks import StepTasks
from tasks.results import publish_results, read_summary, record_history
from tint_core.diffusion.backbone import RANDOM_BACKBONES
from tint_core.pipeline.checks import check_benchmark, max_queries
from tint_core.pipeline.config import BenchmarkConfig, generator_method
from tint_core.pipeline.presets import demo_config
from tint_core.pipeline.results import BenchmarkSummary, summary_markdown
from tint_core.store import ArtifactRef


class BenchmarkOutcome(BaseModel):
    """What a benchmark run returns: the summary, where the results are, and how many task runs it made."""

    summary: BenchmarkSummary
    results: ArtifactRef
    task_runs: int


def specialization_units(config: BenchmarkConfig) -> list[list[int]]:
    """The class groups of one episode that each specialisation task covers."""
    classes = list(range(config.episodes.n_way))
    return [classes] if config.unit == "episode" else [[index] for index in classes]


def _track(futures: list[PrefectFuture], units: list[PrefectFuture]) -> None:
    """Report progress while the steps finish: a progress artifact on the flow run, and a log line every tenth."""
    logger = get_run_logger()
    progress = create_progress_artifact(0.0, key="tint-benchmark-progress",
                                        description=f"0 of {len(units)} specialisation units, 0 of {len(futures)} steps")  # fmt: skip
    unit_ids = {future.task_run_id for future in units}
    steps_done = units_done = 0
    last_update, last_tenth = 0.0, 0
    for future in as_completed(futures):
        steps_done += 1
        units_done += future.task_run_id in unit_ids
        description = f"{units_done} of {len(units)} specialisation units, {steps_done} of {len(futures)} steps"
        if time.monotonic() - last_update > 1.0 or steps_done == len(futures):  # the API need not hear of each step
            last_update = time.monotonic()
            update_progress_artifact(progress, 100.0 * steps_done / len(futures), description=description)
        tenth = 10 * steps_done // len(futures)
        if tenth > last_tenth:
            last_tenth = tenth
            logger.info("progress: %s", description)


def _dispatch(submit: Submissions, steps: StepTasks, config: BenchmarkConfig, episode: dict[str, PrefectFuture],
              unit_specs: list[tuple[str, list[int]]], methods: list[str]) -> list[list[PrefectFuture]]:  # fmt: skip
    """With ``fan_out: deployments``, one deployment run per chunk of units; per unit, the run it waits for."""
    execution = config.execution
    if execution.fan_out == "tasks":
        return [[] for _ in unit_specs]
    waits: list[list[PrefectFuture]] = []
    for start in range(0, len(unit_specs), execution.units_per_run):
        chunk = unit_specs[start : start + execution.units_per_run]
        run = submit(steps.run_units_on_workers, execution, config.store, [episode[e] for e, _ in chunk],
                     [classes for _, classes in chunk], config.generator, methods)  # fmt: skip
        waits += [[run]] * len(chunk)
    return waits


DEMO = demo_config()  # the flow's default parameter: the main job's embedded defaults


# Heavy steps take turns on their device (tasks.runtime.device_slot); the threads let light steps, cache checks and
# waits for workers' deployment runs proceed meanwhile, so their number bounds the units dispatched at once.
@flow(name="benchmark", task_runner=ThreadPoolTaskRunner(max_workers=16))
def benchmark(config: BenchmarkConfig = DEMO) -> BenchmarkOutcome:
    """Score supports-only, TI-only, TINT and real-pool students on the same episodes; summarise with intervals."""
    logger = get_run_logger()
    check_benchmark(config)  # one-line errors before any work, nothing written
    steps, store, episodes = StepTasks(config.store), config.store, config.episodes
    submit = Submissions()

    # 1. data, episodes, backbones prepared on the base classes
    dataset = submit(steps.index_dataset, store, config.dataset)
    ids = [str(episode_id) for episode_id in range(episodes.episodes)]
    episode = {
        e: submit(steps.sample_episode, store, dataset, episodes, int(e), config.dataset.image_size) for e in ids
    }
    teacher, student = config.teacher, config.student
    teacher_backbone = (submit(steps.prepare_backbone, store, dataset, teacher.model.backbone, teacher.pretrain,
                               teacher.centre_on_base) if teacher.pretrain or teacher.centre_on_base else None)  # fmt: skip
    student_backbone = (submit(steps.prepare_backbone, store, dataset, student.model.backbone, student.pretrain, False)
                        if student.pretrain else None)  # fmt: skip
    logger.info("stage 1: dataset, %d episodes of %d-way %d-shot, backbones", len(ids), episodes.n_way,
                episodes.k_shot)  # fmt: skip

    # 2. specialisation units, then each unit's images for every generating method; on workers, the tasks below
    #    wait for the units' deployment runs and find their artifacts in the store (Cached)
    generated = [method for method in config.methods if generator_method(method)]
    unit_specs = [(e, classes) for e in ids for classes in specialization_units(config)] if generated else []
    on_workers = _dispatch(submit, steps, config, episode, unit_specs, generated)
    units: list[PrefectFuture] = []
    images: dict[str, dict[str, list[PrefectFuture]]] = {e: {method: [] for method in generated} for e in ids}
    for index, (e, classes) in enumerate(unit_specs):
        unit = submit(steps.specialize_unit, store, episode[e], classes, config.generator, wait_for=on_workers[index])
        units.append(unit)
        for method in generated:
            images[e][method].append(submit(steps.generate_unit, store, unit, config.generator, method))
    logger.info("stage 2: %d specialisation units (%s granularity, %s), images for %s", len(units), config.unit,
                "on workers of " + config.execution.deployment if any(on_workers) else "as tasks",
                ", ".join(generated) or "no method")  # fmt: skip

    # 3. per episode: the teacher's score; per method: soft labels, distilled student, its score
    teacher_scores, labels, scores = {}, {e: {} for e in ids}, {e: {} for e in ids}
    for e in ids:
        teacher_scores[e] = submit(steps.score_teacher, store, episode[e], teacher, teacher_backbone)
        for method in config.methods:
            unit_images = images[e].get(method)
            pool = dataset if method == "real_pool" else None
            if method != "supports_only":
                labels[e][method] = submit(steps.label_images, store, episode[e], method, unit_images, pool, teacher,
                                           teacher_backbone)  # fmt: skip
            trained = submit(steps.distill_student, store, episode[e], method, unit_images, labels[e].get(method),
                             pool, student, student_backbone)  # fmt: skip
            scores[e][method] = submit(steps.evaluate_student, store, episode[e], trained)
    logger.info("stage 3: %d students (%s) on %d episodes", len(ids) * len(config.methods), ", ".join(config.methods),
                len(ids))  # fmt: skip

    # 4. fan in
    aggregate = submit(steps.aggregate_results, store, scores, teacher_scores, labels, episodes, config.evaluation,
                       max_queries(config))  # fmt: skip
    _track(submit.futures, units)
    results = aggregate.result()
    summary = read_summary(store, results)
    publish_results(summary, results)
    runs = record_history(config, summary, results)
    logger.info("stage 4: %d episodes summarised; results table and summary in %s; run %d of this configuration's "
                "history", len(ids), results.uri, runs)  # fmt: skip
    return BenchmarkOutcome(summary=summary, results=results, task_runs=len(submit.futures))


# The main job -------------------------------------------------------------------------------------------------------

RANDOM_WEIGHTS_NOTE = """\
Note: the '{source}' diffusion backbone has random weights, so its synthetic images are noise and the ti_only and
tint rows say nothing about TINT; they show the pipeline working end to end. For real figures, use a Stable
Diffusion checkpoint (and a real teacher) on a GPU, for example:
    python -m flows.benchmark examples/sd15-gpu.yaml
"""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark flow (embedded demo defaults, or a YAML file), print the results, wait for Prefect."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", type=Path, help="BenchmarkConfig YAML (default: the embedded demo)")
    parser.add_argument("--store", help="artifact store URL (overrides the configuration's)")
    parser.add_argument("--episodes", type=int, help="number of episodes E (overrides the configuration's)")
    parser.add_argument("--verbose", action="store_true", help="log every task run, not only the flow's progress")
    args = parser.parse_args(argv)
    config = BenchmarkConfig.from_yaml(args.config) if args.config else DEMO
    overrides = {"store": args.store} if args.store else {}
    if args.episodes:
        overrides["episodes"] = config.episodes.updated(episodes=args.episodes)
    config = config.updated(**overrides) if overrides else config
    check_benchmark(config)  # before Prefect starts: a bad input costs a line, not a server start-up
    source = config.generator.specialization.backbone.source
    quiet_terminal(verbose=args.verbose, random_backbone=source in RANDOM_BACKBONES)
    started = time.perf_counter()
    state = benchmark(config, return_state=True)
    outcome: BenchmarkOutcome = state.result()
    recorded = wait_for_task_runs(state.state_details.flow_run_id, outcome.task_runs)
    cached = sum(run.state.name == "Cached" for run in recorded)
    print(summary_markdown(outcome.summary))
    print(f"{len(recorded)} task runs recorded by Prefect ({cached} cached) in {time.perf_counter() - started:.0f} s")
    print(f"results (table and summary): {outcome.results.uri}")
    print(f"artifact store: {outcome.results.store}  (inspect with: tint store list {outcome.results.store})")
    if config.needs_generator and source in RANDOM_BACKBONES:
        print(RANDOM_WEIGHTS_NOTE.format(source=source))
    return 0


def cli() -> None:
    """Entry point: one-line errors for bad input, exit code 1."""
    run_main(main)


if __name__ == "__main__":
    cli()
