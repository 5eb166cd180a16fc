# mit-fhir: `make run` installs the runtime only and serves the catalogue on http://127.0.0.1:8080;
# `make test` adds the test tools and runs the suite, once per database in TEST_DATABASES
# (SQLite, then PostgreSQL at MIT_FHIR_TEST_POSTGRES_URL, default
# postgresql+psycopg://root@127.0.0.1:5432/test; `make test TEST_DATABASES=sqlite`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
TEST_DATABASES ?= sqlite postgresql

.PHONY: install install-test run test lint check bench bench-deps clean

include tests/servers/servers.mk
include tests/deploy/deploy.mk
include ui/ui.mk

# Two steps: the runtime alone (`make install`, `make run`), then the test and audit tools on
# top of it (`make test`, `lint`, `bench`: playwright, kubernetes-validate... about 450 MB more).
$(RUNTIME_STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(RUNTIME_STAMP)

install-test: $(STAMP)

# Development mode: no authentication, so the service answers (and binds) on loopback only.
run: $(RUNTIME_STAMP) ui-assets
	MIT_FHIR_AUTH=none $(BIN)/mit-fhir demo load
	MIT_FHIR_AUTH=none $(BIN)/mit-fhir serve --host $(HOST) --port $(PORT)

test: $(STAMP) servers container-deps ui-assets chromium bench-deps
ifneq ($(filter postgresql,$(TEST_DATABASES)),)
	$(BIN)/python tests/check_postgres.py
endif
	$(BIN)/ruff check mit_fhir tests benchmarks
	$(BIN)/mypy mit_fhir
	$(BIN)/lint-imports
	@failed=""; for db in $(TEST_DATABASES); do \
		echo "== make test: the suite on $$db"; \
		MIT_FHIR_TEST_DATABASE=$$db $(BIN)/python -m pytest || failed="$$failed $$db"; \
		$(BIN)/python -m tests.phi_scan build/logs/$$db || failed="$$failed $$db(patient-data-in-logs)"; \
	done; \
	if [ -n "$$failed" ]; then echo "== make test: FAILED on:$$failed"; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check mit_fhir tests benchmarks
	$(BIN)/mypy mit_fhir
	$(BIN)/lint-imports

# The fast inner loop (under a minute): lint, types, the layer contracts (.importlinter) and the
# unit tests of the psychometrics layer, which need no server, browser or database.
check: $(STAMP)
	$(BIN)/ruff check mit_fhir tests benchmarks
	$(BIN)/mypy mit_fhir
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/psychometrics

# wrk, the load generator of the HTTP benchmark (Debian package), when missing.
bench-deps:
	@command -v wrk > /dev/null || { set -e; apt-get -o DPkg::Lock::Timeout=600 update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
	    --no-install-recommends wrk; }

bench: $(STAMP) servers bench-deps
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build instance .pytest_cache .mypy_cache .ruff_cache
