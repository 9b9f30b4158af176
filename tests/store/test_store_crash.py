"""Crash consistency and concurrent writers, with real processes killed by SIGKILL (local folder and S3)."""

import random
import signal
import time

import pytest
from crash_writer import key_of, on_writing, open_store, parts_of, put_same_key, write_until_killed

from tint_core.store import ArtifactNotFoundError, ArtifactStore

# Writers killed at least; on a machine so busy that fewer than a third of the kills land inside a put, more (up to
# three times as many) until a third have: the kill comes late when the test process waits for a core.
TRIALS = {"local": 30, "s3": 15}


def store_and_env(backend: str, request, tmp_path) -> tuple[str, dict[str, str]]:
    if backend == "local":
        return str(tmp_path / "store"), {}
    return request.getfixturevalue("s3_url"), request.getfixturevalue("s3_env")


def seconds_writing_a_put(url: str, tmp_path) -> float:
    """How long a put of a crash-test artifact writes to the store here and now, from its first part to its manifest.

    The kills fall at random within that long after a put begins writing: a fixed window fit an idle machine and
    missed most puts on a busy one. The quickest of three puts (into a store of its own), because on a busy machine
    the kill itself comes late (the test process waits for a core), and a typical put's window then let most kills
    fall after the put.
    """
    store = ArtifactStore(f"{url}-calibration", cache_dir=tmp_path / "calibration-cache")
    began: list[float] = []
    on_writing(store, lambda: began.append(time.perf_counter()))
    durations = []
    for index in range(3):
        store.put(key_of(index), parts_of(index), step="crash", params={"index": index})
        durations.append(time.perf_counter() - began[-1])
    return min(durations)


def leftovers(store: ArtifactStore) -> dict[str, list[str]]:
    """Per key folder, the entries no manifest refers to (writer folders of killed or losing writers)."""
    found = {}
    for key in store._keys():
        entries = [name for name in store._backend.list_dir(f"artifacts/{key}") if name != "manifest.json"]
        if store.exists(key):
            entries.remove(store.inspect(key).writer)
        if entries:
            found[key] = entries
    return found


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_writers_killed_at_random_moments_never_leave_a_visible_partial_artifact(
    backend, request, tmp_path, writer_context, summary, record_property
):
    url, env = store_and_env(backend, request, tmp_path)
    store = ArtifactStore(url, cache_dir=tmp_path / "reader-cache")
    rng = random.Random(20240607)
    window = seconds_writing_a_put(url, tmp_path)
    verified: set[str] = set()
    interrupted, left_before, trial = 0, set(), 0
    needed = TRIALS[backend] // 3
    while trial < TRIALS[backend] or (interrupted < needed and trial < 3 * TRIALS[backend]):
        writing = writer_context.Event()
        writer = writer_context.Process(target=write_until_killed, args=(url, env, str(tmp_path / "cache"), writing))
        writer.start()
        assert writing.wait(60), "the writer process did not begin writing a put"
        time.sleep(rng.uniform(0.0, window))
        writer.kill()
        writer.join(30)
        assert writer.exitcode == -signal.SIGKILL, f"trial {trial}: the writer died by itself ({writer.exitcode})"

        # 1. Every visible artifact verifies (those checked in earlier trials cannot have changed).
        visible = [key for key in store._keys() if store.exists(key)]
        report = store.verify([key for key in visible if key not in verified], quarantine=False)
        assert report.ok, f"trial {trial}: {report}"
        verified.update(visible)
        # 2. What the killed writer left half-done is invisible.
        partial = leftovers(store)
        for key in partial:
            if key not in verified:
                with pytest.raises(ArtifactNotFoundError):
                    store.get(key)
        left_now = {(key, entry) for key, entries in partial.items() for entry in entries}
        interrupted += bool(left_now - left_before)  # this writer, not an earlier one, left files behind
        left_before = left_now
        trial += 1

    # 3. A rerun completes every artifact the writers started, with the right content.
    rerun = open_store(url, env, str(tmp_path / "cache"))
    started = len(store._keys())
    for index in range(started):
        if not rerun.exists(key_of(index)):
            rerun.put(key_of(index), parts_of(index), step="crash", params={"index": index})
    assert {key_of(index) for index in range(started)} == set(store._keys())
    assert all(store.get(key_of(index))["info"]["index"] == index for index in range(started))
    final = store.verify(quarantine=False)
    assert final.ok and len(final.valid) == started

    # 4. gc removes every leftover; the artifacts stay intact.
    collected = store.gc(older_than=0)
    assert leftovers(store) == {}
    assert store.verify(quarantine=False).ok

    line = (f"crash trials ({backend}): {trial} writers SIGKILLed at random moments of a put "
            f"(within {window * 1000:.0f} ms of its first write, one put's writing time here), {interrupted} left a "
            f"half-written artifact, none visible; {started} artifacts verified after the rerun; gc removed "
            f"{collected.files} leftover files")
    summary.append(line)
    record_property(f"crash_trials_{backend}", trial)
    print(line)
    # The kills must land inside puts, or the test proves nothing.
    assert interrupted >= needed, line


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_processes_racing_to_put_one_key_end_with_one_valid_artifact(
    backend, request, tmp_path, writer_context, summary
):
    url, env = store_and_env(backend, request, tmp_path)
    store = ArtifactStore(url, cache_dir=tmp_path / "reader-cache")
    racers, rounds, most_racing = 4, 2, 0
    for round_ in range(rounds):
        index = 1000 + round_
        barrier, results = writer_context.Barrier(racers), writer_context.Queue()
        writers = [writer_context.Process(target=put_same_key,
                                          args=(url, env, str(tmp_path / "cache"), barrier, results, index))
                   for _ in range(racers)]
        for writer in writers:
            writer.start()
        outcomes = [results.get(timeout=120) for _ in writers]
        for writer in writers:
            writer.join(30)
        assert [outcome for outcome in outcomes if outcome[0] == "error"] == []
        assert len({digest for _, digest in outcomes}) == 1, "every writer returned the same artifact"
        assert store.ref(key_of(index)).digest == outcomes[0][1]
        assert store.verify([key_of(index)], quarantine=False).ok
        most_racing = max(most_racing, sum(raced for raced, _ in outcomes))
    assert leftovers(store) == {}, "losing writers removed their own parts"
    line = (f"concurrent puts ({backend}): {rounds} rounds of {racers} processes on one key, up to {most_racing} "
            f"writing at once; one valid artifact each, no errors")
    summary.append(line)
    assert most_racing >= 2, line
