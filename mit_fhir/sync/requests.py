"""How one local resource is written to the EHR: the request, its body, its references.

Writes are idempotent. A resource the EHR has not seen is created conditionally
(`If-None-Exist: identifier=<our system>|<value>`), so a repeat after a lost response finds the
first copy instead of making a second. A resource the EHR already holds is updated by id with
`If-Match` on the version we last saw, so an edit made in the EHR meanwhile comes back as 412,
a conflict to report, never something we overwrite. ETags and ids are opaque strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mit_fhir.fhir.references import patient_reference
from mit_fhir.vocabulary import BASE, SYNCED_TYPES

Resource = dict[str, Any]
OWN_IDENTIFIERS = f"{BASE}/identifier/"  # the systems of the identifiers the service makes
# Resources that never change once stored: a repeat of their create is harmless.
IMMUTABLE = frozenset({"QuestionnaireResponse", "Observation"})


@dataclass(frozen=True)
class Link:
    """Where a local resource lives in the EHR."""

    remote_id: str
    remote_version: str | None
    synced_version: int


class Unresolved(Exception):
    """The resource refers to a local resource the EHR does not have yet."""


def identifier(res: Resource) -> Resource | None:
    """The business identifier the EHR knows the resource by (QR has 0..1, others a list)."""
    ident = res.get("identifier")
    if isinstance(ident, dict):
        return ident
    for item in ident or ():
        if item.get("system") and item.get("value"):
            return dict(item)
    return None


def identifier_patient(ident: Resource, res: Resource) -> str | None:
    """The patient that must hold a match of this identifier, when the identifier is a client's.

    A client's identifiers are unique per patient only (mit_fhir.usecases.submissions): without the
    patient, a retried create of patient B's response could find A's under the same
    identifier and be taken as delivered. The service's own identifiers are UUIDs.
    """
    if str(ident.get("system", "")).startswith(OWN_IDENTIFIERS):
        return None
    ref = patient_reference(res)
    return ref if isinstance(ref, str) and ref.startswith("Patient/") else None


def identifier_query(ident: Resource, res: Resource) -> str:
    """`identifier=system|value` (and `patient=` for a client's identifier), percent-encoded
    for a query string."""
    query = "identifier=" + quote(f"{ident['system']}|{ident['value']}", safe="/:")
    patient = identifier_patient(ident, res)
    return query + ("&patient=" + quote(patient, safe="/") if patient else "")


def local_key(res: Resource) -> str:
    return f"{res['resourceType']}/{res['id']}"


def local_target(ref: Any) -> str | None:
    """`Type/id` when `ref` points at a synced local resource (any version), else None."""
    if type(ref) is not str or "/" not in ref:
        return None
    rtype, _, rest = ref.partition("/")
    return f"{rtype}/{rest.split('/', 1)[0]}" if rtype in SYNCED_TYPES else None


def references(res: Resource) -> frozenset[str]:
    """The synced local resources `res` refers to (`Type/id`), found without recursion."""
    found: set[str] = set()
    stack: list[Any] = [res]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            target = local_target(node.get("reference"))
            if target is not None:
                found.add(target)
            stack.extend([v for v in node.values() if type(v) is dict or type(v) is list])
        else:
            stack.extend([v for v in node if type(v) is dict or type(v) is list])
    return frozenset(found)


def rewrite(node: Any, resolve: dict[str, str]) -> Any:
    """Copy with references to synced local resources replaced by `resolve`'s targets."""
    if isinstance(node, dict):
        key = local_target(node.get("reference"))
        if key is not None:
            if key not in resolve:
                raise Unresolved(key)
            return {**node, "reference": resolve[key]}
        return {k: rewrite(v, resolve) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite(v, resolve) for v in node]
    return node


def body(
    res: Resource, resolve: dict[str, str], remote_id: str | None,
    refs: frozenset[str] | None = None,
) -> Resource:
    """The resource as the EHR gets it: our meta stripped, its id, references resolved.

    `refs` (from `references`) may be passed when known: a resource without local references
    needs no rewriting, and a shallow copy is enough (the body is only serialized, never edited).
    """
    # rewrite builds new containers, so the stored resource is never changed either way.
    out: Resource = dict(res) if refs is not None and not refs else rewrite(res, resolve)
    meta = {k: v for k, v in out.pop("meta", {}).items() if k in ("profile", "tag", "security")}
    if meta:
        out["meta"] = meta
    out.pop("id", None)
    if remote_id is not None:
        out["id"] = remote_id
    return out


def parse_location(location: str | None) -> tuple[str | None, str | None]:
    """(id, version) from a Location like `[base/]Type/id[/_history/vid]`."""
    if not location:
        return None, None
    parts = location.rstrip("/").split("/")
    if "_history" in parts:
        at = parts.index("_history")
        version = parts[at + 1] if at + 1 < len(parts) else None
        return parts[at - 1], version
    return parts[-1], None


def etag_version(etag: str | None) -> str | None:
    """The opaque version inside an ETag (W/"abc" -> abc)."""
    if not etag:
        return None
    value = etag.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None
