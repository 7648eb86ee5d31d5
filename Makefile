# Two commands on a fresh machine: `make demo` and `make test` (each sets itself up).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format clean device-deps constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m jobs.demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# What benchmarks/device_checks.sh needs on a GPU machine that has PyTorch but no registry:
# the library's two pure-Python imports beyond it (PyYAML falls back to Python without libyaml).
device-deps: $(STAMP)
	rm -rf .device_deps
	$(PY) -m pip install --quiet --no-deps --target .device_deps tqdm pyyaml

# After upgrading .venv on purpose (and `make test` passing on it): pin what it now holds.
constraints: $(STAMP)
	{ sed -n '/^#/p' constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf runs .pytest_cache .ruff_cache .device_deps
