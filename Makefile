# Two commands: `make reproduce` (whole pipeline) and `make test` (test suite).
# Both create .venv when it is missing and (re)install the project when
# pyproject.toml or requirements.lock changed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ghuda-installed
CORES ?= all
PYTEST_ARGS ?=
# Rules and tests call `ghuda`, `dvc` and `snakemake` by name: the project's .venv comes first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: reproduce test lint venv lock clean-venv slurm-check

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
		-c requirements.lock -e '.[dev]'
	@# pip byte-compiles on one core, compileall on every core (the install column of
	@# benchmarks/results/reproduce_time.md). Like pip, it leaves a file that does not compile
	@# under this Python (torch ships Python 3.12-only test helpers) as a source file.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > $(VENV)/compileall.log 2>&1 \
		|| echo "make venv: files that do not compile under this Python stay source files," \
			"as pip leaves them: $(VENV)/compileall.log"
	@touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

# A one-node SLURM cluster on this machine runs configs/ci.yaml through the slurm profile
# (root or sudo; installs slurmctld, slurmd, munge with apt-get when missing). Not in CI.
slurm-check: $(STAMP)
	VENV=$(VENV) bash workflow/scripts/slurm_check.sh

# Re-pin the transitive dependency set from the current .venv.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable --exclude ghuda > requirements.lock

clean-venv:
	rm -rf $(VENV)
