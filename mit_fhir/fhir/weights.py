"""The Questionnaire's answer weights: the only source of a score's numbers.

A weight is the `itemWeight` (formerly `ordinalValue`) extension of an answerOption or of its
Coding, or of a concept of a contained ValueSet the item names in `answerValueSet`
(https://hl7.org/fhir/extensions/StructureDefinition-itemWeight.html). An answer's weight is
looked up in its own form by the answer's coding (system and code) only. fhirpath.js reads an
extension the answer itself carries first (docs/weight.md, step 1); this service never does,
because the response comes from the client, and `check_response` rejects a response whose
answers carry weights other than the form's (a renderer holding another version of the form).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from mit_fhir.errors import Issue, Unprocessable
from mit_fhir.fhir.answers import option_codings
from mit_fhir.vocabulary import EXT_ITEM_WEIGHT, EXT_ORDINAL_VALUE

Resource = dict[str, Any]
WEIGHT_URLS = (EXT_ITEM_WEIGHT, EXT_ORDINAL_VALUE)
# (system or None, code, weight) of one weighted option of an item.
Option = tuple[str | None, str, float]


def own_weight(element: Any) -> float | None:
    """The number in an element's itemWeight / ordinalValue extension, else None.

    A weight that is not a number (a string, a boolean) is no weight: a site form that spells
    one so is scored as if the option had none, rather than failing the request.
    """
    if not isinstance(element, dict) or not isinstance(element.get("extension"), list):
        return None
    for ext in element["extension"]:
        if isinstance(ext, dict) and ext.get("url") in WEIGHT_URLS:
            for key in ("valueDecimal", "valueInteger"):
                v = ext.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    return float(v)
            return None
    return None


def _claimed_weights(element: Any) -> list[float | None]:
    """Every weight an element's extensions claim (None for one that is not a number): each
    is compared, so an equal weight cannot carry a different one past the check."""
    if not isinstance(element, dict) or not isinstance(element.get("extension"), list):
        return []
    return [own_weight({"extension": [e]}) for e in element["extension"]
            if isinstance(e, dict) and e.get("url") in WEIGHT_URLS]


def _dicts(value: Any) -> list[Resource]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _tree(nodes: Any, child: str) -> Iterator[Resource]:
    """Every object of a tree (items, ValueSet contains), depth first, without recursion: a
    request-supplied form may nest deeper than Python's stack."""
    stack = list(reversed(_dicts(nodes)))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(_dicts(node.get(child))))


def _contained_value_set(questionnaire: Resource, ref: Any) -> Resource | None:
    """The contained ValueSet an `answerValueSet` names: `#id`, or a contained one's url."""
    if not isinstance(ref, str):
        return None
    for res in _dicts(questionnaire.get("contained")):
        if res.get("resourceType") != "ValueSet":
            continue
        if (ref.startswith("#") and res.get("id") == ref[1:]) or res.get("url") == ref:
            return res
    return None


def _value_set_nodes(value_set: Resource) -> Iterator[tuple[Resource, str | None, str]]:
    """(node, system, code) of every concept of a ValueSet: expansion first, then compose."""
    expansion = value_set.get("expansion")
    for entry in _tree(expansion.get("contains") if isinstance(expansion, dict) else None,
                       "contains"):
        if isinstance(entry.get("code"), str):
            yield entry, entry.get("system"), entry["code"]
    compose = value_set.get("compose")
    for include in _dicts(compose.get("include") if isinstance(compose, dict) else None):
        for concept in _dicts(include.get("concept")):
            if isinstance(concept.get("code"), str):
                yield concept, include.get("system"), concept["code"]


class FormWeights:
    """linkId -> the weighted options of that item, read once from a Questionnaire.

    Calling it with (linkId, coding) gives the form's weight of that answer, or None. Codings
    match as the validator matches them (fhir.answers.same_coding): on code, and on system when
    both name one; LHC-Forms' LOINC panels give their options no system.
    """

    def __init__(self, questionnaire: Resource) -> None:
        self.by_item: dict[str, list[Option]] = {}
        # id() of the form's own weighted nodes (answerOption, its Coding, ValueSet concepts):
        # weight() on %questionnaire reads them directly. The plan keeps the form alive.
        self.nodes: dict[int, float] = {}
        for item in _tree(questionnaire.get("item"), "item"):
            options: list[Option] = []
            for opt in _dicts(item.get("answerOption")):
                coding = opt.get("valueCoding")
                if not isinstance(coding, dict) or not isinstance(coding.get("code"), str):
                    continue
                # SDC puts the weight on answerOption where possible; older forms on the Coding.
                # As in fhirpath.js, the option node has either, its Coding only its own.
                on_coding = own_weight(coding)
                w = own_weight(opt)
                w = on_coding if w is None else w
                if w is not None:
                    options.append((coding.get("system"), coding["code"], w))
                    # The same answer under another code scores the same (GAD-7 item 2's
                    # LA18938-3 in LOINC's form is the original's "More than half the days").
                    options += [(c.get("system"), c["code"], w) for c in option_codings(opt)[1:]
                                if isinstance(c.get("code"), str)]
                    self.nodes[id(opt)] = w
                if on_coding is not None:
                    self.nodes[id(coding)] = on_coding
            value_set = _contained_value_set(questionnaire, item.get("answerValueSet"))
            for node, system, code in _value_set_nodes(value_set) if value_set else ():
                if (w := own_weight(node)) is not None:
                    options.append((system if isinstance(system, str) else None, code, w))
                    self.nodes[id(node)] = w
            if options and isinstance(item.get("linkId"), str):
                self.by_item[item["linkId"]] = options

    def __call__(self, link_id: str, coding: Any) -> float | None:
        if not isinstance(coding, dict):
            return None
        code, system = coding.get("code"), coding.get("system")
        lenient = None
        for o_system, o_code, w in self.by_item.get(link_id, ()):
            if o_code != code:
                continue
            if o_system == system:
                return w
            if lenient is None and not (o_system and system):
                lenient = w
        return lenient

    def for_response(self, qr: Resource) -> AnswerWeights:
        """The weight() lookup for one evaluation over this response."""
        return AnswerWeights(self, qr)


