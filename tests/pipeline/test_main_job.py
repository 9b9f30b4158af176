"""The main job as a user runs it (a process with its own Prefect home), and the flow on S3."""

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from flows.benchmark import benchmark
from tests.pipeline.helpers import run_flow, small_config, timings
from tint_core.store import ArtifactStore

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def run_main_job(config_path: Path, home: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``tint benchmark CONFIG`` (as ``python -m flows.cli``) in a fresh Prefect home (its own ephemeral server), as a
    user would."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "flows.cli", "benchmark", str(config_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def recorded(stdout: str) -> tuple[int, int]:
    found = re.search(r"(\d+) task runs recorded by Prefect \((\d+) cached\) in (\d+) s", stdout)
    assert found, stdout
    return int(found.group(1)), int(found.group(2))


def test_every_task_run_of_the_main_job_is_recorded_before_it_exits(tmp_path):
    config = small_config(str(tmp_path / "store"))
    config.to_yaml(tmp_path / "config.yaml")
    result = run_main_job(tmp_path / "config.yaml", tmp_path / "home")
    assert result.returncode == 0, result.stderr[-3000:]
    total, cached = recorded(result.stdout)
    assert total == 44 and cached == 0
    assert "| student: tint |" in result.stdout and "random weights" in result.stdout
    # The process is gone: read what its server wrote to the Prefect database.
    with sqlite3.connect(tmp_path / "home" / "prefect.db") as db:
        states = dict(db.execute("SELECT state_type, COUNT(*) FROM task_run GROUP BY state_type").fetchall())
        flows = db.execute("SELECT state_type FROM flow_run").fetchall()
    assert states == {"COMPLETED": 44} and flows == [("COMPLETED",)]
    timings.append(f"main job in a fresh process: {result.stdout.splitlines()[-8:][0]}")


def test_the_flow_on_s3_shares_its_cache_with_a_fresh_prefect_home(prefect_server, s3_url, s3_env, tmp_path):
    # Two methods: every image moto serves goes through one lock, and real_pool alone would double the reads.
    config = small_config(s3_url, methods=["supports_only", "tint"])
    first = run_flow(benchmark, config=config, label="on S3 (moto)")
    assert not first.all_cached
    bucket, prefix = s3_url[len("s3://") :].split("/", 1)
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page["Contents"]]
    manifests = {key.split("/")[2] for key in keys if key.endswith("/manifest.json") and "/artifacts/" in key}
    # 26 tasks, several of which write more than one artifact (a unit writes each of its classes)
    assert manifests == {manifest.key for manifest in ArtifactStore(s3_url).list()} and len(manifests) == 34
    assert any(f"{prefix}/prefect-records/" in key for key in keys)
    assert any(f"{prefix}/datasets/digits-16/novel/" in key for key in keys)

    config.to_yaml(tmp_path / "config.yaml")
    again = run_main_job(tmp_path / "config.yaml", tmp_path / "fresh-home", s3_env)
    assert again.returncode == 0, again.stderr[-3000:]
    # Nothing recomputed: every step Cached from the bucket's records.
    assert recorded(again.stdout) == (len(first.task_runs),) * 2
