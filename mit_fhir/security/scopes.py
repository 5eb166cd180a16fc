"""SMART on FHIR scopes (v1 and v2 syntax) and the Principal they describe; no Flask here.

Scope grammar, https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html :
    v1  (patient|user|system)/(Type|*).(read|write|*)
    v2  (patient|user|system)/(Type|*).(c?r?u?d?s?)[?param=value...]
v1 `read` grants read and search, `write` grants create, update and delete. v2 permissions
must appear in the order c, r, u, d, s. A v2 scope with a query (e.g.
`patient/Observation.rs?category=survey`) narrows what it grants to matching resources; this
service does not evaluate such narrowing, so it grants nothing rather than too much. Scopes
this grammar does not match (openid, launch, offline_access...) grant no resource access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mit_fhir.vocabulary import PATIENT_DATA

INTERACTIONS = "cruds"  # create, read, update, delete, search
LEVELS = ("patient", "user", "system")

_SCOPE = re.compile(  # matched whole (fullmatch): "patient/*.rs\n" is no scope
    r"(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{1,63})\."
    r"(?P<perm>read|write|\*|c?r?u?d?s?)(?P<query>\?.*)?"
)
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class Grant:
    """What one scope allows: a level, a resource type (or '*') and interactions."""

    level: str
    resource_type: str
    interactions: str

    def covers(self, resource_type: str, interaction: str) -> bool:
        return self.resource_type in ("*", resource_type) and interaction in self.interactions


def parse_scope(scope: str) -> Grant | None:
    """The grant of one scope string, or None if it grants no resource access here."""
    m = _SCOPE.fullmatch(scope)
    if m is None or not m["perm"] or m["query"]:
        return None
    perm = m["perm"]
    return Grant(m["level"], m["type"], _V1.get(perm, perm))


def parse_scopes(scopes: str | list[str] | tuple[str, ...] | None) -> tuple[Grant, ...]:
    """Grants of a space-separated scope string (the `scope` claim) or a list (`scp`)."""
    items = scopes.split() if isinstance(scopes, str) else list(scopes or ())
    return tuple(g for g in (parse_scope(s) for s in items if isinstance(s, str)) if g)


class Denied(Exception):
    """The principal may not do this; the message says why without patient data."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: subject, client, scopes and optional patient context."""

    subject: str | None
    client_id: str | None
    grants: tuple[Grant, ...]
    patient: str | None = None
    fhir_user: str | None = None
    scope_text: str = ""
    development: bool = field(default=False)

    @classmethod
    def development_user(cls) -> Principal:
        """The caller in development mode (MIT_FHIR_AUTH=none): everything, on loopback only."""
        return cls("development", None, (Grant("system", "*", INTERACTIONS),),
                   scope_text="system/*.cruds", development=True)

    def check_type(self, resource_type: str, interaction: str) -> None:
        """Raise Denied unless some usable scope grants `interaction` on `resource_type` at
        all: checked before a body is read, before the patient it concerns is known."""
        usable = [g for g in self.grants if g.covers(resource_type, interaction)
                  and (g.level != "patient" or self.patient is not None
                       or resource_type not in PATIENT_DATA)]
        if not usable:
            raise Denied(f"no scope grants {resource_type}.{interaction}")

    def check(self, resource_type: str, interaction: str, patient: str | None = None) -> None:
        """Raise Denied unless this principal may do `interaction` on `resource_type` (of
        `patient`, for patient data; None means "not tied to one patient": a search without
        a patient criterion, which a patient-context token may not make)."""
        levels = {g.level for g in self.grants if g.covers(resource_type, interaction)}
        what = f"{resource_type}.{interaction}"
        if resource_type not in PATIENT_DATA:
            if not levels:
                raise Denied(f"no scope grants {what}")
            return
        if self.patient is None:
            levels.discard("patient")  # patient/ scopes need a patient in context
            if not levels:
                raise Denied(f"no user/ or system/ scope grants {what}"
                             if "patient" not in {g.level for g in self.grants}
                             else f"patient/ scopes need patient context to grant {what}")
            return
        if not levels:
            raise Denied(f"no scope grants {what}")
        if patient != self.patient:
            raise Denied(f"the token's patient context does not cover this {resource_type}")
