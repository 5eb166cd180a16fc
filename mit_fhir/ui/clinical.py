"""Plain clinical wording for the outcomes page: headings, clinical range, bands, precision.

Every number here comes from the timeline document (the Questionnaire's band options and the
psychometrics.json cutoffs it carries); this module only words and formats them.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

Resource = dict[str, Any]
_ABBREVIATION = re.compile(r"\(([A-Z][A-Za-z0-9 -]*)\)\s*$")
_PARENTHESIS = re.compile(r"^(.*?)\s*\((.*)\)\s*$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
DECIMALS = 2  # SCL-90-R GSI and BSL-23 mean are reported to two decimals (0.57, 1.07)
# What each cutoff kind means, for the statistics table (Jacobson & Truax 1991, J Consult Clin
# Psychol 59:12-19, defines a, b and c).
CUTOFF_KINDS = {
    "published": "published clinical cutoff",
    "a": "cutoff a: 2 SD beyond the clinical mean (Jacobson & Truax 1991)",
    "b": "cutoff b: 2 SD within the functional mean (Jacobson & Truax 1991)",
    "c": "cutoff c: between the clinical and functional means, weighted by their SDs "
         "(Jacobson & Truax 1991)",
}


def heading(label: str, title: str) -> str:
    """The title once ("Difficulties in Emotion Regulation Scale (DERS)"), with the score's own
    name when the form has several ("... (SCL-90-R): GSI")."""
    m = _ABBREVIATION.search(title)
    if m and label.startswith(m.group(1)) and label != m.group(1):
        return f"{title}: {label[len(m.group(1)):].strip()}"
    return title


def short_title(title: str) -> str:
    """ "Patient Health Questionnaire (PHQ-9)" -> "PHQ-9": the name the summary lines use."""
    m = _ABBREVIATION.search(title)
    return m.group(1) if m else title


def short_label(label: str, title: str) -> str:
    """The score's name as the summary line gives it: the label when it names the form
    ("DERS total", "SCL-90-R GSI") or the form has no abbreviation, else the abbreviation
    ("PHQ-9")."""
    short = short_title(title)
    return label if label.startswith(short) or short == title else short


def decimals(values: list[float], integer: bool) -> int:
    """Integers for summed scores (PHQ-9, DERS), two decimals for means (GSI)."""
    return 0 if integer and all(float(v).is_integer() for v in values) else DECIMALS


def number(value: float, places: int) -> str:
    """The value at the instrument's precision (0.57, not 0.6; 12, not 12.0)."""
    return f"{value:.{places}f}"


def clinical_range(cutoff: Resource, integer: bool, places: int) -> Resource:
    """The clinical side of the cutoff in words: "106 and above" (at the cutoff is clinical,
    as mit_fhir.psychometrics.reliable_change classifies it)."""
    value = float(cutoff["value"])
    above = cutoff["functionalSide"] == "below"
    if integer:
        edge = math.ceil(value) if above else math.floor(value)
        text = f"{edge} and {'above' if above else 'below'}"
    else:
        text = f"{number(value, places)} and {'above' if above else 'below'}"
    return {"value": value, "above": above, "text": f"clinical range: {text}"}


def bands(options: list[Resource], low: float | None, high: float | None) -> list[Resource]:
    """Band boundaries read from the band options' own wording ("Mild (5-9)", "Threshold met
    (5 or more criteria present)"): each band after the first starts at the first number of
    its parenthesis. Nothing when the wording does not give increasing numbers in the range."""
    if low is None or high is None or len(options) < 2:
        return []
    starts: list[float] = [low]
    for option in options[1:]:
        m = _PARENTHESIS.match(str(option.get("display") or ""))
        found = _NUMBER.search(m.group(2)) if m else None
        if found is None:
            return []
        starts.append(float(found.group(0)))
    if any(b <= a for a, b in itertools.pairwise(starts)) or starts[-1] >= high:
        return []
    ends = [*starts[1:], high]
    return [{"from": s, "to": e, "label": short_band(o), "display": o.get("display") or o["code"]}
            for s, e, o in zip(starts, ends, options, strict=True)]


def short_band(option: Resource) -> str:
    """ "Moderate (10-14)" -> "Moderate": the chart's band label; the table keeps the whole."""
    display = str(option.get("display") or option.get("code"))
    m = _PARENTHESIS.match(display)
    return m.group(1) if m and m.group(1) else display


def band_change(point: Resource | None) -> str | None:
    """ "threshold met -> threshold not met": the band change the service stored against the
    baseline, or None at the baseline itself."""
    if not point or not point.get("baseline"):
        return None
    before = short_band(point["baseline"]).lower()
    now = short_band(point).lower()
    if point["baseline"].get("code") == point.get("code"):
        return f"no change of band ({now})"
    return f"{before} → {now}"


def _plain(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def statistics(cutoff: Resource | None, rule: Resource | None) -> list[Resource]:
    """Rows of the statistics table under the chart: how the clinical range and reliable
    change were set, with the sources psychometrics.json cites."""
    rows = []
    if cutoff:
        rows.append({"name": CUTOFF_KINDS.get(cutoff["kind"], "clinical cutoff"),
                     "value": _plain(cutoff["value"]),
                     "source": "; ".join(cutoff.get("citations", [])),
                     "verified": bool(cutoff.get("verified", True))})
    if rule and rule.get("criticalDifference") is not None:
        rows.append({"name": "reliable change: published critical difference",
                     "value": f"a change of {_plain(rule['criticalDifference'])} or more",
                     "source": "; ".join(rule["citations"]), "verified": rule["verified"]})
    elif rule:
        crit = f"{rule['criticalValue']:g}"
        smallest = (f"; a change of more than {rule['criticalValue'] * rule['sediff']:.2f}"
                    if rule["method"] == "jacobson-truax" else "")
        rows.append({"name": f"reliable change: |RCI| > {crit} ({rule['method']})",
                     "value": f"SEdiff {rule['sediff']:.2f} (reliability {rule['reliability']:g}, "
                              f"SD {rule['sd']:g}){smallest}",
                     "source": "; ".join(rule["citations"]) + "; RCI = change / SEdiff "
                               "(Jacobson & Truax 1991, J Consult Clin Psychol 59:12-19)",
                     "verified": rule["verified"]})
    return rows
