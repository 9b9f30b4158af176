"""The progress callback long-running library steps accept."""

from collections.abc import Callable

# (stage, done, total): called at coarse intervals by long-running steps.
ProgressFn = Callable[[str, int, int], None]
