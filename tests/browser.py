"""Headless Chromium for the tests that look at pages as a person does: Debian's package driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it where apt can
ARTIFACTS = Path(__file__).parents[1] / "outputs" / "test-artifacts"  # screenshots kept after the run (not committed)
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]  # fmt: skip


def require_chromium(purpose: str):
    """Playwright's sync API, or a skip that says why: chromium could not be installed here."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium could not be installed here ({CHROMIUM} missing): {purpose} needs a real browser")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return pytest.importorskip("playwright.sync_api")
