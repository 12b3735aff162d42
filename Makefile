# The two commands of the README: `make daily` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: daily test install up down clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Headwater needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

daily: $(STAMP)  ## run the daily pipeline on the bundled example
	$(BIN)/python -m flows.daily

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest

up: $(STAMP)
	$(BIN)/headwater up

down: $(STAMP)
	$(BIN)/headwater down

clean:
	-$(BIN)/headwater down
	rm -rf .headwater
