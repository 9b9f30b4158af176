"""Fixtures for the pipeline: a real Prefect server (its test harness, one per session)."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.pipeline.helpers import migrated_database
from tint_core.data import write_digits_dataset

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no "database is locked" telemetry noise
os.environ.setdefault("PREFECT_UI_ENABLED", "false")  # no browser opens the harness's UI; serving it costs ~5 s of CPU


@pytest.fixture
def support_folder(tmp_path):
    """Three classes of two digit images each, named like a user's folders, one of them a greyscale JPEG."""
    digits = write_digits_dataset(str(tmp_path / "digits"), size=16)
    folder = tmp_path / "supports"
    for name, digit in (("five", "5"), ("six", "6"), ("seven", "7")):
        (folder / name).mkdir(parents=True)
        for index, path in enumerate(digits.paths("novel", digit)[:2]):
            Image.open(path).convert("L").save(folder / name / f"{index}.{'jpg' if name == 'six' else 'png'}")
    return folder


# The session's server serves the flow runs the tests start and nothing else: no schedule, no deployment, no automation,
# and no test reads its event feed. Its services for those only cost CPU (measured: an idle server's 3.2% of a core
# fell to 1.9% without the periodic ones; a cached 44-task run cost it 4.9 CPU-s with the event persister, 3.7 without;
# the suite runs hundreds of runs on it). The task-run recorder, which writes what the tests read, stays on.
SESSION_SERVER_SERVICES_OFF = {
    f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false"
    for service in ("EVENT_PERSISTER", "TRIGGERS", "SCHEDULER", "LATE_RUNS", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
                    "FOREMAN", "REPOSSESSOR", "CLEANUP_RECONCILER")
}  # fmt: skip


def _folder_with_amigrated_database() -> str:
    """A new temporary folder holding the harness's database (its file name), already migrated, so that the harness's
    server does not migrate a new one (measured: a session of one test on the harness, 16 CPU-s instead of 22-26)."""
    folder = tempfile.mkdtemp(prefix="prefect-harness-")
    shutil.copyfile(migrated_database(), Path(folder) / "prefect-test.db")
    return folder


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness: a real API server on a temporary sqlite database, for the whole session."""
    from prefect.testing import utilities

    with pytest.MonkeyPatch.context() as patch:
        for name, value in SESSION_SERVER_SERVICES_OFF.items():
            patch.setenv(name, value)  # read by the harness's server process as it starts
        patch.setattr(utilities, "mkdtemp", _folder_with_amigrated_database)  # where the harness puts its database
        with utilities.prefect_test_harness(server_startup_timeout=60):
            yield
