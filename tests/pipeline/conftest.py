"""Fixtures for the pipeline: a real Prefect server (its test harness, one per session)."""

import os

import pytest
from PIL import Image

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


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness: a real API server on a temporary sqlite database, for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
