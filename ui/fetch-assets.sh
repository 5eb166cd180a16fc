#!/bin/sh
# The SMART pages' browser files, for `make ui-assets` and the Dockerfile's assets stage alike.
# Usage: sh ui/fetch-assets.sh UI_DIR OUT_DIR
#
# LHC-Forms: the prebuilt files of the npm package (no build), fetched with `npm pack` and
# checked against a pinned SHA-256. Chart.js, its date adapter and annotation plugin: `npm ci`
# from UI_DIR/package-lock.json. They land in OUT_DIR, which the service serves at /app/vendor/
# (MIT_FHIR_UI_ASSETS_DIR). axe-core, which the lock file also installs, is the browser tests'
# (they read it from UI_DIR/node_modules): it is never copied into OUT_DIR, so it never ships.
set -eu
UI_DIR=$1
OUT=$2
LFORMS_VERSION=40.1.3
LFORMS_SHA256=288cff4360e8a90a44e994a01422d2cf970170000ce915b5739ccc383097edd9
NPM=${NPM:-npm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$NPM ci --prefix "$UI_DIR" --prefer-offline --no-audit --no-fund --loglevel=error
(cd "$work" && $NPM pack "lforms@$LFORMS_VERSION" --silent > /dev/null \
  && printf '%s  %s\n' "$LFORMS_SHA256" "lforms-$LFORMS_VERSION.tgz" | sha256sum -c --quiet - \
  && tar -xzf "lforms-$LFORMS_VERSION.tgz")
rm -rf "$OUT"
mkdir -p "$OUT/lforms" "$OUT/chart.js" "$OUT/chartjs-adapter-date-fns" \
  "$OUT/chartjs-plugin-annotation"
cp -r "$work/package/dist/lforms/webcomponent" "$work/package/dist/lforms/fhir" \
  "$work/package/dist/lforms/LICENSE.md" "$OUT/lforms/"
modules=$UI_DIR/node_modules
cp "$modules/chart.js/dist/chart.umd.min.js" "$modules/chart.js/LICENSE.md" "$OUT/chart.js/"
cp "$modules/chartjs-adapter-date-fns/dist/chartjs-adapter-date-fns.bundle.min.js" \
  "$modules/chartjs-adapter-date-fns/LICENSE.md" "$OUT/chartjs-adapter-date-fns/"
cp "$modules/chartjs-plugin-annotation/dist/chartjs-plugin-annotation.min.js" \
  "$modules/chartjs-plugin-annotation/LICENSE.md" "$OUT/chartjs-plugin-annotation/"
find "$OUT" -name '*.map' -delete
