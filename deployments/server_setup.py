"""The server's side of a tint cluster, created or brought up to date on the server at PREFECT_API_URL: the work pools
with their base job templates, the GPU pool's concurrency limit and the crashed-run automation.

    python deployments/server_setup.py [GPU_POOL_TYPE [GPUS]]

deployments/setup.sh runs it before ``prefect deploy``. It does what these commands do (docs/deployments.md), in one
process rather than seven that each import Prefect afresh (about 3 CPU-s apiece):

    prefect work-pool create tint-cpu --type process --base-job-template deployments/pools/process.json --overwrite
    prefect work-pool create tint-gpu --type GPU_POOL_TYPE --base-job-template deployments/pools/GPU_POOL_TYPE.json ...
    prefect work-pool set-concurrency-limit tint-gpu GPUS
    prefect automation delete tint-crashed-runs; prefect automation create --from-file deployments/automations/...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound

HERE = Path(__file__).parent
POOL_TYPES = ("process", "docker", "kubernetes")


def _pool(client, name: str, pool_type: str) -> None:
    """Create the pool, or give an existing one the template of this checkout (its type is kept, as the CLI keeps it)."""
    template = json.loads((HERE / "pools" / f"{pool_type}.json").read_text())
    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template))
        print(f"created work pool {name} ({pool_type})")
        return
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    print(f"updated work pool {name}")


def _automation(client, path: Path) -> None:
    """Replace the automation of that name (none the first time) by the one in ``path``."""
    spec = AutomationCore.model_validate(yaml.safe_load(path.read_text()))
    existing = client.read_automations_by_name(spec.name)
    for automation in existing:
        client.delete_automation(automation.id)
    client.create_automation(spec)
    print(f"{'replaced' if existing else 'created'} automation {spec.name}")


def main(gpu_pool_type: str = "process", gpus: int = 1) -> None:
    with get_client(sync_client=True) as client:
        _pool(client, "tint-cpu", "process")
        _pool(client, "tint-gpu", gpu_pool_type)
        client.update_work_pool("tint-gpu", WorkPoolUpdate(concurrency_limit=gpus))
        print(f"tint-gpu runs at most {gpus} unit(s) at once")
        _automation(client, HERE / "automations" / "crashed-runs.yaml")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gpu_pool_type", nargs="?", default="process", choices=POOL_TYPES)
    parser.add_argument("gpus", nargs="?", default=1, type=int, help="units the GPU pool runs at once")
    arguments = parser.parse_args()
    if arguments.gpus < 1:
        parser.error(f"GPUS must be 1 or more, not {arguments.gpus}")
    main(arguments.gpu_pool_type, arguments.gpus)
