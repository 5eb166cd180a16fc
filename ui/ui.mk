# Browser assets of the SMART pages and Debian's chromium for their browser tests.
# Included from the top-level Makefile:
#   include ui/ui.mk
#   run: ... ui-assets        test: ... ui-assets chromium
#
# ui/fetch-assets.sh (shared with the Dockerfile's assets stage) fetches LHC-Forms' prebuilt
# files (checked by SHA-256) and `npm ci`s Chart.js and its plugins into mit_fhir/ui/static/vendor
# (gitignored), which the pages serve at /app/vendor/. axe-core, for the browser tests only, stays
# in ui/node_modules (tests/ui/test_browser.py reads it there): the pages never serve it.
# Chromium: Debian's package (never Playwright's own browser download), installed with apt-get
# when /usr/bin/chromium is missing.

UI_DIR := ui
UI_VENDOR := mit_fhir/ui/static/vendor
UI_STAMP := $(UI_VENDOR)/.installed
CHROMIUM ?= /usr/bin/chromium
NPM ?= npm

.PHONY: ui-assets chromium ui-clean

ui-assets: $(UI_STAMP)

$(UI_STAMP): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json $(UI_DIR)/fetch-assets.sh
	NPM=$(NPM) sh $(UI_DIR)/fetch-assets.sh $(UI_DIR) $(UI_VENDOR)
	touch $@

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  set -e; apt-get -o DPkg::Lock::Timeout=600 update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
	    --no-install-recommends chromium; \
	fi
	@$(CHROMIUM) --version

ui-clean:
	rm -rf $(UI_VENDOR) $(UI_DIR)/node_modules
