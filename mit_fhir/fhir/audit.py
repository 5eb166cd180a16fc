"""AuditEvent and Provenance resources (pure mapping; no answer content ever goes in).

AuditEvent follows the R4 RESTful-operation pattern (type `rest`, subtype the interaction),
https://hl7.org/fhir/R4/auditevent.html ; Provenance records that the service derived the
Observations of an extraction from their QuestionnaireResponse,
https://hl7.org/fhir/R4/provenance.html . Both name resources by reference only.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from mit_fhir.fhir.index import identifier_rows
from mit_fhir.fhir.search import Row, date_key, reference_rows

Resource = dict[str, Any]

ACTIONS = {"create": "C", "read": "R", "vread": "R", "update": "U", "delete": "D",
           "search-type": "E", "operation": "E"}
AUDIT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
              "code": "rest", "display": "RESTful Operation"}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
SERVICE = {"display": "mit-fhir"}
# Resources the AuditEvent of a search names besides its patients. It used to name every match,
# so each read of the audit trail grew the next one (455 KB per search at 2,300 events). Twenty
# is a clinician's first screen of results; `detail` records how many were returned, and the
# query finds them again. The patients of a search are all named (at most a page of them):
# "who saw my data" must not lose one.
MAX_ENTITIES = 20
MAX_QUERY = 2048  # characters of a recorded query (a URL's worth); longer ones are cut


@dataclass
class AuditRecord:
    """What one request did to patient data, filled in by the view."""

    subtype: str  # a restful-interaction code: create, read, search-type, operation
    resource_type: str
    references: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    # A search: its parameters (after the token's patient context) and how many it returned.
    query: list[tuple[str, str]] | None = None
    results: int | None = None


def recorded_query(args: list[tuple[str, str]]) -> str:
    """A search's parameters as the AuditEvent records them (URL-encoded).

    Only parameters the search accepted reach here (unknown ones are refused first), and none of
    them is a free-text string: ids, references, tokens and dates. The cursor is left out: it
    says which page, and the entities name what the page held.
    """
    return urlencode([(k, v) for k, v in args if k != "_cursor"])[:MAX_QUERY]


@dataclass(frozen=True)
class Agent:
    """The caller as an audit agent: token subject, issuer, client, fhirUser, address."""

    subject: str | None
    issuer: str | None
    client_id: str | None
    fhir_user: str | None
    address: str | None


def audit_event(record: AuditRecord, agent: Agent, status: int, recorded: str,
                request_id: str | None) -> Resource:
    """The AuditEvent of one request: who, what, when, and the outcome (from the HTTP status)."""
    who: dict[str, Any] = {}
    if agent.fhir_user:
        who["reference"] = agent.fhir_user
    if agent.subject:
        who["identifier"] = {"value": agent.subject, **({"system": agent.issuer}
                                                          if agent.issuer else {})}
    requestor: dict[str, Any] = {"who": who or {"display": "unknown"}, "requestor": True}
    if agent.client_id:
        requestor["altId"] = agent.client_id
    if agent.address:
        requestor["network"] = {"address": agent.address, "type": "2"}  # 2 = IP address
    entities = [{"what": {"reference": f"Patient/{p}"},
                 "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                 "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}}
                for p in dict.fromkeys(record.patients)]
    # A create or a read names all it stored or returned (bounded by the body, or one); a search
    # names its first MAX_ENTITIES and its query.
    named = list(dict.fromkeys(record.references))
    if record.query is not None:
        named = named[:MAX_ENTITIES]
    entities += [{"what": {"reference": ref},
                  "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}}
                 for ref in named]
    if record.query is not None:
        entities.append(_query_entity(record))
    elif not record.references:
        entities.append({"what": {"display": record.resource_type},
                         "type": {"system": ENTITY_TYPE, "code": "2"}})
    event: Resource = {
        "resourceType": "AuditEvent",
        "type": AUDIT_TYPE,
        "subtype": [{"system": INTERACTION_SYSTEM, "code": record.subtype}],
        "action": ACTIONS[record.subtype],
        "recorded": recorded,
        # 0 success, 4 minor failure (the request was refused), 8 serious failure (ours).
        "outcome": "0" if status < 400 else "4" if status < 500 else "8",
        "agent": [requestor],
        "source": {"observer": SERVICE,
                   "type": [{"system": SOURCE_TYPE, "code": "4",
                             "display": "Application Server"}]},
        "entity": entities,
    }
    if status >= 400:
        event["outcomeDesc"] = f"HTTP {status}"
    if request_id:
        event["source"]["site"] = f"request {request_id}"
    return event


def _query_entity(record: AuditRecord) -> Resource:
    """The search itself (R4 RESTful pattern: role Query, `query` the base64 of its parameters),
    with the number of resources it returned."""
    query = recorded_query(record.query or [])
    return {"what": {"display": record.resource_type},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
            "query": base64.b64encode(query.encode()).decode("ascii"),
            "detail": [{"type": "results", "valueString": str(record.results or 0)}]}


def audit_index(event: Resource) -> list[Row]:
    """AuditEvent search rows: date, action, subtype, outcome, agent, entity, patient, _id."""
    rows: list[Row] = [("action:code", event["action"]), ("outcome:code", event["outcome"]),
                       ("subtype:code", event["subtype"][0]["code"]), ("_id", event["id"])]
    if (recorded := date_key(event.get("recorded"))) is not None:
        rows.append(("date", recorded))
    for agent in event["agent"]:
        who = agent.get("who", {})
        rows += reference_rows("agent", who)
    for entity in event["entity"]:
        rows += reference_rows("entity", entity.get("what"))
    rows += [("patient", v) for _, v in rows if _ == "entity" and v.startswith("Patient/")]
    return rows


def provenance(qr: Resource, targets: list[Resource], recorded: str) -> Resource:
    """Provenance of an extraction: the Observations derived from their QuestionnaireResponse."""
    agents: list[Resource] = [{
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler"}]},
        "who": SERVICE,
    }]
    if isinstance(qr.get("author"), dict):
        agents.append({"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                       "who": qr["author"]})
    prov: Resource = {
        "resourceType": "Provenance",
        "target": [{"reference": f"{t['resourceType']}/{t['id']}"} for t in targets],
        "recorded": recorded,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE",
                                 "display": "create"}]},
        "agent": agents,
        "entity": [{"role": "derivation",
                    "what": {"reference": f"QuestionnaireResponse/{qr['id']}"}}],
    }
    return prov


def provenance_index(prov: Resource, patient_reference: str | None) -> list[Row]:
    """Provenance search rows: target, entity, recorded, patient, _id."""
    rows: list[Row] = [("_id", prov["id"])]
    for target in prov["target"]:
        rows += reference_rows("target", target)
    for entity in prov["entity"]:
        rows += reference_rows("entity", entity["what"])
    if (recorded := date_key(prov.get("recorded"))) is not None:
        rows.append(("recorded", recorded))
    if patient_reference:
        rows += [("patient", v) for _, v in reference_rows("patient",
                                                            {"reference": patient_reference})]
    return rows + identifier_rows(prov)
