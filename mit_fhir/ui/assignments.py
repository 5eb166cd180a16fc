"""The assignments page's data: a patient's Tasks and schedules worded, and what it posts read.

Pure: no Flask, no store. Tasks are read with fhir/task.py; schedule CarePlans in the shape
CONTRACT.md fixes (one activity per form, `detail.instantiatesCanonical`,
`detail.scheduledTiming.repeat` with boundsPeriod, count, period and periodUnit). Refusals of
what the page posts are message keys of i18n.WORDS, so the page says them in its language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mit_fhir.fhir import schedule
from mit_fhir.fhir import task as sdc
from mit_fhir.fhir.extract import data_source_tags
from mit_fhir.ui import i18n
from mit_fhir.usecases.catalogue import Catalogue

Resource = dict[str, Any]
UNITS = ("wk", "mo")  # what the page offers; a schedule in days is the API's business
MAX_EVERY = 99  # a larger number is a typing slip, not a cadence


def title(catalogue: Catalogue, canonical: str | None, lang: str) -> str:
    """The form's title in `lang` (its own language where it has no translation)."""
    found = catalogue.resolve(canonical) if canonical else None
    if found is None:
        return canonical or "?"
    shown = i18n.translated({k: found.get(k) for k in ("title", "_title", "language")}, lang) \
        if lang in i18n.languages(found) else found
    return str(shown.get("title") or found["id"])


def title_lang(catalogue: Catalogue, canonical: str | None, lang: str) -> str:
    """The language title() shows the form's title in (for the page's `lang` attributes)."""
    found = catalogue.resolve(canonical) if canonical else None
    own = str((found or {}).get("language", "en"))
    return lang if found is not None and lang in i18n.languages(found) else own


def synthetic(resource: Resource) -> bool:
    """Demo data: tagged `synthetic` in the data-source CodeSystem, as the outcomes page reads."""
    return any(t.get("code") == "synthetic" for t in data_source_tags(resource))


def _day(text: str | None) -> str | None:
    return text[:10] if text else None


def task_rows(tasks: list[Resource], catalogue: Catalogue, lang: str,
              now: datetime) -> list[Resource]:
    """The Tasks as the page lists them: open ones first (soonest due first), then the rest
    (most recently changed first)."""
    words = i18n.words(lang)
    rows = []
    for task in tasks:
        patient = (task.get("for") or {}).get("reference")
        status = str(task.get("status"))
        open_ = sdc.is_open(task)
        execution = task.get("executionPeriod") or {}
        rows.append({
            "id": task["id"], "form": title(catalogue, sdc.questionnaire_of(task), lang),
            "formLang": title_lang(catalogue, sdc.questionnaire_of(task), lang),
            "status": status, "statusText": words["task_status"].get(status, status),
            "open": open_, "due": _day(sdc.due(task)), "overdue": sdc.overdue(task, now),
            "owner": "patient" if (task.get("owner") or {}).get("reference") == patient
            else "clinician",
            "done": _day(execution.get("end")) if status == "completed" else None,
            "closed": _day(execution.get("end") or task.get("lastModified"))
            if not open_ else None,
            "reason": (task.get("statusReason") or {}).get("text"),
            "scheduled": any(str(b.get("reference", "")).startswith("CarePlan/")
                             for b in task.get("basedOn") or ()),
            "changed": task.get("lastModified") or task.get("authoredOn") or "",
            "synthetic": synthetic(task),
        })
    open_rows = sorted((r for r in rows if r["open"]), key=lambda r: r["due"] or "9999")
    closed = sorted((r for r in rows if not r["open"]), key=lambda r: r["changed"],
                    reverse=True)
    return open_rows + closed


def cadence(every: int, unit: str, lang: str, count: int | None = None) -> str:
    """ "every 3 months", "every week"; with a count "twice, 79 weeks apart" (in `lang`)."""
    words = i18n.words(lang)
    if count is not None:
        times = words["times_n"]
        said = times["one"] if count == 1 else times["two"] if count == 2 else \
            str(times["many"]).format(n=count)
        if count == 1:
            return str(said)
        gap = words["gaps"][unit]
        return str(words["count_cadence"]).format(
            times=said, gap=gap["one"] if every == 1 else str(gap["many"]).format(n=every))
    names = words["units"][unit]
    if every == 1:
        return str(names["one"])
    return str(names["many"]).format(n=every)


def _cadences(found: list[tuple[int, schedule.Activity, str]], catalogue: Catalogue,
              lang: str) -> str:
    """The cadence of each form: one phrase when all share it, else "forms: cadence; ..."."""
    said: dict[str, list[str]] = {}
    for _, activity, _ in found:
        phrase = cadence(activity.every, activity.unit, lang, activity.count)
        said.setdefault(phrase, []).append(title(catalogue, activity.questionnaire, lang))
    if len(said) == 1:
        return next(iter(said))
    return "; ".join(str(i18n.words(lang)["cadence_of"]).format(forms=", ".join(forms),
                                                              cadence=phrase)
                     for phrase, forms in said.items())


