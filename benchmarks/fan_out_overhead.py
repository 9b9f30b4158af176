"""What fanning out thousands of specialisation units costs Prefect, with the compute replaced by a no-op.

    python benchmarks/fan_out_overhead.py [--units 3000] [--chunks 100 300] [--sample-runs 20] [--workers 2]
                                          [--databases sqlite postgresql]

A unit here is what ``flows.specialize`` runs per unit: one specialise task and one generate task (no-ops). Measured
on a real ``prefect server`` (127.0.0.1, a temporary PREFECT_HOME) on each database in turn: sqlite, as the embedded
main job runs, and PostgreSQL, as a cluster's server should (a throw-away cluster, ``tests/postgres.py``):

1. tasks: every unit's tasks mapped on one flow's thread pool (``fan_out: tasks``): seconds per unit until the flow
   returns, and how fast the server then records the task runs;
2. deployments: units in chunks of ``--chunks`` per deployment run, on ``--workers`` process workers (``fan_out:
   deployments``): the makespan of all units, and worker-seconds per unit (makespan × workers / units); chunks of one
   unit are measured on ``--sample-runs`` runs and reported per unit the same way.

Prints Markdown. The figures are orchestration only: a real unit adds its GPU time (docs/deployments.md).
"""

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path

from prefect import flow, task, unmapped
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

REPO = Path(__file__).parents[1]
sys.path.insert(0, str(REPO))  # the throw-away PostgreSQL of the tests
from tests.postgres import throwaway_postgres  # noqa: E402

BIN = Path(sys.executable).parent
POOL = "overhead"


@task
def noop_specialize(unit: int) -> int:
    return unit


@task
def noop_generate(unit: int, method: str) -> int:
    return unit


@flow(name="noop-units")
def noop_units(units: list[int]) -> int:
    """One deployment run of a chunk: per unit a specialise and a generate task, as flows.specialize runs them."""
    for unit in units:
        noop_generate(noop_specialize(unit), "tint")
    return len(units)


@flow(name="noop-fan-out", task_runner=ThreadPoolTaskRunner(max_workers=16))
def noop_fan_out(units: int) -> int:
    """Every unit's tasks on this flow's task runner, as the benchmark flow maps them with fan_out: tasks."""
    specialized = noop_specialize.map(range(units))
    noop_generate.map(specialized, unmapped("tint")).wait()
    return units


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str) -> None:
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def _wait_final(flow_run_ids: list, poll: float = 1.0) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        while True:
            runs = []
            for start in range(0, len(flow_run_ids), 200):
                runs += client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=flow_run_ids[start : start + 200])))  # fmt: skip
            if all(run.state and run.state.is_final() for run in runs):
                bad = [f"{run.name}: {run.state.name} ({run.state.message})" for run in runs
                       if not run.state.is_completed()]  # fmt: skip
                if bad:
                    raise RuntimeError(f"{len(bad)} runs did not complete (worker logs in PREFECT_HOME): {bad[:3]}")
                return
            time.sleep(poll)


def measure_tasks(units: int, window: float = 60.0) -> tuple[float, int, int]:
    """Seconds until the flow returns, and how many task runs the server had recorded then and ``window`` seconds
    later (sqlite keeps a backlog: waiting for every record of thousands of tasks takes many minutes)."""
    from flows.records import read_task_runs

    started = time.perf_counter()
    state = noop_fan_out(units, return_state=True)
    returned = time.perf_counter() - started
    before = len(read_task_runs(state.state_details.flow_run_id))
    time.sleep(window)
    return returned, before, len(read_task_runs(state.state_details.flow_run_id))


def measure_deployments(units: int, chunk: int) -> tuple[float, int]:
    from prefect.deployments import run_deployment

    started = time.perf_counter()
    runs = [run_deployment(f"noop-units/{POOL}", parameters={"units": list(range(first, min(units, first + chunk)))},
                           timeout=0, as_subflow=False).id for first in range(0, units, chunk)]  # fmt: skip
    _wait_final(runs)
    return time.perf_counter() - started, len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=3000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--sample-runs", type=int, default=20, help="runs of one unit each, for chunk size 1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-tasks", action="store_true", help="measure deployment runs only (no task backlog)")
    parser.add_argument("--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    args = parser.parse_args()
    logging.getLogger("prefect").setLevel(logging.WARNING)
    if len(args.databases) > 1:  # a process per database: a client's backlog of events must not carry over
        common = ["--units", str(args.units), "--chunks", *map(str, args.chunks), "--sample-runs",
                  str(args.sample_runs), "--workers", str(args.workers), *(["--no-tasks"] if args.no_tasks else [])]
        for database in args.databases:
            subprocess.run([sys.executable, __file__, *common, "--databases", database], check=True)
        return
    for database in args.databases:
        print(f"\n### {database}\n", flush=True)
        with throwaway_postgres() if database == "postgresql" else nullcontext() as postgres:
            _on_a_server(args, {"PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres.url} if postgres else {})


def _on_a_server(args: argparse.Namespace, database: dict[str, str]) -> None:
    """Start a server (with ``database``'s settings), its pool and workers, measure, stop everything."""
    home = tempfile.mkdtemp(prefix="tint-overhead-")
    port = _port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": home, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PYTHONPATH": str(REPO),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING", **database}  # fmt: skip
    processes = [subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                   str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)]  # fmt: skip
    try:
        _wait_healthy(env["PREFECT_API_URL"])
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            _measure(args, env, processes)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(os.getpgid(process.pid), signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:  # a busy worker may not act on SIGTERM
                    os.killpg(os.getpgid(process.pid), signal.SIGKILL)
                    process.wait()


def _measure(args: argparse.Namespace, env: dict[str, str], processes: list[subprocess.Popen]) -> None:
    """Deploy the no-op unit flow on a process pool, start its workers, print the table."""
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    noop_units.from_source(source=str(REPO), entrypoint="benchmarks/fan_out_overhead.py:noop_units").deploy(
        name=POOL, work_pool_name=POOL)  # fmt: skip
    for index in range(args.workers):
        log = open(Path(env["PREFECT_HOME"]) / f"worker-w{index}.log", "w")  # noqa: SIM115  (open while it runs)
        processes.append(subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name",
                                           f"w{index}", "--limit", "1"], env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
    units, workers = args.units, args.workers
    print("| fan-out | flow runs | units | seconds | ms per unit |\n|---|---|---|---|---|")
    if not args.no_tasks:
        returned, recorded, later = measure_tasks(units)
        print(f"| tasks, until the flow returns | 1 | {units} | {returned:.0f} | {1000 * returned / units:.1f} |")
        print(f"(the server had recorded {recorded} task runs when the flow returned, {later} a minute later)")
    sample, runs = measure_deployments(args.sample_runs, 1)
    print(f"| deployments, 1 unit per run ({workers} workers) | {runs} | {args.sample_runs} | {sample:.0f} | "
          f"{1000 * sample * workers / args.sample_runs:.0f} worker-ms |")  # fmt: skip
    for chunk in args.chunks:
        seconds, runs = measure_deployments(units, chunk)
        print(f"| deployments, {chunk} units per run ({workers} workers) | {runs} | {units} | {seconds:.0f} | "
              f"{1000 * seconds * workers / units:.1f} worker-ms |")  # fmt: skip


if __name__ == "__main__":
    main()
