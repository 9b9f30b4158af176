"""The main job as a user runs it (a process with its own Prefect home), and the flow on S3."""

import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flows.benchmark import benchmark
from tests.conftest import files_under, read_bucket, secret_leaks
from tests.pipeline.helpers import own_home_env, run_flow, small_config, timings
from tint_core.store import ArtifactStore

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def run_main_job(config_path: Path, home: Path, extra_env: dict[str, str] | None = None, *,
                 migrated: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
    """``tint benchmark CONFIG`` (as ``python -m flows.cli``) in a Prefect home of its own (its own ephemeral server),
    as a user would; ``migrated=False``: a home as the first run finds it (``own_home_env``)."""
    env = own_home_env(home, migrated=migrated, **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "flows.cli", "benchmark", str(config_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


RECORDED = re.compile(r"(\d+) task runs recorded by Prefect \((\d+) cached\) in (\d+) s")


def recorded(stdout: str) -> tuple[int, int]:
    found = RECORDED.search(stdout)
    assert found, stdout
    return int(found.group(1)), int(found.group(2))


def test_the_main_job_on_s3_records_every_task_run_leaks_no_secret_and_a_fresh_prefect_home_shares_its_cache(
        prefect_server, s3_url, s3_env, tmp_path):  # fmt: skip
    # Two methods: every image moto serves goes through one lock, and real_pool alone would double the reads.
    config = small_config(s3_url, methods=["supports_only", "tint"])
    config.to_yaml(tmp_path / "config.yaml")
    secret = secrets.token_urlsafe(24)  # moto accepts any key: plant one, then look for it everywhere
    # A first run, as the README's: a Prefect home its server has to make and migrate.
    first = run_main_job(tmp_path / "config.yaml", tmp_path / "home", s3_env | {"AWS_SECRET_ACCESS_KEY": secret},
                         migrated=False)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    total, cached = recorded(first.stdout)
    assert total == 26 and cached == 0
    assert "| student: tint |" in first.stdout and "random weights" in first.stdout
    timings.append(f"main job on S3 (moto), a fresh process and home: {RECORDED.search(first.stdout).group(0)}")
    # Every task run was recorded before the process exited: its server is gone, its database says so.
    with sqlite3.connect(tmp_path / "home" / "prefect.db") as db:
        states = dict(db.execute("SELECT state_type, COUNT(*) FROM task_run GROUP BY state_type").fetchall())
        flows = db.execute("SELECT state_type FROM flow_run").fetchall()
    assert states == {"COMPLETED": total} and flows == [("COMPLETED",)]

    objects = read_bucket(s3_url)
    prefix = s3_url[len("s3://") :].split("/", 1)[1]
    manifests = {key.split("/")[2] for key in objects if key.endswith("/manifest.json") and "/artifacts/" in key}
    # 26 tasks, several of which write more than one artifact (a unit writes each of its classes)
    assert manifests == {manifest.key for manifest in ArtifactStore(s3_url).list()} and len(manifests) == 34
    for part in ("prefect-records/", "datasets/digits-16-first20/novel/", "logs/benchmark-runs/", "logs/benchmark-history/",
                 "logs/reports/"):  # fmt: skip
        assert any(key.startswith(f"{prefix}/{part}") for key in objects), part

    # The terminal, the Prefect home (database, logs, settings), every object written (artifacts, records, run
    # record, history, the HTML report): the secret is in none of them.
    outputs = {"stdout": first.stdout.encode(), "stderr": first.stderr.encode()} | files_under(tmp_path / "home")
    assert any(name.endswith("prefect.db") for name in outputs) and any(key.endswith(".html") for key in objects)
    assert secret_leaks(secret, outputs | objects) == []

    # Another machine, another Prefect server: nothing recomputed, every step Cached from the bucket's records.
    again = run_flow(benchmark, config=config, label="the same on S3 from another Prefect server")
    assert again.all_cached and len(again.task_runs) == total
