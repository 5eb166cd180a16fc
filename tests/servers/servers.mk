# Real FHIR R4 servers for the sync tests (tests/servers/README.md).
# Included from the top-level Makefile after VENV, BIN and STAMP are defined:
#   include tests/servers/servers.mk
#   test: $(STAMP) servers
#
# Medplum: `npm ci` from the committed lockfile (exact versions, integrity hashes). The `node`
# package's preinstall script fetches the Node 22 binary package from the npm registry; the
# "allowScripts" entry in package.json lets npm 11+ run it. SEKMET: pip, pinned, with the project
# constraints. Each half has its own stamp, so `make clean` (which removes the venv) reinstalls
# SEKMET without re-running npm, and a changed lockfile re-runs npm.

SERVERS_DIR := tests/servers
MEDPLUM_DIR := $(SERVERS_DIR)/medplum
MEDPLUM_STAMP := $(MEDPLUM_DIR)/node_modules/.mit-fhir-installed
SEKMET_VERSION := 0.1.1
SEKMET_STAMP := $(VENV)/.sekmet-$(SEKMET_VERSION)-installed
NPM ?= npm

.PHONY: servers servers-clean

servers: $(MEDPLUM_STAMP) $(SEKMET_STAMP)

$(MEDPLUM_STAMP): $(MEDPLUM_DIR)/package.json $(MEDPLUM_DIR)/package-lock.json
	$(NPM) ci --prefix $(MEDPLUM_DIR) --prefer-offline --no-audit --no-fund --loglevel=error
	$(MEDPLUM_DIR)/node_modules/.bin/node --version
	touch $@

$(SEKMET_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt sekmet-fhir==$(SEKMET_VERSION)
	$(BIN)/sekmet --help > /dev/null
	touch $@

servers-clean:
	rm -rf $(MEDPLUM_DIR)/node_modules
	rm -f $(VENV)/.sekmet-*-installed
