# The container test's system tools (tests/deploy/test_container.sh). Included from the top-level
# Makefile:
#   include tests/deploy/deploy.mk
#   test: $(STAMP) servers container-deps
#
# Debian's podman, run as root with runc and the netavark network stack (no Docker engine here),
# debootstrap to make the Debian bookworm base image locally (no registry is reachable), and
# catatonit, the init of the pods' infra containers that `podman kube play` builds locally
# (tests/deploy/test_kube_play.py; it also needs kubectl, which the machines come with).
# Installed once: the stamp lives outside the work tree, so fresh clones on the same machine skip
# apt entirely, and it is named after the package list, so changing the list installs again.

CONTAINER_PKGS := podman runc netavark debootstrap catatonit
CONTAINER_STAMP := /var/lib/mit-fhir/container-deps-$(shell echo '$(CONTAINER_PKGS)' | cksum | cut -d' ' -f1)

.PHONY: container-deps container-test kube-play-test

container-deps: $(CONTAINER_STAMP)

$(CONTAINER_STAMP):
	@installed=$$(dpkg-query -W -f '$${db:Status-Status}\n' $(CONTAINER_PKGS) 2> /dev/null \
	  | grep -cx installed); \
	if [ "$$installed" != "$(words $(CONTAINER_PKGS))" ]; then \
	  set -e; apt-get -o DPkg::Lock::Timeout=600 update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
	    --no-install-recommends \
	    $(CONTAINER_PKGS); \
	fi
	podman --version
	mkdir -p $(@D) && touch $@

# The container test alone (it also runs within `make test`, as tests/deploy/test_container.py).
container-test: container-deps
	bash tests/deploy/test_container.sh

# The manifests under `podman kube play` alone (within `make test` it runs in the PostgreSQL pass).
kube-play-test: container-deps
	MIT_FHIR_TEST_DATABASE=postgresql $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/deploy/test_kube_play.py
