"""The main job on a store whose disk fills up: it fails with one line naming the store and the lack of space, leaves
nothing partial visible, and once space is freed a rerun completes and reuses what was finished.

The disk is a tmpfs made for the test (mounting needs root or CAP_SYS_ADMIN, as on the CI machines)."""

import subprocess

import pytest

from flows.benchmark import benchmark
from tests.pipeline.helpers import run_flow, small_config, timings
from tests.pipeline.test_main_job import run_main_job
from tint_core.store import ArtifactStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

# The small benchmark of TINT against the supports only: its 200 digits take a page each (0.8 MiB on a tmpfs), then
# about 4.4 MiB of artifacts, records and logs. The small disk holds the digits and part of the artifacts, the freed
# one everything.
SMALL, FREED = "3m", "64m"


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of SMALL bytes, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_fails_the_run_in_one_line_and_a_rerun_after_freeing_space_reuses_the_finished_steps(small_disk,
                                                                                                       tmp_path):  # fmt: skip
    store = str(small_disk / "store")
    config = small_config(store, methods=["supports_only", "tint"])
    config.to_yaml(tmp_path / "config.yaml")
    full = run_main_job(tmp_path / "config.yaml", tmp_path / "home")
    assert full.returncode == 1, full.stdout[-3000:] + full.stderr[-3000:]
    said = [line for line in full.stdout.splitlines() + full.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and f"store {store} is out of space" in said[0], said
    # Nothing partial visible: every artifact the store lists is whole.
    opened = ArtifactStore(store)
    finished = {manifest.key: manifest.created for manifest in opened.list()}
    assert finished and opened.verify(list(finished)).valid == list(finished)

    subprocess.run(["mount", "-o", f"remount,size={FREED}", str(small_disk)], check=True)  # space freed
    # The rerun in this process (the command's own way of running was shown by the failed run).
    again = run_flow(benchmark, config=config)  # raises unless it completes
    total, cached = len(again.task_runs), sum(run.state.name == "Cached" for run in again.task_runs)
    after = {manifest.key: manifest.created for manifest in opened.list()}
    assert {key: after[key] for key in finished} == finished  # what was finished is reused, not remade
    # 1 dataset + 2 episodes + 2 backbones + per episode (1 unit, 1 image set, the real pool the quality measures
    # against, 1 teacher score, 1 label, 1 quality, 2 students, 2 scores) + 1 aggregate
    assert total == 1 + 2 + 2 + 2 * 10 + 1 and 0 < cached < total and opened.verify(list(after)).valid == list(after)
    timings.append(f"a full disk ({SMALL}): failed after {len(finished)} artifacts with {said[0]!r}; rerun with "
                   f"{FREED}: {cached} of {total} steps cached")  # fmt: skip
