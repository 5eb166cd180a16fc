# mit-fhir: `make run` serves the catalogue on http://127.0.0.1:8080; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run test lint bench clean

include tests/servers/servers.mk

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mit-fhir serve --host $(HOST) --port $(PORT)

test: $(STAMP) servers
	$(BIN)/ruff check mit_fhir tests benchmarks
	$(BIN)/mypy mit_fhir
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check mit_fhir tests benchmarks
	$(BIN)/mypy mit_fhir

bench: $(STAMP) servers
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build instance .pytest_cache .mypy_cache .ruff_cache
