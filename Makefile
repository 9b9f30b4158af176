# Two entry points for a new machine: `make demo` (main job on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

# torch/torchvision are named first and exactly so that pip takes the pair served from local disk (not byte-compiled
# by pip: uv does it below). The rest comes through uv, which leaves that torch in place (the project's range admits
# it): it downloads and installs in parallel, 29 s against pip's 149 s for the same set here. Everything is
# byte-compiled ahead, uv's --compile-bytecode covering all of site-packages and compileall the project's own modules
# (the install is editable): where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, Python never writes
# what it compiles, and every process would compile every module it imports again (measured: importing the flows and
# the model libraries, 31-40 CPU-s without bytecode against 14-17 with it).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip uv
	$(BIN)/pip install -q --no-compile "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e ".[dev]"
	$(BIN)/python -m compileall -q tint_core tasks flows tests benchmarks
	touch $@

# The main job: the benchmark flow on embedded defaults (digits, tiny backbone, local store, ephemeral Prefect).
demo: setup
	$(BIN)/tint demo

# Test files run side by side on every core (a file's tests in order, on one worker): most of the suite waits on
# servers, workers and subprocesses, so two cores finish it far sooner than one process would. Files are handed out
# longest first (tests/conftest.py), not by how many tests they hold.
test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/python benchmarks/specialize.py --backbone tiny --classes 2 --shots 4

clean:
	rm -rf $(VENV) .pytest_cache
