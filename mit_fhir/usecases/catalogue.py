"""The catalogue: Questionnaires read from questionnaires/ plus wording a licensed site loaded."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from mit_fhir.errors import Issue, Unprocessable
from mit_fhir.fhir.alerts import mark_problems
from mit_fhir.fhir.items import walk_items
from mit_fhir.store.repository import now_instant
from mit_fhir.store.schema import licensed_wording
from mit_fhir.vocabulary import EXT_LICENSED_TEXT_SLOT, extension

Questionnaire = dict[str, Any]


def licensed_slots(questionnaire: Questionnaire) -> list[str]:
    """The linkIds whose wording is a licensed-text slot."""
    return [
        it["linkId"]
        for it in walk_items(questionnaire.get("item", []))
        if (ext := extension(it, EXT_LICENSED_TEXT_SLOT)) and ext.get("valueBoolean")
    ]


@dataclass
class Catalogue:
    """The Questionnaires the service serves, by id and by canonical URL."""

    by_id: dict[str, Questionnaire] = field(default_factory=dict)

    @classmethod
    def from_directory(cls, directory: Path) -> Catalogue:
        cat = cls()
        for path in sorted(directory.glob("*.json")):
            q = orjson.loads(path.read_bytes())
            if q.get("resourceType") != "Questionnaire" or q.get("id") != path.stem:
                raise ValueError(f"{path.name}: not a Questionnaire whose id is its file name")
            if problems := mark_problems(q):
                raise ValueError(f"{path.name}: " + "; ".join(
                    f"item '{link_id}': {problem}" for link_id, problem in problems))
            cat.by_id[q["id"]] = q
        return cat

    def get(self, qid: str) -> Questionnaire | None:
        return self.by_id.get(qid)

    def resolve(self, canonical: str) -> Questionnaire | None:
        """The Questionnaire a `QuestionnaireResponse.questionnaire` canonical points at."""
        url, _, version = canonical.partition("|")
        for q in self.by_id.values():
            if q.get("url") == url and (not version or q.get("version") == version):
                return q
        # A relative reference "Questionnaire/<id>" is common from simple clients.
        if url.startswith("Questionnaire/"):
            found = self.by_id.get(url.removeprefix("Questionnaire/"))
            if found and (not version or found.get("version") == version):
                return found
        return None

    def __iter__(self) -> Iterator[Questionnaire]:
        return iter(self.by_id.values())


def with_wording(conn: Connection, questionnaire: Questionnaire) -> Questionnaire:
    """A copy of the Questionnaire with any wording the site loaded put into its slots."""
    rows = conn.execute(
        select(licensed_wording.c.link_id, licensed_wording.c.language, licensed_wording.c.text)
        .where(licensed_wording.c.questionnaire_id == questionnaire["id"])
    ).all()
    if not rows:
        return questionnaire
    lang = questionnaire.get("language", "en")
    texts = {(r.link_id, r.language): r.text for r in rows}
    served = copy.deepcopy(questionnaire)
    for item in walk_items(served.get("item", [])):
        main = texts.get((item["linkId"], lang))
        if main is not None:
            item["text"] = main
        others = [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/translation",
                "extension": [
                    {"url": "lang", "valueCode": language},
                    {"url": "content", "valueString": text},
                ],
            }
            for (link_id, language), text in sorted(texts.items())
            if link_id == item["linkId"] and language != lang
        ]
        if others:
            item.setdefault("_text", {}).setdefault("extension", []).extend(others)
    return served


def load_wording(
    conn: Connection, questionnaire: Questionnaire, texts: dict[str, str], language: str
) -> int:
    """Replace the site's wording for one language; only licensed-text slots accept text."""
    slots = set(licensed_slots(questionnaire))
    issues = [
        Issue(f"linkId '{link_id}' is not a licensed-text slot of '{questionnaire['id']}'")
        for link_id in texts
        if link_id not in slots
    ] + [Issue(f"linkId '{k}': empty text") for k, v in texts.items() if not v.strip()]
    if issues:
        raise Unprocessable("wording rejected", issues)
    conn.execute(
        delete(licensed_wording).where(
            licensed_wording.c.questionnaire_id == questionnaire["id"],
            licensed_wording.c.language == language,
        )
    )
    stamp = now_instant()
    if texts:
        conn.execute(
            licensed_wording.insert(),
            [
                {
                    "questionnaire_id": questionnaire["id"],
                    "link_id": k,
                    "language": language,
                    "text": v.strip(),
                    "loaded_at": stamp,
                }
                for k, v in texts.items()
            ],
        )
    return len(texts)
