# Browser assets of the SMART pages and Debian's chromium for their browser tests.
# Included from the top-level Makefile:
#   include ui/ui.mk
#   run: ... ui-assets        test: ... ui-assets chromium
#
# LHC-Forms: the prebuilt files of the npm package (no npm install, no build), fetched with
# `npm pack` and checked against a pinned SHA-256 exactly as the Dockerfile does. Chart.js, its
# date adapter and annotation plugin, and axe-core (accessibility checks in the browser tests):
# `npm ci` from ui/package-lock.json. Everything is copied into mit_fhir/ui/static/vendor
# (gitignored), which the pages serve from their own origin.
# Chromium: Debian's package (never Playwright's own browser download), installed with apt-get
# when /usr/bin/chromium is missing.

UI_DIR := ui
UI_VENDOR := mit_fhir/ui/static/vendor
UI_BUILD := build/ui-assets
LFORMS_VERSION := 40.1.3
LFORMS_SHA256 := 288cff4360e8a90a44e994a01422d2cf970170000ce915b5739ccc383097edd9
UI_STAMP := $(UI_VENDOR)/.installed-lforms-$(LFORMS_VERSION)
CHROMIUM ?= /usr/bin/chromium
NPM ?= npm

.PHONY: ui-assets chromium ui-clean

ui-assets: $(UI_STAMP)

$(UI_STAMP): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json $(UI_DIR)/ui.mk
	$(NPM) ci --prefix $(UI_DIR) --prefer-offline --no-audit --no-fund --loglevel=error
	rm -rf $(UI_BUILD) $(UI_VENDOR)
	mkdir -p $(UI_BUILD) $(UI_VENDOR)/lforms $(UI_VENDOR)/chart.js \
	  $(UI_VENDOR)/chartjs-adapter-date-fns $(UI_VENDOR)/chartjs-plugin-annotation $(UI_VENDOR)/axe-core
	cd $(UI_BUILD) && $(NPM) pack lforms@$(LFORMS_VERSION) --silent > /dev/null \
	  && printf '%s  %s\n' $(LFORMS_SHA256) lforms-$(LFORMS_VERSION).tgz | sha256sum -c --quiet - \
	  && tar -xzf lforms-$(LFORMS_VERSION).tgz
	cp -r $(UI_BUILD)/package/dist/lforms/webcomponent $(UI_BUILD)/package/dist/lforms/fhir \
	  $(UI_BUILD)/package/dist/lforms/LICENSE.md $(UI_VENDOR)/lforms/
	find $(UI_VENDOR) -name '*.map' -delete
	cp $(UI_DIR)/node_modules/chart.js/dist/chart.umd.min.js $(UI_DIR)/node_modules/chart.js/LICENSE.md \
	  $(UI_VENDOR)/chart.js/
	cp $(UI_DIR)/node_modules/chartjs-adapter-date-fns/dist/chartjs-adapter-date-fns.bundle.min.js \
	  $(UI_DIR)/node_modules/chartjs-adapter-date-fns/LICENSE.md $(UI_VENDOR)/chartjs-adapter-date-fns/
	cp $(UI_DIR)/node_modules/chartjs-plugin-annotation/dist/chartjs-plugin-annotation.min.js \
	  $(UI_DIR)/node_modules/chartjs-plugin-annotation/LICENSE.md $(UI_VENDOR)/chartjs-plugin-annotation/
	cp $(UI_DIR)/node_modules/axe-core/axe.min.js $(UI_DIR)/node_modules/axe-core/LICENSE \
	  $(UI_VENDOR)/axe-core/
	rm -rf $(UI_BUILD)
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
