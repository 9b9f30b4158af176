"""Make sure Prefect has recorded a flow run's task runs before the process exits.

Task-run states reach the server as events; a process that exits right after its flow can lose the last ones (the
ephemeral server is still flushing). The main job therefore waits until the API reports every task run it submitted
in a final state.
"""

import time
from typing import Any
from uuid import UUID

from prefect import Task
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture

PAGE = 200  # the API's largest page of task runs


def read_task_runs(flow_run_id: UUID, client: SyncPrefectClient | None = None) -> list[TaskRun]:
    """Every task run of a flow run (paged), through ``client`` or a client of its own."""
    if client is None:
        with get_client(sync_client=True) as own:
            return read_task_runs(flow_run_id, own)
    runs: list[TaskRun] = []
    while True:
        page = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     limit=PAGE, offset=len(runs))  # fmt: skip
        runs += page
        if len(page) < PAGE:
            return runs


def wait_for_task_runs(flow_run_id: UUID, expected: int, timeout: float = 300.0, poll: float = 0.5) -> list[TaskRun]:
    """Poll until at least ``expected`` task runs of the flow run are recorded, all of them in a final state.

    Raises:
        TimeoutError: they are not recorded within ``timeout`` seconds (the message says how many are).
    """
    deadline = time.monotonic() + timeout
    # One client for every poll: a new one costs its SSL context (~40 ms of CPU), whatever the URL's scheme.
    with get_client(sync_client=True) as client:
        while True:
            runs = read_task_runs(flow_run_id, client)
            final = [run for run in runs if run.state is not None and run.state.is_final()]
            if len(final) >= expected and len(final) == len(runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"Prefect recorded {len(final)} of {expected} task runs of flow run {flow_run_id} "
                                   f"in a final state within {timeout:.0f} s")  # fmt: skip
            time.sleep(poll)


class Submissions:
    """Submits a flow's tasks and remembers the futures: how many task runs Prefect must record, and what to track."""

    def __init__(self) -> None:
        self.futures: list[PrefectFuture] = []

    def __call__(self, task: Task, *args: Any, wait_for: list[PrefectFuture] | None = None) -> PrefectFuture:
        future = task.submit(*args, wait_for=wait_for or None)
        self.futures.append(future)
        return future

    def result(self, future: PrefectFuture) -> Any:
        """The result of ``future``; when it never ran because an upstream task failed, that task's error instead
        (the cause, rather than Prefect's "Run is in PENDING state")."""
        future.wait()
        if not future.state.is_completed():
            for submitted in self.futures:
                submitted.wait()
                if submitted.state.is_failed():
                    submitted.result()  # raises the task's own exception
        return future.result()
