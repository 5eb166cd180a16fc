"""Request parsing and FHIR JSON responses shared by the HTTP layer (api, ui, security)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app, request

from mit_fhir.errors import InvalidRequest, PreconditionFailed, UnsupportedMediaType
from mit_fhir.vocabulary import ACCEPTED_JSON, FHIR_JSON

# Deepest JSON nesting accepted. The deepest catalogue form nests a few items (each item level is
# two or three JSON levels); far deeper bodies would exhaust the FHIR models' recursion (a 500).
MAX_DEPTH = 100


def fhir_response(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A FHIR JSON response (application/fhir+json; charset=utf-8)."""
    resp = Response(orjson.dumps(resource), status=status, headers=headers or {})
    resp.content_type = f"{FHIR_JSON}; charset=utf-8"
    return resp


def read_resource(expected: str | tuple[str, ...]) -> dict[str, Any]:
    """The request body as a FHIR resource of the expected type, or a 4xx FhirError."""
    mimetype = request.mimetype
    if mimetype not in ACCEPTED_JSON:
        raise UnsupportedMediaType(
            f"Content-Type must be {FHIR_JSON} (or application/json), not '{mimetype or 'none'}'"
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("FHIR JSON must be UTF-8")
    body = request.get_data(cache=True)  # Werkzeug enforces MAX_CONTENT_LENGTH here (413)
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {_position(exc)}") from None
    if not isinstance(resource, dict):
        raise InvalidRequest("the body must be a JSON object (a FHIR resource)")
    if _depth(resource) > MAX_DEPTH:
        raise InvalidRequest(f"the body nests deeper than {MAX_DEPTH} levels")
    wanted = (expected,) if isinstance(expected, str) else expected
    if resource.get("resourceType") not in wanted:
        raise InvalidRequest(
            f"resourceType must be {' or '.join(wanted)}, "
            f"not '{str(resource.get('resourceType'))[:64]}'"
        )
    return resource


def _depth(value: Any) -> int:
    """The nesting depth of a JSON value (iterative: a deep body cannot exhaust the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


def _position(exc: orjson.JSONDecodeError) -> str:
    # The message carries a position only, never the document's content.
    return f"line {exc.lineno}, column {exc.colno}"


def base_url() -> str:
    """The service's public FHIR base URL (configured, else from the request)."""
    configured = current_app.config.get("BASE_URL")
    return (configured or request.host_url.rstrip("/") + "/fhir").rstrip("/")


def searchset(resources: list[dict[str, Any]], next_url: str | None = None,
              complete: bool = True) -> dict[str, Any]:
    """A searchset Bundle of the matches, with a `next` link when more pages follow.

    `total` is given only when `complete` (this page holds every match: the first page with no
    next): it is then free. Counting the matches of a long search would cost as much as reading
    them all, which is what paging avoids; FHIR makes `total` optional for that reason.
    """
    base = base_url()
    links = [{"relation": "self", "url": request.url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if complete and next_url is None:
        bundle["total"] = len(resources)
    bundle["link"] = links
    bundle["entry"] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return bundle


def if_match_version(what: str) -> int:
    """The version an update's If-Match names (W/"3" or "3"): required, since every update is
    versioned (412 when absent, naming `what`), 400 when it is no version of ours."""
    header = request.headers.get("If-Match", "").strip()
    if not header:
        raise PreconditionFailed(f"an update of {what} needs If-Match with its current ETag")
    text = header.removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 9:
        raise InvalidRequest('If-Match must be an ETag such as W/"1"')
    return int(text)
