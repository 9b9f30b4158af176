"""The benchmark flow: the same seeded episodes for every method, every step a cached artifact in one store.

    dataset ─► episodes ─► specialisation units (an episode's classes, or one class) ─► generated images per method
       │           └─────► augmented supports, pools of real images (real classes', base classes')
    base split ─► teacher and student backbones
            per episode × method: soft labels, image-set quality ─► student (one budget) ─► score ─► aggregate

Run it with ``tint demo`` (the main job: the embedded demo defaults) or ``tint benchmark CONFIG.yaml``
(``flows/cli.py``), or as a deployment (``deployments/prefect.yaml``).
"""

import time
from datetime import datetime, timezone

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from flows.console import notify_progress
from flows.fewshot import submit_episode
from flows.preparation import prepare_backbones
from flows.records import Submissions
from flows.stopping import stoppable
from tasks import StepTasks
from tasks.results import publish_report, publish_results, read_summary, record_history
from tasks.runtime import set_steps_per_device
from tint_core.pipeline.checks import check_benchmark, max_queries
from tint_core.pipeline.config import BenchmarkConfig, generator_method
from tint_core.pipeline.history import series_id
from tint_core.pipeline.requests import BenchmarkRequest
from tint_core.pipeline.results import BenchmarkSummary, verdict
from tint_core.pipeline.runs import RunRecord, UnitRecord
from tint_core.store import ArtifactRef


class BenchmarkOutcome(BaseModel):
    """What a benchmark run returns: the summary, where the results are, and how many task runs it made."""

    summary: BenchmarkSummary
    results: ArtifactRef
    task_runs: int
    run_id: str
    report: str  # where the run's HTML report is in the store


def specialization_units(config: BenchmarkConfig) -> list[list[int]]:
    """The class groups of one episode that each specialisation task covers."""
    classes = list(range(config.episodes.n_way))
    return [classes] if config.unit == "episode" else [[index] for index in classes]


def _results(futures: dict) -> dict:
    """The same nesting of dictionaries, each future replaced by its result."""
    return {key: _results(value) if isinstance(value, dict) else value.result() for key, value in futures.items()}


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
        notify_progress(steps_done, len(futures), units_done, len(units))
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


def _dispatch_episodes(submit: Submissions, steps: StepTasks, config: BenchmarkConfig,
                       episode: dict[str, PrefectFuture], images: dict[str, dict], reference: dict[str, object],
                       fewshot_args: tuple) -> dict[str, list[PrefectFuture]]:  # fmt: skip
    """With ``fewshot_fan_out: deployments``, one deployment run per chunk of episodes; per episode, the run it
    waits for."""
    execution = config.execution
    ids = list(episode)
    if execution.fewshot_fan_out == "tasks":
        return {e: [] for e in ids}
    waits: dict[str, list[PrefectFuture]] = {}
    for start in range(0, len(ids), execution.episodes_per_run):
        chunk = ids[start : start + execution.episodes_per_run]
        run = submit(steps.run_episodes_on_workers, execution, config.store, [episode[e] for e in chunk],
                     [images[e] for e in chunk], [reference[e] for e in chunk], *fewshot_args)  # fmt: skip
        waits |= {e: [run] for e in chunk}
    return waits


