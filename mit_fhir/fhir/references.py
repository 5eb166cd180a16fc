"""The one grammar of references this service accepts: a reference string becomes (type, id).

Every place that needs to know which resource (and so which patient) a reference names asks
`parse()`; nothing else splits reference strings, so the guard sees what the search looks up.
Accepted, https://hl7.org/fhir/R4/references.html#literal :

    Type/id                      a relative literal reference, id a FHIR id (matched whole)
    id                           only where the parameter's target type is fixed (patient=123)
    {base}/Type/id               an absolute URL on the service's own base, when one is given

Everything else is refused with BadReference (the project's 400, and a ValueError): other bases,
versions (`_history`, which a search value cannot usefully carry and a subject need not), query
and fragment characters, dot segments, whitespace and control characters (a trailing newline
too: patterns are matched whole, never with `$`), percent signs (Werkzeug decodes a query once;
a `%` left after that is an encoded separator or a double encoding), letters outside ASCII
(look-alike slashes and Cyrillic letters) and empty parts. Type names are case-sensitive, as
FHIR defines them: `patient/1` and `PATIENT/1` name no Patient.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NamedTuple

from mit_fhir.errors import InvalidRequest
from mit_fhir.vocabulary import FHIR_ID, RESOURCE_TYPE

_RELATIVE = re.compile(rf"(?P<type>{RESOURCE_TYPE.pattern})/(?P<id>{FHIR_ID.pattern})")
MAX_LENGTH = 512  # a base URL and Type/id; longer values are no reference of ours


class BadReference(InvalidRequest, ValueError):
    """400: the text is not a reference this service accepts; the message quotes none of it.

    A ValueError too, so that the search's parameter parser collects it with its other issues.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Reference(NamedTuple):
    """A parsed reference: resource type and id."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}/{self.id}"


def is_fhir_id(text: object) -> bool:
    """Whether `text` is a FHIR id (the whole string, not a prefix of it)."""
    return isinstance(text, str) and FHIR_ID.fullmatch(text) is not None and text not in (".", "..")


def parse(text: object, types: Collection[str] | None = None, base: str | None = None) -> Reference:
    """The (type, id) `text` names, or BadReference.

    `types`: the types the reference may name (None: any); when it holds exactly one type a bare
    id names that type. `base`: the service's own FHIR base URL, under which absolute URLs are
    accepted (None: absolute URLs are refused).
    """
    if not isinstance(text, str) or not text:
        raise BadReference("the reference is empty or not a string")
    if len(text) > MAX_LENGTH:
        raise BadReference(f"the reference is longer than {MAX_LENGTH} characters")
    if not text.isascii() or not text.isprintable() or any(c in text for c in " %?#,\\"):
        raise BadReference("the reference holds characters no reference of this service has")
    rest = text
    if base and text.startswith(base.rstrip("/") + "/"):
        rest = text[len(base.rstrip("/")) + 1:]
    found = _RELATIVE.fullmatch(rest)
    if found is not None:
        ref = Reference(found["type"], found["id"])
    elif types is not None and len(types) == 1 and FHIR_ID.fullmatch(rest):
        ref = Reference(next(iter(types)), rest)
    else:
        raise BadReference(_why(rest, types, base))
    if ref.id in (".", ".."):
        raise BadReference("a dot segment is not a resource id")
    if types is not None and ref.type not in types:
        raise BadReference(f"the reference must name a {' or '.join(sorted(types))}")
    return ref


def _why(rest: str, types: Collection[str] | None, base: str | None) -> str:
    if "://" in rest or rest.startswith("//"):
        return ("an absolute reference must be on this service's base URL" if base
                else "an absolute reference is not accepted here")
    if "/_history/" in rest:
        return "a versioned reference (_history) is not accepted here"
    if types is not None and len(types) == 1:
        return f"the reference must be {next(iter(types))}/<id> or <id>, id a FHIR id"
    return "the reference must be Type/<id>, id a FHIR id"


def reference_type(text: object) -> str | None:
    """The type a relative reference of the grammar names, or None for anything else."""
    try:
        return parse(text).type if isinstance(text, str) else None
    except BadReference:
        return None


def patient_id(text: object) -> str | None:
    """The id of the Patient a relative reference names, or None for anything else."""
    try:
        return parse(text, ("Patient",)).id if isinstance(text, str) and "/" in text else None
    except BadReference:
        return None


# The element naming the Patient a resource is about: `subject`, but `for` on a Task.
PATIENT_ELEMENT = {"Task": "for"}


def patient_reference(resource: dict[str, object]) -> str | None:
    """The reference text of the element naming the resource's patient (subject, Task.for),
    unparsed; None when the element is missing or holds no reference string."""
    element = resource.get(PATIENT_ELEMENT.get(str(resource.get("resourceType")), "subject"))
    ref = element.get("reference") if isinstance(element, dict) else None
    return ref if isinstance(ref, str) else None


def resource_patient(resource: dict[str, object]) -> str | None:
    """The id of the Patient a resource belongs to (patient_reference, parsed), or None."""
    return patient_id(patient_reference(resource))
