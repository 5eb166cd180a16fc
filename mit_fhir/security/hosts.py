"""Which Host headers the service answers, checked before every request (400 otherwise).

With MIT_FHIR_BASE_URL unset, development mode (MIT_FHIR_AUTH=none) answers loopback names
only: `localhost`, 127.0.0.0/8 and `[::1]` literals, with any port. A checked REMOTE_ADDR is
not enough there: a page the developer visits can rebind its own name to 127.0.0.1 (DNS
rebinding), and the browser then sends that name as Host over a loopback connection.

With MIT_FHIR_BASE_URL set, in either mode, only its host is answered (a name the operator
chose, not one a rebinding page controls), so no `Location`, `fullUrl`, CDS link or werkzeug
redirect is ever built from another name. The probes and /metrics are the exception: the
kubelet and Prometheus call a pod by its IP, and those answers build no links and carry no
patient data. This is werkzeug's `host_is_trusted` (what Flask's TRUSTED_HOSTS applies) run as
a before-request hook, because the TRUSTED_HOSTS setting is checked before routing and so
cannot exempt them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.sansio.utils import host_is_trusted

from mit_fhir.errors import InvalidRequest

# Answered whatever the Host: liveness, readiness and the Prometheus scrape.
PROBES = frozenset({"health.healthz", "health.readyz", "metrics"})
_TRUSTED = "mit_fhir.trusted_hosts"


def init_app(app: Flask) -> None:
    """Check the Host of every request (register before authentication)."""
    base = app.config.get("BASE_URL")
    name = urlsplit(base).hostname if base else None
    # werkzeug compares the part before the first ":", so an IPv6 literal is kept bracketed.
    app.extensions[_TRUSTED] = ([f"[{name}]" if ":" in name else name] if name else None)
    app.before_request(check_host)


def is_loopback_host(host: str) -> bool:
    """Whether a Host value (name[:port]) names this machine's loopback interface."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        if rest and not rest.startswith(":"):
            return False
    else:
        name = host.partition(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # another name, or a spelling such as 127.1 that browsers never send
        return False


def check_host() -> None:
    """Raise 400 for a Host this configuration does not answer."""
    # werkzeug's own parse of the header: "" when it is missing or holds invalid characters.
    host = request.host
    trusted: list[str] | None = current_app.extensions[_TRUSTED]
    if trusted:
        if request.endpoint not in PROBES and not host_is_trusted(host, trusted):
            raise InvalidRequest("the Host header does not name this service's host "
                                 "(MIT_FHIR_BASE_URL)")
    elif current_app.config["AUTH"] == "none" and not is_loopback_host(host):
        raise InvalidRequest("development mode (MIT_FHIR_AUTH=none) answers only loopback host "
                             "names (localhost, 127.0.0.1, [::1]) in the Host header")
