"""The Prefect layer's own pieces: device threads, the retry condition, the cache policy's keys."""

import threading
import time

import pytest

from tasks.caching import StoredArtifacts, record_key
from tasks.runtime import _transient, on_device, set_steps_per_device
from tint_core.store import StoreAccessError, StoreRetryError


def test_tasks_on_one_device_take_turns_on_its_own_thread_and_other_devices_do_not_wait():
    inside: dict[str, int] = {"cpu": 0, "meta": 0}
    most: dict[str, int] = {"cpu": 0, "meta": 0}
    computed_on: dict[str, set] = {"cpu": set(), "meta": set()}
    lock = threading.Lock()

    def step(device: str, value: int) -> int:
        with lock:
            inside[device] += 1
            most[device] = max(most[device], inside["cpu"] + inside["meta"] if device == "meta" else inside[device])
            computed_on[device].add(threading.get_ident())
        time.sleep(0.05)
        with lock:
            inside[device] -= 1
        return 2 * value

    returned = []

    def task(device: str, value: int) -> None:
        returned.append(on_device(device, step, device, value))

    threads = [threading.Thread(target=task, args=(device, i)) for i, device in enumerate(["cpu"] * 4 + ["meta"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(returned) == [0, 2, 4, 6, 8]
    assert most["cpu"] == 1  # never two heavy tasks on one device
    assert most["meta"] == 2  # the other device ran alongside a CPU task
    assert len(computed_on["cpu"]) == 1 and computed_on["cpu"] != computed_on["meta"]  # one thread per device
    assert threading.get_ident() not in computed_on["cpu"]


def test_steps_per_device_run_side_by_side_but_exclusive_ones_and_one_restores_taking_turns():
    """Two steps that each wait for the other complete only when two run at once on the device."""

    def meet(barrier: threading.Barrier) -> int:
        return barrier.wait(timeout=2)  # raises BrokenBarrierError when the other step never arrives

    def two_steps(exclusive: bool = False) -> list[object]:
        barrier, outcomes = threading.Barrier(2), []

        def task() -> None:
            try:
                outcomes.append(on_device("cpu", meet, barrier, exclusive=exclusive))
            except threading.BrokenBarrierError as error:
                outcomes.append(error)

        threads = [threading.Thread(target=task) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes

    set_steps_per_device(2)
    try:
        assert sorted(two_steps()) == [0, 1]
        # steps sharing a loaded model with mutable state (the diffusion backbone) still take turns
        assert any(isinstance(outcome, threading.BrokenBarrierError) for outcome in two_steps(exclusive=True))
    finally:
        set_steps_per_device(1)
    assert any(isinstance(outcome, threading.BrokenBarrierError) for outcome in two_steps())  # one at a time again
    with pytest.raises(ValueError, match="at least 1"):
        set_steps_per_device(0)


def test_an_error_on_the_device_thread_reaches_the_task():
    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        on_device("cpu", fail)


class _State:
    def __init__(self, error: Exception):
        self.error = error

    def result(self):
        raise self.error


@pytest.mark.parametrize("error, retry", [(StoreRetryError("flaky"), True), (StoreAccessError("no bucket"), False),
                                          (ValueError("bad input"), False), (MemoryError(), False)])  # fmt: skip
def test_only_transient_store_errors_are_retried(error, retry):
    assert _transient(None, None, _State(error)) is retry


def test_the_cache_key_of_a_task_is_its_artifact_key_or_a_digest_of_all():
    one, two = "a" * 64, "b" * 64
    assert record_key([one]) == one
    assert record_key([one, two]) != record_key([two, one]) and len(record_key([one, two])) == 64
    with pytest.raises(ValueError, match="keys function"):
        StoredArtifacts().compute_key(None, {"store": "x"}, {})


def test_a_step_that_never_ran_because_an_upstream_one_failed_reports_the_upstream_error(prefect_server):
    from prefect import flow, task

    from flows.records import Submissions

    @task
    def read_images() -> int:
        raise ValueError("cannot read image 1002.png")

    @task
    def summarise(count: int) -> int:
        return count

    @flow
    def pipeline() -> int:
        submit = Submissions()
        return submit.result(submit(summarise, submit(read_images)))

    with pytest.raises(ValueError, match="cannot read image 1002.png"):  # not Prefect's "Run is in PENDING state"
        pipeline()
