# minibull: `make lab` opens the course, `make test` checks the package and every notebook.
# Both create .venv on first use (and reinstall after pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Extra flags: `make lab LAB_ARGS='--port 8899'`, `make test PYTEST_ARGS='-x -k retry'`.
LAB_ARGS ?=
PYTEST_ARGS ?=

# JupyterLab refuses to start as root unless told it may.
ifeq ($(shell id -u 2>/dev/null),0)
ROOT_FLAG := --allow-root
endif

# The notebooks folder, if there is one (pytest stops on a path that does not exist).
NOTEBOOKS := $(wildcard notebooks)

.PHONY: venv lab test lint clean bench interop

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[course,test,dev,interop]'
	touch $@

# Notebook 10's BullMQ peer (BullMQ for Python) into a venv made before make venv had it.
interop: $(STAMP)
	$(BIN)/python -m pip install -e '.[interop]'

# Opens notebook 00 with notebooks/ as the file browser's root; lab-settings/ makes Markdown
# files (the learning path, notebooks/README.md) open rendered.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_quickstart.ipynb --LabApp.app_settings_dir=$(CURDIR)/lab-settings $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/pytest tests $(NOTEBOOKS) --nbval --nbval-sanitize-with nbval_sanitize.cfg $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check minibull tests
	$(BIN)/ruff format --check minibull tests

# Benchmarks against the peer libraries, in a venv of their own (bench/.venv); writes
# bench/results/ and the README's Performance section. `make bench BENCH_ARGS=--quick`.
BENCH_ARGS ?=
BENCH_BIN := bench/.venv/bin
BENCH_STAMP := bench/.venv/.installed

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	test -x $(BENCH_BIN)/python || $(PYTHON) -m venv bench/.venv
	$(BENCH_BIN)/python -m pip install -e '.[fast]' -r bench/requirements.txt
	# hiredis is there for minibull_hiredis only: every other process hides it
	# (bench/pure_parser), so each library gets redis-py's pure-Python parser.
	touch $@

bench: $(BENCH_STAMP)
	$(BENCH_BIN)/python bench/run.py $(BENCH_ARGS)

# Keeps .venv; `rm -rf .venv` to rebuild it from scratch.
clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name .ipynb_checkpoints -type d -exec rm -rf {} +
