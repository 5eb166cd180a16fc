"""GET /openapi.json: the service's OpenAPI 3 description, built from its own URL rules.

Paths and methods come from the application's url_map, search parameters from
mit_fhir.fhir.search.PARAMETERS (and the Questionnaire blueprint's own set), so the document
cannot drift from what the routes accept. Every FHIR error is documented as an OperationOutcome.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from werkzeug.routing import Rule

from mit_fhir.api import questionnaires
from mit_fhir.fhir.search import PARAMETERS
from mit_fhir.vocabulary import FHIR_JSON

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"
UNDESCRIBED = frozenset({"static"})  # Flask's own rule
# The SMART pages (/app) and the development-mode landing page (/) are the browser app, with
# their own session: not part of this API.
UNDESCRIBED_BLUEPRINTS = ("ui.", "landing.")
_CACHE = "mit_fhir.openapi"
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_TYPE = re.compile(r"^/fhir/([A-Z][A-Za-z]+)")
_PLAIN_JSON = {"/healthz", "/readyz", "/sync/status", "/openapi.json", "/cds-services"}
# JSON (not FHIR) documents about patients: errors are OperationOutcomes as everywhere.
_JSON_API = ("/outcomes/", "/cds-services/")
PUBLIC = {"/healthz", "/readyz", "/fhir/metadata", "/openapi.json", "/cds-services"}


def described(rule: Rule) -> bool:
    """Whether a URL rule belongs in the API description."""
    return rule.endpoint not in UNDESCRIBED and not rule.endpoint.startswith(
        UNDESCRIBED_BLUEPRINTS)

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _fhir_content(schema: Schema) -> Schema:
    return {"content": {FHIR_JSON: {"schema": schema}}}


COMPONENTS: Schema = {
    "schemas": {
        "Resource": {
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string"}},
            "additionalProperties": True,
        },
        "OperationOutcome": {
            "type": "object",
            "required": ["resourceType", "issue"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                "issue": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["severity", "code"],
                        "properties": {
                            "severity": {"type": "string",
                                         "enum": ["fatal", "error", "warning", "information"]},
                            "code": {"type": "string"},
                            "diagnostics": {"type": "string"},
                            "expression": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
        "Bundle": {
            "type": "object",
            "required": ["resourceType", "type"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Bundle"]},
                "type": {"type": "string"},
                "total": {"type": "integer", "description": "searchset: present when this "
                          "page holds every match"},
                "link": {"type": "array", "items": {
                    "type": "object", "required": ["relation", "url"],
                    "properties": {"relation": {"type": "string"},
                                   "url": {"type": "string"}}}},
                "entry": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
    "responses": {
        "Error": {"description": "The request was refused (OperationOutcome)",
                  **_fhir_content(_ref("OperationOutcome"))},
        "Unavailable": {"description": "The database is unavailable; retry later",
                        **_fhir_content(_ref("OperationOutcome"))},
    },
}


def _body_types(rule: Rule) -> list[str]:
    if rule.rule.endswith("/$extract") and "<" not in rule.rule:
        return ["QuestionnaireResponse", "Parameters"]
    found = _TYPE.match(rule.rule)
    return [found.group(1)] if found else []


def _search_parameters(resource_type: str, paging: tuple[int, int]) -> list[Schema]:
    if resource_type == "Questionnaire":
        names = sorted(questionnaires.SEARCH)
        control = ["_count", "_format"]
    else:
        names = sorted(PARAMETERS[resource_type])
        control = ["_count", "_format", "_sort"]
    kinds = PARAMETERS.get(resource_type, {})
    params = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
         "description": f"FHIR {kinds[name][0] if name in kinds else 'string'} search parameter"}
        for name in names
    ]
    for name in control:
        param: Schema = {"name": name, "in": "query", "required": False,
                         "schema": {"type": "string"}}
        if name == "_sort":
            param["schema"] = {"type": "string", "enum": ["date", "-date"]}
        if name == "_count" and resource_type != "Questionnaire":
            default, maximum = paging
            param["schema"] = {"type": "integer", "minimum": 1, "maximum": maximum,
                               "default": default}
            param["description"] = ("page size; further pages follow the Bundle's `next` "
                                     "link (400 outside 1 to the maximum)")
        params.append(param)
    if resource_type != "Questionnaire":
        params.append({"name": "_cursor", "in": "query", "required": False,
                       "schema": {"type": "string"},
                       "description": "opaque; only as the Bundle's `next` link gives it "
                                      "(400 if altered, expired or from another search)"})
    return params


def _success(rule: Rule, method: str) -> tuple[str, Schema]:
    if rule.rule == "/metrics":
        return "200", {"description": "Prometheus metrics",
                       "content": {"text/plain": {"schema": {"type": "string"}}}}
    if rule.rule in _PLAIN_JSON or rule.rule.startswith(_JSON_API):
        return "200", {"description": "JSON document (no patient data)",
                       "content": {"application/json": {"schema": {"type": "object"}}}}
    if method == "POST" and rule.rule.startswith("/fhir/") and "$extract" not in rule.rule:
        return "201", {"description": "Created; Location names the new version",
                       **_fhir_content(_ref("Resource"))}
    if "$extract" in rule.rule:
        return "200", {"description": "A transaction Bundle; nothing is stored",
                       **_fhir_content(_ref("Bundle"))}
    if not rule.arguments and _TYPE.match(rule.rule):
        return "200", {"description": "searchset Bundle", **_fhir_content(_ref("Bundle"))}
    return "200", {"description": "The resource", **_fhir_content(_ref("Resource"))}


def _operation(app: Flask, rule: Rule, method: str) -> Schema:
    status, success = _success(rule, method)
    responses: Schema = {status: success}
    if rule.endpoint == "responses.create":
        responses["200"] = {"description": "Already stored under this identifier (a retry): "
                                           "the stored response", **_fhir_content(_ref("Resource"))}
    if rule.rule.startswith("/fhir/") or rule.rule.startswith(_JSON_API):
        responses["4XX"] = {"$ref": "#/components/responses/Error"}
        responses["503"] = {"$ref": "#/components/responses/Unavailable"}
    elif rule.rule == "/readyz":
        responses["503"] = {"description": "Not ready: names what is not",
                            "content": {"application/json": {"schema": {"type": "object"}}}}
    op: Schema = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": (app.view_functions[rule.endpoint].__doc__ or rule.endpoint)
        .strip().splitlines()[0],
        "responses": responses,
    }
    if rule.rule in PUBLIC:
        op["security"] = []
    params = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[^/]+$"}}
        for name in sorted(rule.arguments)
    ]
    found = _TYPE.match(rule.rule)
    if method == "GET" and found and not rule.arguments:
        paging = (app.config["SEARCH_DEFAULT_COUNT"], app.config["SEARCH_MAX_COUNT"])
        params += _search_parameters(found.group(1), paging)
    if params:
        op["parameters"] = params
    if method == "POST" and rule.rule.startswith("/cds-services/"):
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["hook", "hookInstance", "context"],
            "properties": {"hook": {"type": "string"}, "hookInstance": {"type": "string"},
                           "context": {"type": "object"}},
            "additionalProperties": True}}}}
    if method == "POST" and (types := _body_types(rule)) and not rule.arguments:
        op["requestBody"] = {
            "required": True,
            **_fhir_content({
                "type": "object",
                "required": ["resourceType"],
                "properties": {"resourceType": {"type": "string", "enum": types}},
                "additionalProperties": True,
            }),
        }
    if method == "PUT" and (types := _body_types(rule)):
        op["requestBody"] = {"required": True, **_fhir_content({
            "type": "object", "required": ["resourceType", "id"],
            "properties": {"resourceType": {"type": "string", "enum": types},
                           "id": {"type": "string"}},
            "additionalProperties": True})}
        op["parameters"] = [*op.get("parameters", []), {
            "name": "If-Match", "in": "header", "required": True,
            "schema": {"type": "string", "pattern": '^W/"[0-9]+"$'},
            "description": "the ETag of the version changed (412 when it is not the current "
                           "one, or missing)"}]
        responses["200"]["description"] = "The resource as updated (ETag: its version)"
    return op


def build(app: Flask) -> Schema:
    """The OpenAPI document for every URL rule of `app` (HEAD and OPTIONS left implicit)."""
    paths: dict[str, Schema] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not described(rule):
            continue
        path = _ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(app, rule, method)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "mit-fhir", "version": version("mit-fhir"),
                 "description": "FHIR R4 (4.0.1) service for Metacognitive Interpersonal "
                                "Therapy instruments, scores and plans."},
        "paths": paths,
        "components": {**COMPONENTS, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "A JWT of the configured issuer with SMART scopes "
                           "(not needed in development mode)"}}},
        "security": [{"bearer": []}],
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """The service's OpenAPI 3 description."""
    doc = current_app.extensions.get(_CACHE)
    if doc is None:
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        doc = app.extensions[_CACHE] = build(app)
    return jsonify(doc)
