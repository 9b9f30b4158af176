# Two entry points for a new machine: `make demo` (main job on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

# torch/torchvision are named first and exactly so that pip takes the pair served from local disk; not byte-compiled
# ahead (13 s of one core for 2,700 files, most never imported: Python compiles what is imported, once). The rest
# comes through uv, which leaves that torch in place (the project's range admits it): it downloads and installs in
# parallel, 29 s against pip's 149 s for the same set here.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip uv
	$(BIN)/pip install -q --no-compile "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e ".[dev]"
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
