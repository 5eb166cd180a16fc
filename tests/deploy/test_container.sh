#!/usr/bin/env bash
# End-to-end test of the container image with Debian's podman (rootful, runc; no registry).
#
# 1. Makes the base images when they are missing and keeps them in podman's storage, so the next
#    run reuses them: BASE = Debian bookworm (python3 3.11 + venv) from debootstrap, imported with
#    `podman import`; NODE_BASE = BASE + Debian's nodejs and npm (for the static-assets stage).
# 2. Builds the image (the Dockerfile's layer cache makes a rebuild after a source edit fast).
# 3. Runs it with a read-only root filesystem and checks: /healthz, /readyz, a Questionnaire read,
#    a QuestionnaireResponse submission (201), /metrics, the HEALTHCHECK, that no process in the
#    container runs as root, and that the image holds no compiler, no tests, no test or audit
#    library (setup.cfg's `test` extra), no installer and no axe-core.
#
# Needs root, podman, runc and debootstrap (`make container-deps` installs them).
# Environment: MIT_FHIR_BASE_IMAGE, MIT_FHIR_NODE_BASE_IMAGE (use existing images instead),
# DEBIAN_MIRROR, MIT_FHIR_CACERT (CA bundle handed to pip and npm as a build secret),
# MIT_FHIR_KEEP_CONTAINER=1 (leave the container running for a look), CONTAINER_TEST_IMAGE (the tag
# to build, default localhost/mit-fhir:test).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE_IMAGE=${MIT_FHIR_BASE_IMAGE:-localhost/mit-fhir-base:bookworm}
NODE_BASE_IMAGE=${MIT_FHIR_NODE_BASE_IMAGE:-localhost/mit-fhir-node-base:bookworm}
IMAGE=${CONTAINER_TEST_IMAGE:-localhost/mit-fhir:test}
NAME=mit-fhir-test-$$
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACERT=${MIT_FHIR_CACERT:-/etc/ssl/certs/ca-certificates.crt}
# Debian's podman in this sandbox: runc, and limits the kernel lets a container have.
RUN_OPTS=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
BUILD_OPTS=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --network host)

