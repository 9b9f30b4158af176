"""Figures the tests measure (run times, counts, ratios), by section, printed at the end of the session.

Under pytest-xdist the tests run in worker processes: each worker hands its figures to the controller when it ends
(``tests/conftest.py``), which prints them all."""

from collections import defaultdict

FIGURES: defaultdict[str, list[str]] = defaultdict(list)
