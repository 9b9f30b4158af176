"""The soak's flow process: run the small benchmarks one after another against a Prefect server, and after each run
record this process's and the server's resident memory and open files (a long-lived process, as a worker's is).

    PREFECT_API_URL=... python -m tests.pipeline.soak_runs STORE SERVER_PID UNCACHED CACHED OUTPUT.json

The server is named in the environment, as a worker's flow-run process has it, so that every thread Prefect starts
here sees it: a setting made with ``temporary_settings`` reaches only the threads started within it, and Prefect ships
logs and events from threads of its own (one started outside it sent a flow's logs to a server Prefect started for
them in the process: seen in another test). The process must start no process of its own: it would be measured as
this one."""

import json
import os
import sys
from pathlib import Path

from flows.benchmark import benchmark
from tests.pipeline.helpers import run_flow, small_config
from tests.pipeline.test_stopping import _descendants


def usage(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and open file descriptors of ``pid`` and its descendants."""
    memory = files = 0
    for member in {pid} | _descendants(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            memory += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            files += len(os.listdir(f"/proc/{member}/fd"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue  # ended meanwhile
    return memory / 1024, files


def main(store: str, server: int, uncached: int, cached: int, output: Path) -> None:
    # Small runs without diffusion (supports only), each uncached one on episodes of its own seed.
    base = small_config(store, methods=["supports_only"])
    configs = [base.updated(episodes=base.episodes.updated(seed=seed)) for seed in range(uncached)]
    samples = []
    for index in range(uncached + cached):
        run = run_flow(benchmark, config=configs[index % uncached])
        if run.all_cached != (index >= uncached):
            raise AssertionError(f"run {index + 1}: all cached is {run.all_cached}")
        if started := _descendants(os.getpid()):  # a server of its own, say, would be measured as this process
            raise AssertionError(f"run {index + 1}: the flow process started processes {sorted(started)}")
        samples.append({"run": index + 1, "cached": run.all_cached, "server": usage(server),
                        "flow process": usage(os.getpid())})  # fmt: skip
        output.write_text(json.dumps(samples))  # what was measured survives a failure


if __name__ == "__main__":
    store, server, uncached, cached, output = sys.argv[1:]
    main(store, int(server), int(uncached), int(cached), Path(output))