def schedule_rows(plans: list[Resource], catalogue: Catalogue, lang: str,
                  now: datetime) -> list[Resource]:
    """One row per schedule CarePlan: its forms, each form's cadence in words, first date,
    until, the next occurrence and its status."""
    words = i18n.words(lang)
    rows = []
    for plan in plans:
        try:
            found = schedule.activities(plan)
        except schedule.ScheduleError:
            continue  # not one this page made or can read: the FHIR API shows it as it is
        forms, titles = [], []
        for _, activity, status in found:
            name = title(catalogue, activity.questionnaire, lang)
            forms.append(words["activity_cancelled"].format(form=name)
                         if status == schedule.CANCELLED else name)
            # Each title in the language it is shown in (an untranslated one stays English).
            titles.append({"title": name, "lang": title_lang(catalogue, activity.questionnaire,
                                                             lang),
                           "stopped": status == schedule.CANCELLED})
        ends = [a.end for _, a, _ in found if a.end is not None]
        counts = [a.count for _, a, _ in found if a.count is not None]
        if ends:
            until = words["until_date"].format(date=max(ends).isoformat())
        elif counts:
            until = words["until_count"].format(n=max(counts))
        else:
            until = words["until_none"]
        upcoming = [n for _, a in schedule.running(plan) if (n := a.next_after(now))]
        status = str(plan.get("status"))
        rows.append({"id": plan["id"], "forms": ", ".join(forms), "titles": titles,
                     "cadence": _cadences(found, catalogue, lang),
                     "start": min(a.start for _, a, _ in found).isoformat(),
                     "until": until, "next": min(upcoming).date().isoformat()
                     if upcoming else None, "status": status,
                     "statusText": words["plan_status"].get(status, status),
                     "active": status == schedule.RUNNING, "synthetic": synthetic(plan)})
    return rows


class Refused(Exception):
    """What the page posted cannot be done: message keys, and the fields they concern."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(", ".join(key for key, _ in problems))
        self.problems = problems


@dataclass(frozen=True)
class Once:
    forms: list[str]
    due: date


@dataclass(frozen=True)
class Repeating:
    forms: list[str]
    every: int
    unit: str
    start: date
    end: date | None
    count: int | None


def _forms(body: Resource, catalogue: Catalogue, problems: list[tuple[str, str]]) -> list[str]:
    forms = body.get("forms")
    if not isinstance(forms, list) or not forms:
        problems.append(("choose_form", "forms"))
        return []
    if not all(isinstance(f, str) and catalogue.get(f) is not None for f in forms):
        problems.append(("no_such_form", "forms"))
        return []
    return list(dict.fromkeys(forms))


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _whole(value: Any, low: int, high: int) -> int | None:
    # JSON true is not 1 time; "3" from a number field that a script sent as text is 3.
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and low <= value <= high else None


def read_once(body: Any, catalogue: Catalogue, today: date) -> Once:
    """A one-off assignment (forms, due date), or Refused."""
    body = body if isinstance(body, dict) else {}
    problems: list[tuple[str, str]] = []
    forms = _forms(body, catalogue, problems)
    due = _date(body.get("due"))
    if due is None:
        problems.append(("due_invalid", "due"))
    elif due < today:
        problems.append(("due_past", "due"))
    if problems or due is None:
        raise Refused(problems)
    return Once(forms, due)


def read_repeating(body: Any, catalogue: Catalogue) -> Repeating:
    """A schedule ("every N weeks|months from DATE, until DATE or K times"), or Refused."""
    body = body if isinstance(body, dict) else {}
    problems: list[tuple[str, str]] = []
    forms = _forms(body, catalogue, problems)
    every = _whole(body.get("every"), 1, MAX_EVERY)
    if every is None:
        problems.append(("every_invalid", "every"))
    unit = body.get("unit")
    if unit not in UNITS:
        problems.append(("unit_invalid", "unit"))
    start = _date(body.get("start"))
    if start is None:
        problems.append(("start_invalid", "start"))
    end = count = None
    if body.get("end") not in (None, ""):
        end = _date(body.get("end"))
        if end is None:
            problems.append(("end_invalid", "end"))
        elif start is not None and end <= start:
            problems.append(("end_before_start", "end"))
    if body.get("count") not in (None, ""):
        count = _whole(body.get("count"), 1, 999)
        if count is None:
            problems.append(("count_invalid", "count"))
    if end is not None and count is not None:
        problems.append(("end_or_count", "count"))
    if problems or every is None or start is None:
        raise Refused(problems)
    return Repeating(forms, every, str(unit), start, end, count)
