"""Search paging: the page size (`_count`) and the opaque keyset cursor of `Bundle.link` next.

A cursor names where the previous page ended, its last row's (sort value, id), never an offset:
rows inserted between two pages cannot shift the next page, so nothing that existed when a page
was read is skipped or repeated. https://hl7.org/fhir/R4/http.html#paging

The cursor carries a digest of the search's own criteria (after the token's patient context was
applied) and is refused unless the request's criteria give the same digest: a cursor replayed
with other parameters, or by a token of another patient, is a 400. It is validated, not signed:
it only says where to resume inside results the request's own criteria and token already allow,
so a forged position reaches nothing more than paging would; a key shared by every worker and
replica would be one more secret to deploy for no protection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from mit_fhir.errors import InvalidRequest
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.vocabulary import FHIR_ID

# How long a cursor stays usable. A sync client asks for the next page within seconds; an hour
# covers a clinician who leaves a list open. A stale link then restarts from page 1 instead of
# resuming from a position whose meaning may have changed (a release that changed sorting).
CURSOR_SECONDS = 3600
_CLOCK_SKEW = 60  # seconds a cursor's issue time may lie ahead (workers on other hosts)
_VERSION = 1
_MAX_CURSOR = 512  # characters; a real cursor is about 150
_ID = FHIR_ID
_SORT_VALUE_MAX = 40  # the width of the stored sort columns


@dataclass(frozen=True)
class Position:
    """Where a page ended: its last resource's sort value and (tiebreaker) id."""

    sort_value: str
    id: str


def page_size(values: Sequence[str], default: int, maximum: int) -> int:
    """The `_count` of a search: `default` when absent; 400 unless one integer in 1..maximum.

    `_count=0` (FHIR's "only the total") is refused: this service counts matches only where
    it already holds them all (see `searchset`), and counting a whole audit trail is the
    unbounded read paging exists to avoid.
    """
    if not values:
        return default
    if len(values) > 1:
        raise InvalidRequest("_count may be given once")
    text = values[0]  # not stripped: " 1" is no more a count than "1 "
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise InvalidRequest(f"_count must be a whole number from 1 to {maximum}")
    count = int(text)
    if not 1 <= count <= maximum:
        raise InvalidRequest(f"_count must be a whole number from 1 to {maximum}")
    return count


def search_digest(resource_type: str, criteria: Sequence[Criterion], sort: str | None) -> str:
    """A digest of what a search selects and how it is ordered (not of its page size)."""
    canonical = sorted([c.name, c.op, list(c.values)] for c in criteria)
    data = orjson.dumps([resource_type, sort, canonical])
    return hashlib.sha256(data).hexdigest()[:32]


def encode_cursor(digest: str, position: Position, now: float | None = None) -> str:
    """The opaque `_cursor` value that resumes a search after `position` (base64url JSON)."""
    payload = {"v": _VERSION, "q": digest, "k": position.sort_value, "i": position.id,
               "t": int(time.time() if now is None else now)}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode("ascii")


def decode_cursor(values: Sequence[str], digest: str, now: float | None = None) -> Position | None:
    """The position a request's `_cursor` resumes after (None without one); 400 if it is
    malformed, expired, or was issued for another search."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("_cursor may be given once")
    issued_for, position, issued = _payload(values[0])
    if issued_for != digest:
        raise InvalidRequest("_cursor belongs to another search; start again without it")
    clock = time.time() if now is None else now
    if issued > clock + _CLOCK_SKEW or clock - issued > CURSOR_SECONDS:
        raise InvalidRequest("_cursor has expired; start the search again without it")
    return position


def _payload(text: str) -> tuple[str, Position, int]:
    """The cursor's digest, position and issue time, each of the type and form
    `encode_cursor` writes, or a 400."""
    invalid = InvalidRequest("_cursor is not a cursor this service issued")
    if not text or len(text) > _MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        raise invalid from None
    if not isinstance(payload, dict) or set(payload) != {"v", "q", "k", "i", "t"}:
        raise invalid
    ok = (payload["v"] == _VERSION and isinstance(payload["q"], str)
          and isinstance(payload["k"], str) and len(payload["k"]) <= _SORT_VALUE_MAX
          and isinstance(payload["i"], str) and _ID.fullmatch(payload["i"]) is not None
          and type(payload["t"]) is int)
    if not ok:
        raise invalid
    return payload["q"], Position(payload["k"], payload["i"]), payload["t"]
