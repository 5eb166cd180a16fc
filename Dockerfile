# mit-fhir container image.
#
# Build (no registry needed: BASE and NODE_BASE may be local images; tests/deploy/test_container.sh
# makes both from Debian bookworm with debootstrap when they are missing):
#   podman build --format docker --network host \
#     --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt \
#     --build-arg BASE=localhost/mit-fhir-base:bookworm \
#     --build-arg NODE_BASE=localhost/mit-fhir-node-base:bookworm -t mit-fhir .
# BASE needs python3 (3.11) with venv; NODE_BASE needs npm, tar and sha256sum
# (ui/fetch-assets.sh). The optional `cacert` build secret is a CA bundle for pip and npm behind a TLS-inspecting proxy; it is
# mounted for the download steps only and never stored in a layer.
# Configuration at run time: MIT_FHIR_* environment variables and mounted secret files only.
ARG BASE=docker.io/library/python:3.11-slim-bookworm
ARG NODE_BASE=docker.io/library/node:22-bookworm-slim

# --- static browser assets: LHC-Forms' prebuilt files (SHA-256 checked) and Chart.js ------------
FROM ${NODE_BASE} AS assets
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ui/fetch-assets.sh ./
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export npm_config_cafile=/run/secrets/cacert; fi \
 && export npm_config_cache=/tmp/npm-cache \
 && sh fetch-assets.sh /ui /static/vendor \
 && rm -rf /tmp/npm-cache /ui/node_modules

# --- Python build: a virtualenv with the pinned dependencies, then the package -----------------
FROM ${BASE} AS build
ARG SETUPTOOLS_VERSION=80.9.0
WORKDIR /src
COPY constraints.txt setup.cfg pyproject.toml ./
# Dependencies first, through a stub package (and a stub README, which setup.cfg reads), so that
# this layer survives edits to the source and the documentation.
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --quiet "setuptools==${SETUPTOOLS_VERSION}" \
 && mkdir mit_fhir && touch mit_fhir/__init__.py README.md \
 && /opt/venv/bin/pip install --no-cache-dir --quiet -c constraints.txt . \
 && /opt/venv/bin/pip uninstall --yes --quiet mit-fhir \
 && rm -rf mit_fhir build ./*.egg-info README.md
COPY README.md ./
COPY mit_fhir ./mit_fhir
# Then the installers themselves go: the runtime has neither pip nor setuptools, only what runs.
RUN /opt/venv/bin/pip install --no-cache-dir --quiet --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip

# --- runtime: no compilers, no tests or test tools, no installers; an unprivileged numeric user --
FROM ${BASE}
RUN groupadd --system --gid 10001 mitfhir \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /srv/mit-fhir \
    --shell /usr/sbin/nologin mitfhir \
 && mkdir -p /srv/mit-fhir/data \
 && chown 10001:10001 /srv/mit-fhir/data
COPY --from=build /opt/venv /opt/venv
COPY --from=assets /static/vendor /srv/mit-fhir/static/vendor
WORKDIR /srv/mit-fhir
# `mit-fhir serve` keeps its Prometheus multiprocess files in a fresh directory under /tmp (or in
# PROMETHEUS_MULTIPROC_DIR, emptied at start-up): give /tmp an emptyDir or a tmpfs when the root
# filesystem is read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MIT_FHIR_UI_ASSETS_DIR=/srv/mit-fhir/static/vendor \
    MIT_FHIR_DATABASE_URL=sqlite:////srv/mit-fhir/data/mit-fhir.sqlite3
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["mit-fhir", "serve", "--host", "0.0.0.0", "--port", "8080"]
