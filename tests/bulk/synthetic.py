"""SYNTHETIC QuestionnaireResponses for the bulk tests and benchmark 5 (random answers)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from mit_fhir.fhir.enable_when import enabled
from mit_fhir.fhir.items import walk_items
from mit_fhir.fhir.validate import collect_answers
from mit_fhir.paths import QUESTIONNAIRE_DIR
from tests.fhir.test_scoring import INSTRUMENTS, random_response

START = datetime(2019, 1, 1, tzinfo=UTC)


def form(qid: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((QUESTIONNAIRE_DIR / f"{qid}.json").read_bytes())
    return data


def synthetic_response(questionnaire: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Random answers to every enabled item of a catalogue form."""
    qr = random_response(questionnaire, rng, skip=0.0)
    qr["questionnaire"] = questionnaire["url"]
    by_link = {item["linkId"]: item for item in walk_items(questionnaire["item"])}
    while True:  # drop answers to items their enableWhen disables, until nothing changes
        answers = collect_answers(qr["item"])
        kept = [i for i in qr["item"] if enabled(by_link[i["linkId"]], answers)]
        if len(kept) == len(qr["item"]):
            return qr
        qr["item"] = kept


def responses(count: int, patients: int, seed: str = "bulk",
              instruments: Sequence[str] = INSTRUMENTS) -> Iterator[dict[str, Any]]:
    """`count` responses for `patients` made-up patients at random (unsorted) minutes of six
    years; every second one carries an identifier."""
    rng = random.Random(seed)
    forms = {qid: form(qid) for qid in instruments}
    for n in range(count):
        qr = synthetic_response(forms[rng.choice(list(instruments))], rng)
        qr["id"] = f"synthetic-{n}"
        qr["subject"] = {"reference": f"Patient/synthetic-{rng.randrange(patients)}"}
        when = START + timedelta(minutes=rng.randrange(6 * 365 * 24 * 60))
        qr["authored"] = when.isoformat().replace("+00:00", "Z")
        if n % 2:
            qr["identifier"] = {"system": "urn:synthetic:bulk", "value": f"{seed}-{n}"}
        yield qr


def write_ndjson(path: Path, resources: Iterator[dict[str, Any]] | Sequence[Any]) -> Path:
    """One JSON value per line (dicts are dumped; bytes and str lines are written as given)."""
    with path.open("wb") as out:
        for res in resources:
            if isinstance(res, bytes):
                out.write(res + b"\n")
            elif isinstance(res, str):
                out.write(res.encode() + b"\n")
            else:
                out.write(orjson.dumps(res) + b"\n")
    return path