# Where an answer sits: (parent, linkId, answer index or None for an item under an item).
Where = tuple[Any, str, int | None]


def answers(qr: Resource) -> Iterator[tuple[str, Resource, Where]]:
    """(linkId, answer, where it sits) of every answer, nested ones too, without recursion."""
    stack: list[tuple[Resource, Any]] = [(i, None) for i in reversed(_dicts(qr.get("item")))]
    while stack:
        item, parent = stack.pop()
        link_id = item.get("linkId")
        link_id = link_id if isinstance(link_id, str) else ""
        nested: list[tuple[Resource, Any]] = []
        for n, ans in enumerate(_dicts(item.get("answer"))):
            here = (parent, link_id, n)
            yield link_id, ans, here
            nested += [(i, here) for i in _dicts(ans.get("item"))]
        nested += [(i, (parent, link_id, None)) for i in _dicts(item.get("item"))]
        stack.extend(reversed(nested))


def fhirpath_to(where: Where) -> str:
    """The answer's FHIRPath by linkIds, e.g. QuestionnaireResponse.item.where(linkId='a')
    .answer[0] (built only for an issue: a deep tree would make every path long)."""
    parts = []
    node: Any = where
    while node is not None:
        parent, link_id, n = node
        quoted = link_id[:64].replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f".item.where(linkId='{quoted}')" + ("" if n is None else f".answer[{n}]"))
        node = parent
    return "QuestionnaireResponse" + "".join(reversed(parts))


class AnswerWeights:
    """SDC weight() over one response: each node's weight from the form, never from the response.

    A node is an answer of the response or its Coding (looked up in the form by linkId and
    coding), or a weighted node of the form itself; anything else has no weight. `calls` and
    `found` count what weight() was asked and gave, so that the scorer can tell a score built on
    no weight at all (FHIRPath's empty sum() is 0) from a real 0.
    """

    def __init__(self, form: FormWeights, qr: Resource) -> None:
        self.form = form
        self.calls = 0
        self.found = 0
        self._answers: dict[int, tuple[str, Resource]] = {}
        for link_id, ans, _path in answers(qr):
            coding = ans.get("valueCoding")
            if isinstance(coding, dict):
                self._answers[id(ans)] = self._answers[id(coding)] = (link_id, coding)

    def weight(self, node: Any) -> float | None:
        """One node's weight, or None."""
        data = getattr(node, "data", node)  # fhirpathpy may wrap nodes in a ResourceNode
        if not isinstance(data, dict):
            return None
        owned = self._answers.get(id(data))
        if owned is not None:
            return self.form(*owned)
        return self.form.nodes.get(id(data))

    def __call__(self, focus: list[Any]) -> list[float]:
        self.calls += 1
        out = [w for node in focus if (w := self.weight(node)) is not None]
        self.found += len(out)
        return out


def check_response(qr: Resource, questionnaire: Resource) -> None:
    """Raise Unprocessable (422) naming every answer that carries a weight other than the form's.

    Renderers copy the form's weights into answers (LHC-Forms writes `ordinalValue` into every
    answer it exports): an equal weight is accepted and ignored. A different weight, a weight
    where the form has none, or one that is not a number means the renderer showed another
    version of the form, whose answers cannot be scored with this one. Messages name linkIds
    only: a weight would reveal the answer.
    """
    form: FormWeights | None = None
    issues: list[Issue] = []
    for link_id, ans, where in answers(qr):
        coding = ans.get("valueCoding")
        for element, suffix in ((ans, ""), (coding, ".valueCoding")):
            claims = _claimed_weights(element)
            if not claims:
                continue
            form = form or FormWeights(questionnaire)
            expected = form(link_id, coding)
            if expected is None or any(claimed is None or not math.isclose(
                    claimed, expected, rel_tol=0.0, abs_tol=1e-9) for claimed in claims):
                issues.append(Issue(
                    f"item '{link_id[:64]}': the answer carries a weight that is not this "
                    "Questionnaire's weight for its option; the form renderer holds another "
                    "version of the form", code="business-rule",
                    expression=(fhirpath_to(where) + suffix,)))
    if issues:
        raise Unprocessable("the answers carry weights other than the Questionnaire's",
                            issues[:20])
