"""Soak: many small benchmark runs against one Prefect server and one store on loopback, as a week of scheduled
reruns would be. The server's and the flow process's memory and open files are recorded after every run; their
growth must stay bounded and no run may fail. The figures and a plot are written for docs/reliability.md."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS
from tests.deployments.conftest import BIN, REPO, _stop, _wait_healthy
from tests.pipeline.helpers import own_home_env, timings
from tests.ports import free_port
from tint_core.store import ArtifactStore

pytestmark = pytest.mark.slow

UNCACHED, CACHED = 20, 100
# Bounds, measured over the cached runs after the first ten (by then every import, model and connection pool is
# warm): a leak of a few hundred kB per run would show as tens of MB; what a busy process's allocator legitimately
# keeps fits well within them.
MEMORY_GROWTH_MB = {"server": 60.0, "flow process": 60.0}
OPEN_FILES_GROWTH = 10


def _plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, files) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    runs = [sample["run"] for sample in samples]
    for who in ("server", "flow process"):
        memory.plot(runs, [sample[who][0] for sample in samples], label=who)
        files.plot(runs, [sample[who][1] for sample in samples], label=who)
    for axis in (memory, files):
        axis.axvline(UNCACHED + 0.5, color="grey", linestyle=":")
        axis.legend()
    memory.set_ylabel("resident memory (MB)")
    files.set_ylabel("open files")
    files.set_xlabel(f"run (1–{UNCACHED} uncached, then {CACHED} cached)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


@pytest.mark.timeout(1200)
def test_a_hundred_and_twenty_runs_on_one_server_and_store_fail_none_and_leak_nothing(tmp_path):
    home, port = tmp_path / "home", free_port()
    env = own_home_env(home)
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    api_url, store, measured = f"http://127.0.0.1:{port}/api", str(tmp_path / "store"), tmp_path / "samples.json"
    started = time.perf_counter()
    try:
        _wait_healthy(api_url, server)
        runs = subprocess.Popen([sys.executable, "-m", "tests.pipeline.soak_runs", store, str(server.pid),
                                 str(UNCACHED), str(CACHED), str(measured)], cwd=REPO,
                                env=env | {"PREFECT_API_URL": api_url},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            _, errors = runs.communicate(timeout=1000)
        finally:
            _stop(runs)
    finally:
        _stop(server)
    seconds = time.perf_counter() - started
    samples = json.loads(measured.read_text()) if measured.exists() else []
    assert runs.returncode == 0 and len(samples) == UNCACHED + CACHED, (len(samples), errors[-3000:])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _plot(samples, ARTIFACTS / "soak.png")

    steady = samples[UNCACHED + 10 :]
    growth = {who: (steady[-1][who][0] - steady[0][who][0], steady[-1][who][1] - steady[0][who][1])
              for who in MEMORY_GROWTH_MB}  # fmt: skip
    opened = ArtifactStore(store)
    keys = [manifest.key for manifest in opened.list()]
    assert opened.verify(keys).valid == keys
    timings.append(f"soak: {UNCACHED} uncached + {CACHED} cached runs in {seconds:.0f} s; "
                   + "; ".join(f"{who} {samples[0][who][0]:.0f} → {samples[-1][who][0]:.0f} MB, "
                               f"{samples[0][who][1]} → {samples[-1][who][1]} open files" for who in growth)
                   + f" (steady growth: {growth}); plot {ARTIFACTS / 'soak.png'}")  # fmt: skip
    for who, (memory, files) in growth.items():
        assert memory < MEMORY_GROWTH_MB[who] and files <= OPEN_FILES_GROWTH, (who, memory, files)
