"""Prefect tasks: each is a thin shell over one ``tint_core.pipeline`` step, cached on the step's content keys.

``StepTasks(store)`` gives every task with its cache records kept in that store (see ``tasks.caching``).
"""

from prefect import Task

from tasks import classify, data, dispatch, generation, results, training, unlabelled
from tasks.caching import store_records


class StepTasks:
    """Every step task, configured to keep its Prefect cache records in ``store``."""

    def __init__(self, store: str):
        storage = store_records(store)

        def configured(task: Task) -> Task:
            return task.with_options(result_storage=storage)

        self.index_dataset = configured(data.index_dataset)
        self.sample_episode = configured(data.sample_episode)
        self.index_support_set = configured(data.index_support_set)
        self.specialize_unit = configured(generation.specialize_unit)
        self.generate_unit = configured(generation.generate_unit)
        self.run_units_on_workers = configured(dispatch.run_units_on_workers)
        self.run_episodes_on_workers = configured(dispatch.run_episodes_on_workers)
        self.prepare_backbone = configured(classify.prepare_backbone)
        self.score_teacher = configured(classify.score_teacher)
        self.augment_supports = configured(unlabelled.augment_supports)
        self.draw_pool = configured(unlabelled.draw_pool)
        self.label_images = configured(classify.label_images)
        self.measure_quality = configured(classify.measure_quality)
        self.distill_student = configured(classify.distill_student)
        self.evaluate_student = configured(classify.evaluate_student)
        self.export_student = classify.export_student
        self.package_student = classify.package_student
        self.train_diffusion = configured(training.train_diffusion)
        self.export_backbone = training.export_backbone
        self.aggregate_results = configured(results.aggregate_results)


__all__ = ["StepTasks"]
