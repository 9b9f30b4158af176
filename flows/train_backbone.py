"""Train the digits-style latent diffusion model on a dataset's base classes (cached in the store), then export it
as a diffusers checkpoint folder that ``BackboneConfig.source`` accepts.

    python -m flows.train_backbone [CONFIG.yaml] [--output FOLDER]

With the defaults this reproduces the shipped ``digits`` backbone (about 13 minutes on two CPU cores).
"""

import argparse
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.console import quiet_terminal, run_main
from flows.records import Submissions, wait_for_task_runs
from flows.stopping import stoppable
from tasks import StepTasks
from tint_core.pipeline.checks import check_train_backbone
from tint_core.pipeline.config import TrainBackboneConfig
from tint_core.store import ArtifactRef


class TrainOutcome(BaseModel):
    """The trained model's artifact, the folder it was exported to, and how many task runs the flow made."""

    trained: ArtifactRef
    folder: str
    task_runs: int


@flow(name="train-backbone")
@stoppable
def train_backbone(config: TrainBackboneConfig = TrainBackboneConfig()) -> TrainOutcome:  # noqa: B008
    """Train a latent diffusion model on the base classes and write it as a checkpoint folder."""
    check_train_backbone(config)
    steps, store, submit = StepTasks(config.store), config.store, Submissions()
    dataset = submit(steps.index_dataset, store, config.dataset)
    trained = submit(steps.train_diffusion, store, dataset, config.training, config.image_size)
    folder = submit.result(submit(steps.export_backbone, store, trained, config.output))
    get_run_logger().info("the trained backbone is in %s: use it as generator.specialization.backbone.source", folder)
    return TrainOutcome(trained=trained.result(), folder=folder, task_runs=len(submit.futures))


def main(argv: list[str] | None = None) -> int:
    """Run the flow on a YAML configuration (or the defaults), wait for Prefect's records, print the folder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", type=Path, help="TrainBackboneConfig YAML (default: the digits recipe)")
    parser.add_argument("--output", help="checkpoint folder (overrides the configuration's)")
    args = parser.parse_args(argv)
    config = TrainBackboneConfig.from_yaml(args.config) if args.config else TrainBackboneConfig()
    config = config.updated(output=args.output) if args.output else config
    check_train_backbone(config)
    quiet_terminal()
    state = train_backbone(config, return_state=True)
    outcome: TrainOutcome = state.result()
    wait_for_task_runs(state.state_details.flow_run_id, outcome.task_runs)
    print(f"trained backbone: {outcome.folder}")
    return 0


if __name__ == "__main__":
    run_main(main)