log() { printf '[container %4ss] %s\n' "$SECONDS" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (rootful podman)"
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run 'make container-deps'"
done

podman info > /dev/null 2> /tmp/mit-fhir-podman-info.log \
  || { cat /tmp/mit-fhir-podman-info.log; fail "podman does not work here"; }

WORK=$(mktemp -d)
cleanup() {
  if [ "${MIT_FHIR_KEEP_CONTAINER:-0}" != 1 ]; then
    podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. base images (made once, then cached in podman's storage) --------------------------------
if ! podman image exists "$BASE_IMAGE"; then
  log "making $BASE_IMAGE with debootstrap from $MIRROR"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$WORK/rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log"; fail "debootstrap"; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" --numeric-owner -c . \
    | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" > /dev/null
  rm -rf "$WORK/rootfs"
  log "made $BASE_IMAGE"
fi
if ! podman image exists "$NODE_BASE_IMAGE"; then
  log "making $NODE_BASE_IMAGE (Debian's nodejs and npm)"
  printf '%s\n' "FROM $BASE_IMAGE" \
    'RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm > /dev/null && rm -rf /var/lib/apt/lists/*' \
    > "$WORK/Containerfile.node"
  podman build "${BUILD_OPTS[@]}" -q -f "$WORK/Containerfile.node" -t "$NODE_BASE_IMAGE" "$WORK" \
    > /dev/null
  log "made $NODE_BASE_IMAGE"
fi

# --- 2. the image ------------------------------------------------------------------------------
log "building $IMAGE"
podman build "${BUILD_OPTS[@]}" --format docker \
  --secret "id=cacert,src=$CACERT" \
  --build-arg "BASE=$BASE_IMAGE" --build-arg "NODE_BASE=$NODE_BASE_IMAGE" \
  -t "$IMAGE" "$ROOT" > "$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; fail "build"; }
log "built $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"

inspect() { podman image inspect --format "$1" "$IMAGE"; }
[ "$(inspect '{{.Config.User}}')" = "10001:10001" ] || fail "image user is not 10001:10001"
inspect '{{json .Config.Cmd}}' | grep -q '"mit-fhir","serve"' || fail "CMD is not mit-fhir serve"
podman image inspect "$IMAGE" | grep -q '"Healthcheck".*' || fail "no HEALTHCHECK"
podman image inspect "$IMAGE" | grep -q 'healthz' || fail "the HEALTHCHECK does not probe /healthz"

# Nothing the runtime does not need: no compiler, no tests, no dev tools; the assets are there.
podman run --rm "${RUN_OPTS[@]}" --network none --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c '
  for tool in gcc cc c++ make npm node; do
    if command -v "$tool" >/dev/null; then echo "found $tool"; exit 1; fi
  done
  for path in /srv/mit-fhir/tests /opt/venv/bin/pytest /opt/venv/bin/ruff /opt/venv/bin/mypy; do
    if [ -e "$path" ]; then echo "found $path"; exit 1; fi
  done
  test -s /srv/mit-fhir/static/vendor/lforms/webcomponent/lhc-forms.js
  test -s /srv/mit-fhir/static/vendor/lforms/fhir/R4/lformsFHIR.min.js
  test -s /srv/mit-fhir/static/vendor/chart.js/chart.umd.min.js
' || fail "runtime image content"

# No test or audit library: none of the distributions setup.cfg's `test` extra lists (read from it,
# so a tool added there is checked too), no installer (pip, setuptools, wheel), and no axe-core,
# which the browser tests inject themselves: the pages never ship it.
TEST_EXTRAS=$("${PYTHON:-python3}" - "$ROOT/setup.cfg" <<'PY'
import configparser, re, sys
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
for line in cfg["options.extras_require"]["test"].split("\n"):
    if line.strip():
        print(re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", line.strip())[0]).lower())
PY
)
[ "$(echo "$TEST_EXTRAS" | wc -w)" -ge 5 ] || fail "setup.cfg's test extra not read: $TEST_EXTRAS"
# shellcheck disable=SC2086  # one argument per distribution name
podman run --rm "${RUN_OPTS[@]}" --network none --no-healthcheck --entrypoint python3 "$IMAGE" -c '
import importlib.metadata as md, re, sys
have = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in md.distributions()}
found = sorted(have & (set(sys.argv[1:]) | {"pip", "setuptools", "wheel"}))
if found:
    sys.exit("found " + ", ".join(found))
if "mit-fhir" not in have:
    sys.exit("mit-fhir is not installed")
' $TEST_EXTRAS || fail "the image has test, audit or install tools"
podman run --rm "${RUN_OPTS[@]}" --network none --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c '
  found=$(find / -xdev \( -iname axe.js -o -iname axe.min.js -o -name axe-core \) -print 2>/dev/null | head -n 3)
  if [ -n "$found" ]; then echo "found $found"; exit 1; fi
' || fail "the image ships axe-core"
log "ok: no axe-core, installer or test tool ($(echo "$TEST_EXTRAS" | wc -w) test extras checked)"

# --- 3. run it ---------------------------------------------------------------------------------
# The image's own CMD (0.0.0.0:8080) in a network namespace of its own with loopback only
# (`--network none`: no port forwarding, nothing reachable from outside), a read-only root
# filesystem with a tmpfs on /tmp and a volume for the SQLite directory, as Kubernetes would run
# it. Requests are made from inside the container with its own python3 (the image has no curl).
mkdir "$WORK/data" && chown 10001:10001 "$WORK/data"  # the SQLite directory, as a volume

# Development mode (no authentication) must refuse to serve on 0.0.0.0, the image's bind.
if podman run --rm "${RUN_OPTS[@]}" --network none --no-healthcheck -e MIT_FHIR_AUTH=none \
    -v "$WORK/data:/srv/mit-fhir/data" "$IMAGE" > "$WORK/devmode.log" 2>&1; then
  fail "MIT_FHIR_AUTH=none served on 0.0.0.0"
fi
grep -q "loopback only" "$WORK/devmode.log" || fail "dev mode refusal: $(tail -n 5 "$WORK/devmode.log")"
log "ok: development mode refuses to bind beyond loopback"

# Inbound auth as a site without network access to its identity provider configures it: the
# issuer's keys mounted as a secret file, tokens signed with the matching private key.
ISSUER=https://idp.example.org/realms/hospital
AUDIENCE=https://mit.example.org/fhir
mkdir "$WORK/secrets"
"${PYTHON:-python3}" "$ROOT/tests/deploy/container_tokens.py" "$WORK/secrets" "$ISSUER" \
  "$AUDIENCE" > "$WORK/tokens" || fail "making test tokens"
SYSTEM_TOKEN=$(sed -n 1p "$WORK/tokens")
CATALOGUE_TOKEN=$(sed -n 2p "$WORK/tokens")
METRICS_TOKEN=$(tr -d '\n' < "$WORK/secrets/metrics-token")
chmod 0644 "$WORK/secrets/"*
podman run -d --name "$NAME" "${RUN_OPTS[@]}" --network none \
  --read-only --tmpfs /tmp:rw,size=64m,mode=1777 -v "$WORK/data:/srv/mit-fhir/data" \
  -v "$WORK/secrets:/var/run/secrets/mit-fhir:ro" \
  -e MIT_FHIR_AUTH_ISSUER="$ISSUER" -e MIT_FHIR_AUTH_AUDIENCE="$AUDIENCE" \
  -e MIT_FHIR_AUTH_JWKS_FILE=/var/run/secrets/mit-fhir/jwks.json \
  -e MIT_FHIR_METRICS_TOKEN_FILE=/var/run/secrets/mit-fhir/metrics-token \
  -e MIT_FHIR_LOG_LEVEL=INFO "$IMAGE" > /dev/null 2> "$WORK/run.log" \
  || { cat "$WORK/run.log"; fail "podman run"; }
log "started $NAME"

HTTP_CLIENT='
import sys, urllib.request, urllib.error
method, path = sys.argv[1], sys.argv[2]
data = sys.stdin.buffer.read() if method == "POST" else None
headers = {"Content-Type": "application/fhir+json"} if data else {}
if len(sys.argv) > 3 and sys.argv[3]:
    headers["Authorization"] = "Bearer " + sys.argv[3]
req = urllib.request.Request("http://127.0.0.1:8080" + path, data=data, method=method,
                             headers=headers)
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        status, body = resp.status, resp.read()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read()
except OSError as exc:
    status, body = 0, repr(exc).encode()
sys.stdout.write(f"{status}\n")
sys.stdout.buffer.write(body)
'
http() {  # http METHOD PATH [FILE]: status on the first line of $WORK/resp, the body after it
  # The bearer token is $TOKEN (none when empty).
  if [ -n "${3:-}" ]; then
    podman exec -i "$NAME" python3 -c "$HTTP_CLIENT" "$1" "$2" "${TOKEN:-}" < "$3" > "$WORK/resp"
  else
    podman exec -i "$NAME" python3 -c "$HTTP_CLIENT" "$1" "$2" "${TOKEN:-}" < /dev/null \
      > "$WORK/resp"
  fi
  head -n 1 "$WORK/resp"
  tail -n +2 "$WORK/resp" > "$WORK/body"
}

for _ in $(seq 1 120); do
  if [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" != true ]; then
    podman logs "$NAME" 2>&1 | tail -n 40
    fail "the container exited"
  fi
  if [ "$(http GET /healthz 2>/dev/null)" = 200 ]; then break; fi
  sleep 0.5
done

check() {  # check EXPECTED_STATUS METHOD PATH [FILE]
  local want=$1 got
  shift
  got=$(http "$@") || got=000
  if [ "$got" != "$want" ]; then
    head -c 600 "$WORK/body" 2>/dev/null || true
    echo
    podman logs "$NAME" 2>&1 | tail -n 30
    fail "$1 $2: HTTP $got, wanted $want"
  fi
  log "ok: $1 $2 ($got)"
}

check 200 GET /healthz
check 200 GET /readyz
grep -q '"database": *"ok"' "$WORK/body" || fail "/readyz body: $(cat "$WORK/body")"
check 200 GET /fhir/metadata
check 401 GET /fhir/Questionnaire/phq-9
grep -q '"code": *"login"' "$WORK/body" || fail "401 without an OperationOutcome"
TOKEN=$CATALOGUE_TOKEN check 200 GET /fhir/Questionnaire/phq-9
grep -q '"resourceType": *"Questionnaire"' "$WORK/body" || fail "not a Questionnaire"
TOKEN=$CATALOGUE_TOKEN check 403 POST /fhir/QuestionnaireResponse \
  "$ROOT/tests/data/samples/phq-9/complete.json"
TOKEN=$SYSTEM_TOKEN check 201 POST /fhir/QuestionnaireResponse \
  "$ROOT/tests/data/samples/phq-9/complete.json"
grep -q '"resourceType": *"QuestionnaireResponse"' "$WORK/body" || fail "not a QuestionnaireResponse"
TOKEN=$SYSTEM_TOKEN check 200 GET /fhir/AuditEvent
grep -q '"code": *"create"' "$WORK/body" || fail "no AuditEvent for the submission"
check 200 GET /app/vendor/lforms/webcomponent/lhc-forms.js
check 200 GET /app/vendor/chart.js/chart.umd.min.js
check 401 GET /metrics
TOKEN=$METRICS_TOKEN check 200 GET /metrics
grep -q '^mit_fhir_http_requests_total{.*route="/fhir/QuestionnaireResponse"' "$WORK/body" \
  || fail "/metrics has no request count for the submission route"

# Not root: the exec'd shell, PID 1 (gunicorn's master) and every other process in the container.
uid=$(podman exec "$NAME" id -u)
[ "$uid" != 0 ] || fail "podman exec runs as root"
podman exec "$NAME" /bin/sh -c 'grep "^Uid:" /proc/1/status' > "$WORK/uid1"
awk '{ for (i = 2; i <= 5; i++) if ($i == 0) bad = 1 } END { exit bad }' "$WORK/uid1" \
  || fail "PID 1 runs as root: $(cat "$WORK/uid1")"
podman exec "$NAME" /bin/sh -c 'grep -h "^Uid:" /proc/[0-9]*/status' > "$WORK/uids"
awk '{ for (i = 2; i <= 5; i++) if ($i == 0) bad = 1 } END { exit bad }' "$WORK/uids" \
  || fail "a process runs as root: $(sort -u "$WORK/uids")"
log "ok: not root (id -u = $uid; $(tr -s '\t ' ' ' < "$WORK/uid1"))"

podman healthcheck run "$NAME" > /dev/null || fail "HEALTHCHECK failed"
log "ok: HEALTHCHECK"

log "passed in ${SECONDS}s"
