"""Fixtures for the pipeline: a real Prefect server (its test harness, one per session)."""

import os

import pytest

from tests.pipeline.helpers import timings

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no "database is locked" telemetry noise


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness: a real API server on a temporary sqlite database, for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def pytest_terminal_summary(terminalreporter):
    if timings:
        terminalreporter.section("pipeline runs")
        for line in timings:
            terminalreporter.write_line(line)
