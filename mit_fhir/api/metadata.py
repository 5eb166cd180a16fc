"""GET /fhir/metadata: the CapabilityStatement, built from what the routes really support."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app

from mit_fhir import __version__
from mit_fhir.fhir.extract import PANEL_PROFILE, SCORE_PROFILE
from mit_fhir.fhir.search import PARAMETERS
from mit_fhir.fhir.task import PROFILE as TASK_PROFILE
from mit_fhir.vocabulary import FHIR_JSON
from mit_fhir.web.http import base_url, fhir_response

bp = Blueprint("metadata", __name__, url_prefix="/fhir")

_TYPES = {"reference": "reference", "token": "token", "date": "date", "id": "token",
          "canonical": "reference", "string": "string", "period": "date"}


# The page size when a search gives no _count, and the largest it may ask (config defaults).
PAGING = (50, 500)


def _params(resource_type: str, paging: tuple[int, int] = PAGING) -> list[dict[str, str]]:
    default, maximum = paging
    return [
        *({"name": name, "type": _TYPES[kind]}
          for name, (kind, _index) in PARAMETERS[resource_type].items()),
        {"name": "_count", "type": "number",
         "documentation": f"page size, 1 to {maximum} (default {default}); further pages "
                          "follow Bundle.link next, whose opaque cursor resumes this search "
                          "only"},
    ]


def capability_statement(base: str, security: dict[str, Any] | None = None,
                         paging: tuple[int, int] = PAGING) -> dict[str, Any]:
    """What this server supports: FHIR 4.0.1, JSON, the resources and interactions below."""
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "mit-fhir",
        "kind": "instance",
        "software": {"name": "mit-fhir", "version": __version__},
        "implementation": {"description": "mit-fhir MIT catalogue and scoring service",
                           "url": base},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Questionnaire",
                        "profile": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": n, "type": t}
                            for n, t in (("url", "uri"), ("version", "token"), ("name", "string"),
                                         ("title", "string"), ("status", "token"),
                                         ("_id", "token"))
                        ],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": [{"code": "create"}, {"code": "read"},
                                        {"code": "search-type"}],
                        "versioning": "versioned",
                        "searchParam": _params("QuestionnaireResponse", paging),
                        "operation": [
                            {
                                "name": "extract",
                                "definition": "http://hl7.org/fhir/uv/sdc/OperationDefinition/"
                                "QuestionnaireResponse-extract",
                            }
                        ],
                    },
                    *(
                        {
                            "type": t,
                            "interaction": [{"code": "create"}, {"code": "read"},
                                            # PUT: only to end a schedule (plan_resources.py)
                                            *([{"code": "update"}] if t == "CarePlan" else []),
                                            {"code": "search-type"}],
                            "versioning": "versioned",
                            "searchParam": _params(t, paging),
                        }
                        for t in ("MedicationRequest", "CarePlan", "CareTeam")
                    ),
                    {
                        "type": "Task",
                        "supportedProfile": [TASK_PROFILE],
                        "documentation": "SDC Tasks asking a patient to complete a form; an "
                                         "update (If-Match required) moves only the status",
                        "interaction": [{"code": "create"}, {"code": "read"},
                                        {"code": "update"}, {"code": "search-type"}],
                        "versioning": "versioned-update",
                        "updateCreate": False,
                        "searchParam": _params("Task", paging),
                    },
                    {
                        "type": "Observation",
                        "supportedProfile": [SCORE_PROFILE, PANEL_PROFILE],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": _params("Observation", paging),
                    },
                    *(
                        {
                            "type": t,
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": _params(t, paging),
                        }
                        for t in ("AuditEvent", "Provenance")
                    ),
                ],
            }
        ],
    }
    if security is not None:
        statement["rest"][0]["security"] = security  # type: ignore[index]
    return statement


def security_section(settings: Mapping[str, Any]) -> dict[str, Any]:
    """How callers authenticate: SMART on FHIR bearer tokens, or development mode."""
    if settings.get("AUTH") == "none":
        return {"description": "Development mode: no authentication, loopback callers only."}
    return {
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"}]}],
        "description": (
            f"Bearer JWTs issued by {settings.get('AUTH_ISSUER')}, audience "
            f"{settings.get('AUTH_AUDIENCE')}; SMART scopes (v1 and v2) for patient/, user/ "
            "and system/ access; a token with patient context reaches only that patient."),
    }


@bp.get("/metadata")
def metadata() -> Response:
    settings = current_app.config
    paging = (settings["SEARCH_DEFAULT_COUNT"], settings["SEARCH_MAX_COUNT"])
    return fhir_response(capability_statement(base_url(), security_section(settings), paging))
