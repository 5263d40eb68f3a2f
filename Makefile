# Two commands do all the set-up on a fresh machine (Python 3.11): `make demo` and `make test`.
# Both create .venv/ and install the plugin into it when that is missing; a second run installs nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.dmtnet-installed

.PHONY: demo test test-fast lint format complexity benchmark install

install: $(STAMP)

# basicsr 1.4.2 is an sdist whose build imports torch: --no-build-isolation reuses the torch installed first
# instead of downloading a second copy into a throwaway build environment.
# A regular (not editable) install: only that puts dmtnet_arch.pth, the start-up hook, into site-packages.
# It reinstalls when a source file changes, so the installed copy never lags behind this checkout.
SOURCES := setup.py constraints.txt dmtnet_arch.pth dmtnet_arch_startup.py $(shell find dmtnet_arch -name '*.py' -o -name '*.pth')

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.14.1 torchvision==0.29.1 setuptools wheel
	$(PIP) --no-build-isolation basicsr==1.4.2
	$(PIP) --no-build-isolation '.[dev,export,video]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

# the edit loop: every test not marked slow (see pyproject.toml); CI runs `make test`, all of them
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

complexity: $(STAMP)
	$(PY) scripts/complexity.py

benchmark: $(STAMP)
	$(PY) scripts/benchmark.py --variants TSB --full-size-variants TSB --threads 2 --conv-reference
