# mowm_ros: `make test` sets everything up on a fresh machine and runs the test suite.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.mowm-setup-stamp
PYTEST_ARGS ?=

.PHONY: setup test lint demo clean

setup: $(STAMP)

$(STAMP): setup.py setup.cfg constraints.txt scripts/setup.sh package.xml
	VENV=$(VENV) PYTHON=$(PYTHON) bash scripts/setup.sh
	touch $(STAMP)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/mowm demo --out out/demo

lint: setup
	$(VENV)/bin/python -m pytest -m linter

clean:
	rm -rf build install log .pytest_cache out