# Heavy steps take turns on their device's own threads (tasks.runtime.on_device, execution.steps_per_device at a time);
# the pool's threads let light steps, cache checks and waits for workers' deployment runs proceed meanwhile, so their
# number bounds the chunks dispatched at once.
@flow(name="benchmark", task_runner=ThreadPoolTaskRunner(max_workers=16))
@stoppable
def benchmark(run: BenchmarkRequest = BenchmarkRequest(), config: BenchmarkConfig | None = None) -> BenchmarkOutcome:  # noqa: B008
    """Score supports-only, control, TI-only, TINT and real-pool students on the same episodes, under one training
    budget; summarise with intervals, paired gains and image-set quality.

    Args:
        run: the preset and the choices that differ between runs (N, K, Q, episodes, methods, store, where units
            run), and overrides of any other field.
        config: advanced: a whole configuration (a YAML file's content) in place of the preset; the run's choices
            still apply over it.
    """
    logger = get_run_logger()
    started = datetime.now(timezone.utc)
    config = run.resolve(config)
    check_benchmark(config)  # one-line errors before any work, nothing written
    set_steps_per_device(config.execution.steps_per_device)
    steps, store, episodes = StepTasks(config.store), config.store, config.episodes
    submit = Submissions()

    # 1. data, episodes, backbones prepared on the base classes
    dataset = submit(steps.index_dataset, store, config.dataset)
    ids = [str(episode_id) for episode_id in range(episodes.episodes)]
    episode = {
        e: submit(steps.sample_episode, store, dataset, episodes, int(e), config.dataset.image_size) for e in ids
    }
    teacher, student = config.teacher, config.student
    teacher_backbone, student_backbone = prepare_backbones(steps, submit, store, dataset, teacher, student)
    logger.info("stage 1: dataset, %d episodes of %d-way %d-shot, backbones", len(ids), episodes.n_way,
                episodes.k_shot)  # fmt: skip

    # 2. specialisation units, then each unit's images for every generating method; on workers, the tasks below
    #    wait for the units' deployment runs and find their artifacts in the store (Cached)
    generated = [method for method in config.methods if generator_method(method)]
    unit_specs = [(e, classes) for e in ids for classes in specialization_units(config)] if generated else []
    on_workers = _dispatch(submit, steps, config, episode, unit_specs, generated)
    units: list[PrefectFuture] = []
    unit_images: list[dict[str, PrefectFuture]] = []
    images: dict[str, dict[str, list[PrefectFuture]]] = {e: {method: [] for method in generated} for e in ids}
    for index, (e, classes) in enumerate(unit_specs):
        unit = submit(steps.specialize_unit, store, episode[e], classes, config.generator, wait_for=on_workers[index])
        units.append(unit)
        unit_images.append({method: submit(steps.generate_unit, store, unit, config.generator, method)
                            for method in generated})  # fmt: skip
        for method in generated:
            images[e][method].append(unit_images[-1][method])
    logger.info("stage 2: %d specialisation units (%s granularity, %s), images for %s", len(units), config.unit,
                "on workers of " + config.execution.deployment if any(on_workers) else "as tasks",
                ", ".join(generated) or "no method")  # fmt: skip

    # 3. per episode, the images of the methods that do not generate: augmented supports, pools of real images (the
    #    real pool is also the reference of the images' precision and recall)
    controls = {e: {} for e in ids}
    quality_reference: dict[str, PrefectFuture] = {}
    for e in ids:
        if "augmented_supports" in config.methods:
            controls[e]["augmented_supports"] = submit(steps.augment_supports, store, episode[e],
                                                       config.controls.augmented_supports,
                                                       config.control_images("augmented_supports"))  # fmt: skip
        if "base_pool" in config.methods:
            controls[e]["base_pool"] = submit(steps.draw_pool, store, dataset, episode[e], "base_pool",
                                              config.control_images("base_pool"),
                                              config.controls.base_pool.seed)  # fmt: skip
        if "real_pool" in config.methods or config.measures_quality:
            controls[e]["real_pool"] = submit(steps.draw_pool, store, dataset, episode[e], "real_pool", None, 0)
            quality_reference[e] = controls[e]["real_pool"]
        for method, future in controls[e].items():
            if method in config.methods:
                images[e][method] = [future]

    # 4. per episode: the teacher's score; per method: soft labels, image-set quality, the student, its score; on
    #    workers, these tasks wait for the episodes' deployment runs and find their artifacts in the store (Cached)
    method_images = {e: {method: images[e].get(method) for method in config.methods} for e in ids}
    reference = {e: quality_reference.get(e) if config.measures_quality else None for e in ids}
    fewshot_args = (teacher, student, teacher_backbone, student_backbone, config.evaluation.quality_k)
    on_workers_fewshot = _dispatch_episodes(submit, steps, config, episode, method_images, reference, fewshot_args)
    work = {e: submit_episode(steps, submit, store, episode[e], method_images[e], reference[e], *fewshot_args,
                              wait_for=on_workers_fewshot[e]) for e in ids}  # fmt: skip
    teacher_scores = {e: work[e].teacher_score for e in ids}
    labels, quality = {e: work[e].labels for e in ids}, {e: work[e].quality for e in ids}
    students, scores = {e: work[e].students for e in ids}, {e: work[e].scores for e in ids}
    logger.info("stage 3: %d students (%s) on %d episodes, %d steps each (%s)", len(ids) * len(config.methods),
                ", ".join(config.methods), len(ids), config.student.training.steps,
                "on workers of " + config.execution.fewshot_deployment if any(on_workers_fewshot.values())
                else "as tasks")  # fmt: skip

    # 5. fan in
    aggregate = submit(steps.aggregate_results, store, scores, teacher_scores, labels, quality, episodes,
                       config.evaluation, max_queries(config))  # fmt: skip
    _track(submit.futures, units)
    results = submit.result(aggregate)
    summary = read_summary(store, results)
    publish_results(summary, results)
    runs = record_history(config, summary, results)
    logger.info("stage 4: %d episodes summarised; results table and summary in %s; run %d of this configuration's "
                "history", len(ids), results.uri, runs)  # fmt: skip
    sentence = verdict(summary)
    if sentence:
        logger.info(sentence)

    # 6. the run's record (every artifact it used) and its report, both in the store
    record = RunRecord(
        run_id=str(flow_run.id), run_name=flow_run.name or "", started=started, finished=datetime.now(timezone.utc),
        series=series_id(config), config=config, dataset=dataset.result(),
        episodes={e: future.result() for e, future in episode.items()},
        backbones={name: future.result() for name, future in
                   (("teacher", teacher_backbone), ("student", student_backbone)) if future is not None},
        units=[UnitRecord(episode=e, classes=classes, specializations=unit.result(),
                          images={method: future.result() for method, future in by_method.items()})
               for (e, classes), unit, by_method in zip(unit_specs, units, unit_images, strict=True)],
        controls=_results(controls), teacher_scores=_results(teacher_scores), labels=_results(labels),
        quality=_results(quality), students=_results(students), scores=_results(scores), results=results,
    )  # fmt: skip
    report = publish_report(record)
    logger.info("report: %s", report)
    return BenchmarkOutcome(summary=summary, results=results, task_runs=len(submit.futures), run_id=record.run_id,
                            report=report)  # fmt: skip
