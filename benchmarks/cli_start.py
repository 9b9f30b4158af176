"""How long the command line takes to answer: ``tint --help`` and two commands' help against ``prefect --help``.

    python benchmarks/cli_start.py [--repeats 5] [--checkout PATH]

Each command runs ``--repeats`` times in a fresh interpreter (as a person types it), after one unmeasured run that
warms the file cache; the median wall time is reported with its ratio to ``prefect --help`` measured in the same run.
``--checkout`` times another checkout's ``tint`` (e.g. an older commit in a ``git worktree``) with this environment,
so that a before/after comparison shares the machine and the packages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TINT = "import sys; from flows.cli import main; sys.argv[0] = 'tint'; main()"
COMMANDS = (("tint --help", ["--help"]), ("tint benchmark --help", ["benchmark", "--help"]),
            ("tint report --help", ["report", "--help"]))  # fmt: skip


def seconds(argv: list[str], cwd: Path, repeats: int) -> float:
    """Median wall seconds of ``argv`` over ``repeats`` runs (one warm-up run first); the command must succeed."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    times = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measured runs per command (median reported)")
    parser.add_argument("--checkout", type=Path, default=Path(__file__).parents[1], help="the tint checkout to time")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    prefect = seconds([str(Path(sys.executable).parent / "prefect"), "--help"], checkout, args.repeats)
    print(f"checkout {checkout}, median of {args.repeats} runs\n")
    print("| command | seconds | ratio to `prefect --help` |\n|---|---|---|")
    for label, argv in COMMANDS:
        value = seconds([sys.executable, "-c", TINT, *argv], checkout, args.repeats)
        print(f"| `{label}` | {value:.2f} | {value / prefect:.2f} |")
    print(f"| `prefect --help` | {prefect:.2f} | 1.00 |")


if __name__ == "__main__":
    main()
