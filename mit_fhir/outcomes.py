"""Scoring a response for a patient: extraction plus change flags against earlier scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from mit_fhir import metrics
from mit_fhir.fhir import change
from mit_fhir.fhir.extract import Extraction, extract
from mit_fhir.fhir.scoring import ScoringPlan
from mit_fhir.fhir.search import date_key
from mit_fhir.scoring import reliable_change as rc
from mit_fhir.scoring.parameters import ParameterSet
from mit_fhir.store import repository
from mit_fhir.store.repository import Criterion

Resource = dict[str, Any]
# (connection, patient reference, coding, before) -> (baseline, previous), as `history` below.
HistoryLookup = Callable[[Connection, str, Resource, str], tuple[Resource | None, Resource | None]]


class Scorer:
    """Owns the compiled scoring plans and the psychometric parameters of one application."""

    def __init__(self, parameters: ParameterSet, method: str | None = None) -> None:
        self.parameters = parameters
        self.method = rc.Method(method) if method else None
        self._plans: dict[tuple[str | None, str | None, int], ScoringPlan] = {}

    def plan(self, questionnaire: Resource) -> ScoringPlan:
        """The compiled plan, cached for catalogue forms (keyed by url, version and identity)."""
        key = (questionnaire.get("url"), questionnaire.get("version"), id(questionnaire))
        found = self._plans.get(key)
        if found is None or found.questionnaire is not questionnaire:
            found = ScoringPlan(questionnaire)
            if questionnaire.get("url"):
                self._plans[key] = found
        return found

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
        for obs, score in extraction.members:
            codings = obs["code"].get("coding") or []
            if not codings or effective is None:
                continue
            baseline, previous = (lookup or history)(conn, patient, codings[0], effective)
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
    crit = [
        Criterion("patient", "eq", (patient,)),
        Criterion("code", "eq", (f"{coding.get('system', '')}|{coding['code']}",)),
        Criterion("date", "lt", (before,)),
        Criterion("status:code", "eq", ("final",)),
    ]
    earlier = [
        o
        for o in repository.search(conn, "Observation", crit, sort="date")
        if "valueQuantity" in o or "valueCodeableConcept" in o
    ]
    if not earlier:
        return None, None
    return earlier[0], earlier[-1]
