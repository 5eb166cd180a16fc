"""Scoring a response for a patient: extraction plus change flags against earlier scores."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from mit_fhir import metrics, vocabulary
from mit_fhir.fhir import change
from mit_fhir.fhir.criteria import Criterion
from mit_fhir.fhir.extract import Extraction, extract
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.fhir.search import date_key
from mit_fhir.fhir.site_forms import SiteQuestionnaire, plan_for
from mit_fhir.psychometrics import reliable_change as rc
from mit_fhir.psychometrics.parameters import ParameterSet
from mit_fhir.store import repository

Resource = dict[str, Any]
# (connection, patient reference, coding, before) -> (baseline, previous), as `history` below.
HistoryLookup = Callable[[Connection, str, Resource, str], tuple[Resource | None, Resource | None]]


# Plans of catalogue forms are kept (bounded, so that no sequence of calls grows it without
# end). A request-supplied form's plan is built per request: its expressions' compilations
# are what costs (~140 ms for LHC-Forms' PHQ-9), and fhirpath keeps those, by their text.
CATALOGUE_PLANS = 256


class _Lru:
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, ScoringPlan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> ScoringPlan | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: Any, plan: ScoringPlan) -> None:
        with self._lock:
            self._items[key] = plan
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Scorer:
    """Owns the compiled scoring plans and the psychometric parameters of one application."""

    def __init__(self, parameters: ParameterSet, method: str | None = None) -> None:
        self.parameters = parameters
        self.method = rc.Method(method) if method else None
        self._plans = _Lru(CATALOGUE_PLANS)

    def plan(self, questionnaire: Resource) -> ScoringPlan:
        """The compiled plan: catalogue forms by identity, request-supplied ones by content."""
        if isinstance(questionnaire, SiteQuestionnaire):
            return plan_for(questionnaire)
        # The catalogue's dicts live as long as the app; the identity check below guards
        # against an id reused by a dict that is not the one cached.
        key = (questionnaire.get("url"), questionnaire.get("version"), id(questionnaire))
        found = self._plans.get(key)
        if found is None or found.questionnaire is not questionnaire:
            found = ScoringPlan(questionnaire)
            if questionnaire.get("url"):
                self._plans.put(key, found)
        return found

    def cached_plans(self) -> int:
        """How many compiled plans the scorer holds."""
        return len(self._plans)

    @metrics.EXTRACTION_SECONDS.time()
    def observations(
        self,
        conn: Connection,
        qr: Resource,
        questionnaire: Resource,
        qr_ref: Resource | None,
        new_id: Callable[[], str] = repository.new_id,
        lookup: HistoryLookup | None = None,
    ) -> Extraction | None:
        """Extract the response's scores and flag each against the patient's history.

        `lookup` replaces the database query for the earlier scores (the bulk import keeps a
        patient's history in memory while it stores their responses in date order).
        """
        extraction = extract(qr, questionnaire, self.plan(questionnaire), qr_ref, new_id)
        if extraction is None:
            return None
        patient = qr["subject"]["reference"]
        effective = date_key(qr["authored"])
        if effective is None:
            return extraction
        first_codings = [c[0] for o, _ in extraction.members if (c := o["code"].get("coding"))]
        # The bulk import's in-memory lookup, else one search for all of this response's scores,
        # after any concurrent submission for the patient has committed (its scores count).
        if lookup is None:
            repository.serialize(conn, f"scores:{patient}")
        earlier = {} if lookup else histories(conn, patient, first_codings, effective)
        for obs, score in extraction.members:
            codings = obs["code"].get("coding") or []
            if not codings:
                continue
            if lookup is not None:
                baseline, previous = lookup(conn, patient, codings[0], effective)
            else:
                baseline, previous = earlier[vocabulary.token(codings[0])]
            if "valueCodeableConcept" in obs:
                change.band_change(obs, score, baseline, previous)
                continue
            params = self._score_parameters(questionnaire, score.item.link_id)
            if params is None or "valueQuantity" not in obs:
                continue
            method = self.method or params.default_method
            try:
                change.reliable_change(obs, params, rc.Method(method), baseline, previous)
            except rc.ParameterError:
                # The data file lacks a number this score needs (a site can supply it), or the
                # method needs group statistics one patient's series cannot give (Hsu-Lin-Lord,
                # Hageman-Arrindell): the score goes out without a change verdict.
                continue
        return extraction

    def _score_parameters(self, questionnaire: Resource, link_id: str) -> Any:
        qid = questionnaire.get("id")
        if not qid or qid not in self.parameters.instruments():
            return None
        try:
            return self.parameters.get(qid, link_id)
        except rc.ParameterError:
            return None


def history(
    conn: Connection, patient: str, coding: Resource, before: str
) -> tuple[Resource | None, Resource | None]:
    """The patient's earliest and latest final Observation of this code strictly before `before`."""
    return histories(conn, patient, [coding], before)[vocabulary.token(coding)]


def histories(
    conn: Connection, patient: str, codings: list[Resource], before: str
) -> dict[str, tuple[Resource | None, Resource | None]]:
    """`history` of several codes (keyed "system|code") in one search, not one per score."""
    tokens = list(dict.fromkeys(vocabulary.token(c) for c in codings))
    series: dict[str, list[Resource]] = {t: [] for t in tokens}
    if tokens:
        crit = [
            Criterion("patient", "eq", (patient,)),
            Criterion("code", "eq", tuple(tokens)),
            Criterion("date", "lt", (before,)),
            Criterion("status:code", "eq", ("final",)),
        ]
        for o in repository.search(conn, "Observation", crit, sort="date"):
            if "valueQuantity" not in o and "valueCodeableConcept" not in o:
                continue
            for token in dict.fromkeys(vocabulary.token(c) for c in o["code"].get("coding") or ()):
                if token in series:
                    series[token].append(o)
    return {t: (found[0], found[-1]) if found else (None, None) for t, found in series.items()}
