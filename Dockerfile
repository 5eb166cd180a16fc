# mit-fhir container, first version (the "production deployment" issue hardens it further).
# Build: podman build --build-arg BASE=<local python 3.11 image> -t mit-fhir .
ARG BASE=docker.io/library/python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY mit_fhir ./mit_fhir
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM ${BASE}
RUN useradd --system --uid 10001 --home-dir /srv/mit-fhir --create-home mitfhir
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/mit-fhir
COPY questionnaires ./questionnaires
COPY profiles ./profiles
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MIT_FHIR_QUESTIONNAIRE_DIR=/srv/mit-fhir/questionnaires \
    MIT_FHIR_PROFILE_DIR=/srv/mit-fhir/profiles \
    MIT_FHIR_DATABASE_URL=sqlite:////srv/mit-fhir/data/mit-fhir.sqlite3
RUN mkdir -p /srv/mit-fhir/data && chown mitfhir /srv/mit-fhir/data
USER mitfhir
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["mit-fhir", "serve", "--host", "0.0.0.0", "--port", "8080"]
