"""FHIR REST client for the host EHR: JSON in and out, errors mapped to retry / don't retry.

Connection-level hiccups are retried at once by urllib3 (our writes are conditional, hence safe
to repeat); everything slower (5xx storms, 429, an EHR that is down) is retried by the sync
worker's outbox with backoff, so no request thread ever sleeps for minutes.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from mit_fhir.ehr.errors import (
    RETRY_STATUSES,
    EhrConflict,
    EhrRejected,
    EhrRetryable,
)

FHIR_JSON = "application/fhir+json"
IDEMPOTENT_READS = frozenset({"GET", "HEAD", "OPTIONS"})
Resource = dict[str, Any]


@dataclass(frozen=True)
class Capabilities:
    """What the EHR's CapabilityStatement says it supports, as far as the sync needs."""

    transaction: bool = False
    batch: bool = False
    conditional_create: set[str] = field(default_factory=set)
    conditional_update: set[str] = field(default_factory=set)
    versioned_update: set[str] = field(default_factory=set)
    # Types whose `identifier` search parameter the server declares (others may ignore it).
    identifier_search: set[str] = field(default_factory=set)

    @classmethod
    def from_statement(cls, statement: Resource) -> Capabilities:
        rest: Resource = next(
            (r for r in statement.get("rest", []) if r.get("mode") == "server"), {}
        )
        system = {i.get("code") for i in rest.get("interaction", [])}
        resources = rest.get("resource", [])
        return cls(
            transaction="transaction" in system,
            batch="batch" in system,
            conditional_create={r["type"] for r in resources if r.get("conditionalCreate")},
            conditional_update={r["type"] for r in resources if r.get("conditionalUpdate")},
            versioned_update={
                r["type"] for r in resources if r.get("versioning") == "versioned-update"
            },
            identifier_search={
                r["type"] for r in resources
                if any(p.get("name") == "identifier" for p in r.get("searchParam", []))
            },
        )


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _outcome(resp: requests.Response) -> Resource | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


class EhrClient:
    """One EHR base URL, one authenticated session."""

    def __init__(
        self,
        base_url: str,
        auth: Any,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.auth = auth
        self.timeout = timeout
        self.session = session or requests.Session()
        # A failed connect never reached the EHR: retried for any method. A read timeout may
        # follow a committed write, so only reads are re-sent; a POST or PUT goes back to the
        # outbox, whose next attempt is conditional (re-sending a plain create duplicates).
        adapter = HTTPAdapter(
            max_retries=Retry(
                total=2, connect=2, read=1, status=0, other=0, backoff_factor=0.1,
                backoff_jitter=0.1, allowed_methods=IDEMPOTENT_READS, raise_on_status=False,
            )
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": FHIR_JSON})
        self._capabilities: Capabilities | None = None

    def url(self, path: str) -> str:
        if not path.strip("/"):
            # POST [base] (transaction, batch) has no trailing slash; strict routers 404 on it.
            return self.base_url.rstrip("/")
        return urljoin(self.base_url, path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        body: Resource | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one request; return the 2xx response or raise an EhrError subclass."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            hdrs["Content-Type"] = FHIR_JSON
            data = orjson.dumps(body)
        for attempt in (1, 2):
            try:
                resp = self.session.request(
                    method, self.url(path), data=data, headers=hdrs, params=params,
                    timeout=self.timeout, auth=self.auth,
                )
            except requests.RequestException as exc:
                raise EhrRetryable(f"{method} {path.split('?')[0]}: {type(exc).__name__}") from None
            if resp.status_code == 401 and attempt == 1:
                # The token may have been revoked or expired early: renew it once.
                self.auth.invalidate()
                continue
            break
        return self._check(method, path, resp)

    def _check(self, method: str, path: str, resp: requests.Response) -> requests.Response:
        status = resp.status_code
        where = f"{method} {path.split('?')[0]}"
        if status < 400:
            return resp
        outcome = _outcome(resp)
        if status in RETRY_STATUSES:
            raise EhrRetryable(f"{where}: {status}", status, outcome,
                               retry_after(resp.headers.get("Retry-After")))
        if status == 412:
            raise EhrConflict(f"{where}: 412 the resource changed in the EHR", status, outcome)
        raise EhrRejected(f"{where}: {status}", status, outcome)

    def json(self, resp: requests.Response) -> Resource:
        """The body of a 2xx response; a malformed one is transient (a proxy's error page)."""
        try:
            body = orjson.loads(resp.content)
        except ValueError:
            raise EhrRetryable("the EHR answered with a body that is not JSON",
                               resp.status_code) from None
        if not isinstance(body, dict):
            raise EhrRetryable("the EHR answered with JSON that is not a resource",
                               resp.status_code)
        return body

    def capabilities(self) -> Capabilities:
        """The EHR's CapabilityStatement, read once."""
        if self._capabilities is None:
            self._capabilities = Capabilities.from_statement(
                self.json(self.request("GET", "metadata"))
            )
        return self._capabilities

    def transaction(self, bundle: Resource) -> Resource:
        """POST a transaction (or batch) Bundle to the base; the response Bundle."""
        return self.json(self.request("POST", "", bundle))

    def search(self, resource_type: str, params: dict[str, str]) -> list[Resource]:
        """Every match, following `next` links (bounded at 50 pages)."""
        found: list[Resource] = []
        bundle = self.json(self.request("GET", resource_type, params=params))
        for page in range(1, 51):
            found += [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
            nxt = next((link["url"] for link in bundle.get("link", [])
                        if link.get("relation") == "next"), None)
            if not nxt or page == 50:
                break
            if urlsplit(self.url(nxt))[:2] != urlsplit(self.base_url)[:2]:
                # Our credentials go to the EHR only, never to a host a Bundle names.
                raise EhrRejected(f"GET {resource_type}: next link leaves the EHR's origin")
            bundle = self.json(self.request("GET", nxt))
        return found
