"""A compiled evaluator for the FHIRPath subset that score expressions use (docs/authoring.md).

fhirpathpy is the reference: it parses every expression here (its ANTLR parser, so the grammar
is the real one), and any construct outside the subset raises `Unsupported`, upon which the
caller evaluates that expression with fhirpathpy instead. The subset is compiled once per
Questionnaire into Python closures over plain JSON, which is what makes extraction cheap enough
to sit in the request path (benchmarks/). Semantics follow FHIRPath N1
(http://hl7.org/fhirpath/N1/): empty propagates through operators and comparisons, `and`/`or`
are three-valued, `|` removes duplicates, `where` keeps items whose criterion is true. Two
deliberate points: `round()` rounds half away from zero as the specification says (fhirpathpy
rounds half to even), and `sum()` of an empty collection is 0, as fhirpathpy and fhirpath.js do.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhirpathpy.parser import parse

from mit_fhir.fhir.budget import active, charge, tick

Collection = list[Any]
# Larger integer results are an overflow (FHIRPath's Long is 64-bit; its Integer 32-bit).
MAX_INTEGER = 2**63 - 1
# SDC weight(): the weights of a collection, found by whoever knows the Questionnaire.
WeightLookup = Callable[[list[Any]], list[Any]]
Fn = Callable[[Collection, "Env"], Collection]


class Unsupported(Exception):
    """The expression uses FHIRPath outside the compiled subset."""


class EvaluationError(Exception):
    """The expression is in the subset but failed on this input (e.g. a type mismatch)."""


@dataclass
class Env:
    """What an evaluation sees: variables, and the weight() lookup of its Questionnaire."""

    variables: dict[str, Collection]
    weight: WeightLookup | None = None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _singleton(coll: Collection, what: str) -> Any:
    if len(coll) != 1:
        raise EvaluationError(f"{what} needs a single value, got {len(coll)}")
    return coll[0]


def _true(coll: Collection) -> bool:
    return len(coll) == 1 and coll[0] is True


def _member(name: str) -> Fn:
    polymorphic = name == "value"

    def member(focus: Collection, _env: Env) -> Collection:
        out: Collection = []
        for el in focus:
            if not isinstance(el, dict):
                continue
            v = el.get(name)
            if v is None and polymorphic:
                for key, val in el.items():
                    if key.startswith("value") and len(key) > 5 and key[5].isupper():
                        v = val
                        break
            if v is None:
                continue
            if isinstance(v, list):
                out.extend(v)
            else:
                out.append(v)
        return charge(out)

    return member


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-12)
    return bool(type(a) is type(b) and a == b)


def _key(v: Any) -> Any:
    """A hashable stand-in for `=`: equal values (1 and 1.0, equal objects) share a key."""
    if isinstance(v, bool):
        return ("boolean", v)
    if _is_number(v):
        # Rounded to the tolerance _equal allows, so that 0.1 + 0.2 and 0.3 are one item.
        return ("number", round(float(v), 12)) if isinstance(v, float) else ("number", v)
    if isinstance(v, str):
        return ("string", v)
    return ("json", json.dumps(v, sort_keys=True, separators=(",", ":"), default=str))


def _distinct(coll: Collection) -> Collection:
    # A set of keys, not pairwise comparison: a union of n items is O(n), not O(n²).
    out: Collection = []
    seen: set[Any] = set()
    for v in coll:
        k = _key(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return charge(out)


def _round_half_up(x: float, digits: int) -> float:
    scale = 10.0**digits
    return math.copysign(math.floor(abs(x) * scale + 0.5) / scale, x)


class _Const:
    """A subexpression that reads neither focus nor variables, evaluated once at compile time."""

    def __init__(self, value: Collection) -> None:
        self.value = value
        hashable = all(isinstance(v, str) for v in value)
        self.members: frozenset[Any] | None = frozenset(value) if hashable else None

    def __call__(self, _focus: Collection, _env: Env) -> Collection:
        return list(self.value)


_EMPTY_ENV = Env(variables={})


class _Compiler:
    """Turns fhirpathpy's parse tree into closures `(focus, env) -> collection`."""

    # Node kinds whose value is constant when all their children are.
    _FOLDABLE = frozenset(
        {"TermExpression", "ParenthesizedTerm", "UnionExpression", "AdditiveExpression",
         "MultiplicativeExpression", "PolarityExpression"}
    )

    def compile(self, node: dict[str, Any]) -> Fn:
        kind = node.get("type")
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise Unsupported(f"FHIRPath construct {kind} is not in the compiled subset")
        fn: Fn = handler(node)
        if isinstance(fn, _Const):
            return fn
        if kind in self._FOLDABLE and self._all_const(node):
            return _Const(fn([], _EMPTY_ENV))
        return fn

    def _all_const(self, node: dict[str, Any]) -> bool:
        kind = node.get("type")
        if kind == "LiteralTerm":
            return True
        if kind not in self._FOLDABLE:
            return False
        return all(self._all_const(c) for c in node.get("children", []))

    def _children(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        children: list[dict[str, Any]] = node.get("children", [])
        return children

    def _op(self, node: dict[str, Any]) -> str:
        return str(node["terminalNodeText"][0])

    # Terms -----------------------------------------------------------------------------------
    def _TermExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        return self.compile(self._children(node)[0])

    def _InvocationTerm(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        return self.compile(self._children(node)[0])

    def _ParenthesizedTerm(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        return self.compile(self._children(node)[0])

    def _LiteralTerm(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        lit = self._children(node)[0]
        kind, text = lit["type"], lit.get("text", "")
        value: Collection
        if kind == "NullLiteral":
            value = []
        elif kind == "BooleanLiteral":
            value = [text == "true"]
        elif kind == "StringLiteral":
            value = [_unquote(text)]
        elif kind == "NumberLiteral":
            value = [int(text)] if text.isdigit() else [float(text)]
        else:
            raise Unsupported(f"literal {kind} is not in the compiled subset")
        return _Const(value)

    def _ExternalConstantTerm(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        const = self._children(self._children(node)[0])[0]
        name = const.get("text", "")
        if const["type"] == "StringLiteral":
            name = _unquote(name)

        def constant(_focus: Collection, env: Env) -> Collection:
            try:
                return env.variables[name]
            except KeyError:
                raise EvaluationError(f"unknown variable %{name}") from None

        return constant

    def _ThisInvocation(self, _node: dict[str, Any]) -> Fn:  # noqa: N802
        return lambda focus, _env: focus

    def _MemberInvocation(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        return _member(self._children(node)[0]["text"])

    def _FunctionInvocation(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        functn = self._children(node)[0]
        parts = self._children(functn)
        name = parts[0]["text"]
        params = self._children(parts[1]) if len(parts) > 1 else []
        builder = _FUNCTIONS.get(name)
        if builder is None:
            raise Unsupported(f"function {name}() is not in the compiled subset")
        return builder(self, params)

    # Expressions -----------------------------------------------------------------------------
    def _InvocationExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        left, right = (self.compile(c) for c in self._children(node))
        return lambda focus, env: right(left(focus, env), env)

    def _PolarityExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        inner = self.compile(self._children(node)[0])
        sign = -1 if self._op(node) == "-" else 1

        def polarity(focus: Collection, env: Env) -> Collection:
            v = inner(focus, env)
            if not v:
                return []
            x = _singleton(v, "unary sign")
            if not _is_number(x):
                raise EvaluationError("unary sign needs a number")
            return [sign * x]

        return polarity

    def _binary(self, node: dict[str, Any]) -> tuple[str, Fn, Fn]:
        left, right = (self.compile(c) for c in self._children(node))
        return self._op(node), left, right

    def _AdditiveExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        return self._arith(node)

    def _MultiplicativeExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        return self._arith(node)

    def _arith(self, node: dict[str, Any]) -> Fn:
        op, left, right = self._binary(node)
        if op not in _ARITH:
            raise Unsupported(f"operator {op} is not in the compiled subset")
        apply = _ARITH[op]

        def arith(focus: Collection, env: Env) -> Collection:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            x, y = _singleton(a, op), _singleton(b, op)
            if op == "+" and isinstance(x, str) and isinstance(y, str):
                return charge_string(x + y)
            if not (_is_number(x) and _is_number(y)):
                raise EvaluationError(f"operator {op} needs numbers")
            if op in ("/", "div", "mod") and y == 0:
                return []
            try:
                result = apply(x, y)
            except (OverflowError, ValueError):
                raise EvaluationError(f"operator {op} overflowed") from None
            # FHIRPath numbers are 32-bit integers and 28-digit decimals; Python's integers
            # are unbounded, and `2.repeat($this * $this)` would square one without end.
            if isinstance(result, int) and abs(result) > MAX_INTEGER:
                raise EvaluationError(f"operator {op} overflowed")
            return [result]

        return arith

    def _InequalityExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        op, left, right = self._binary(node)
        apply = _COMPARE[op]

        def compare(focus: Collection, env: Env) -> Collection:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            x, y = _singleton(a, op), _singleton(b, op)
            if (_is_number(x) and _is_number(y)) or (type(x) is type(y) is str):
                return [apply(x, y)]
            raise EvaluationError(f"operator {op} cannot compare these types")

        return compare

    def _EqualityExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        op, left, right = self._binary(node)
        if op not in ("=", "!="):
            raise Unsupported(f"operator {op} is not in the compiled subset")
        negate = op == "!="

        def equality(focus: Collection, env: Env) -> Collection:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            same = len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
            return [same != negate]

        return equality

    def _MembershipExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        op, left, right = self._binary(node)
        if op == "contains":
            left, right = right, left
        members = right.members if isinstance(right, _Const) else None
        if members is not None:

            def member_of_set(focus: Collection, env: Env) -> Collection:
                a = left(focus, env)
                if not a:
                    return []
                x = _singleton(a, op)
                return [isinstance(x, str) and x in members]

            return member_of_set

        def membership(focus: Collection, env: Env) -> Collection:
            a = left(focus, env)
            if not a:
                return []
            x = _singleton(a, op)
            return [any(_equal(x, y) for y in right(focus, env))]

        return membership

    def _UnionExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        _op, left, right = self._binary(node)
        return lambda focus, env: _distinct(charge(left(focus, env) + right(focus, env)))

    def _AndExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        _op, left, right = self._binary(node)

        def conj(focus: Collection, env: Env) -> Collection:
            a, b = _bool(left(focus, env)), _bool(right(focus, env))
            if a is False or b is False:
                return [False]
            if a is None or b is None:
                return []
            return [True]

        return conj

    def _OrExpression(self, node: dict[str, Any]) -> Fn:  # noqa: N802
        op, left, right = self._binary(node)
        if op != "or":
            raise Unsupported("xor is not in the compiled subset")

        def disj(focus: Collection, env: Env) -> Collection:
            a, b = _bool(left(focus, env)), _bool(right(focus, env))
            if a is True or b is True:
                return [True]
            if a is None or b is None:
                return []
            return [False]

        return disj


def _bool(coll: Collection) -> bool | None:
    if not coll:
        return None
    v = _singleton(coll, "a boolean operator")
    if not isinstance(v, bool):
        raise EvaluationError("a boolean operator needs booleans")
    return v


def charge_string(text: str) -> Collection:
    """A string result, checked against the active budget's longest string."""
    budget = active()
    if budget is not None:
        budget.check_string(text)
    return [text]


def _unquote(text: str) -> str:
    body = text[1:-1]
    return (
        body.replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")
        if "\\" in body
        else body
    )


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
    "div": lambda x, y: int(x / y),
    "mod": lambda x, y: math.fmod(x, y),
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}

Builder = Callable[[_Compiler, list[dict[str, Any]]], Fn]


def _arity(name: str, params: Sequence[dict[str, Any]], *allowed: int) -> None:
    if len(params) not in allowed:
        raise Unsupported(f"{name}() with {len(params)} arguments is not in the compiled subset")


def _fn_where(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("where", params, 1)
    crit = comp.compile(params[0])

    def where(focus: Collection, env: Env) -> Collection:
        tick()
        return [x for x in focus if _true(crit([x], env))]

    return where


def _fn_select(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("select", params, 1)
    proj = comp.compile(params[0])
    return lambda focus, env: charge([y for x in focus for y in proj([x], env)])


def _fn_repeat(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("repeat", params, 1)
    proj = comp.compile(params[0])

    def repeat(focus: Collection, env: Env) -> Collection:
        # N1: repeat() adds the projection's items "as long as the projection yields new
        # items (as determined by the equals (=) operator)", so it returns unique items and
        # ends on cycles: 'x'.repeat('x') is ['x'] (http://hl7.org/fhirpath/N1/#repeatprojection-expression-collection).
        out: Collection = []
        seen: set[Any] = set()
        frontier = focus
        while frontier:
            nxt: Collection = []
            for x in frontier:
                for y in proj([x], env):
                    k = _key(y)
                    if k not in seen:
                        seen.add(k)
                        nxt.append(y)
            out.extend(nxt)
            charge(out)
            frontier = nxt
        return out

    return repeat


def _fn_trace(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    # trace(name[, projection]) returns its input; the log it would write holds answers,
    # which are patient data, so this service writes nothing.
    _arity("trace", params, 1, 2)
    return lambda focus, _env: focus


def _fn_iif(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("iif", params, 2, 3)
    crit, then = comp.compile(params[0]), comp.compile(params[1])
    other = comp.compile(params[2]) if len(params) == 3 else None

    def iif(focus: Collection, env: Env) -> Collection:
        if _true(crit(focus, env)):
            return then(focus, env)
        return other(focus, env) if other else []

    return iif


def _simple(name: str, body: Callable[[Collection, Env], Collection]) -> Builder:
    def build(_comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
        _arity(name, params, 0)
        return body

    return build


def _sum(focus: Collection, _env: Env) -> Collection:
    if not all(_is_number(v) for v in focus):
        raise EvaluationError("sum() needs numbers")
    return [sum(focus)]


def _weight(focus: Collection, env: Env) -> Collection:
    # SDC weight() (alias ordinal()): "the weight of the answer's coding from the questionnaire"
    # (https://hl7.org/fhir/uv/sdc/expressions.html#fhirpath-supplements). Only the caller
    # knows the Questionnaire (fhir/weights.py); without it nothing has a weight, least of all
    # the weight a response carries on its own answers.
    return env.weight(focus) if env.weight is not None else []


def _fn_round(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("round", params, 0, 1)
    digits_fn = comp.compile(params[0]) if params else None

    def rnd(focus: Collection, env: Env) -> Collection:
        if not focus:
            return []
        x = _singleton(focus, "round()")
        digits = _singleton(digits_fn(focus, env), "round() precision") if digits_fn else 0
        if not _is_number(x) or not isinstance(digits, int) or not 0 <= digits <= 28:
            raise EvaluationError("round() needs a number and a precision from 0 to 28")
        try:
            return [_round_half_up(x, digits)]
        except OverflowError:
            raise EvaluationError("round() overflowed") from None

    return rnd


def _fn_starts_with(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("startsWith", params, 1)
    prefix_fn = comp.compile(params[0])

    def starts(focus: Collection, env: Env) -> Collection:
        if not focus:
            return []
        s = _singleton(focus, "startsWith()")
        prefix = _singleton(prefix_fn(focus, env), "startsWith() argument")
        if not isinstance(s, str) or not isinstance(prefix, str):
            raise EvaluationError("startsWith() needs strings")
        return [s.startswith(prefix)]

    return starts


def _fn_exists(comp: _Compiler, params: list[dict[str, Any]]) -> Fn:
    _arity("exists", params, 0, 1)
    if not params:
        return lambda focus, _env: [bool(focus)]
    crit = comp.compile(params[0])
    return lambda focus, env: [any(_true(crit([x], env)) for x in focus)]


def _not(focus: Collection, _env: Env) -> Collection:
    b = _bool(focus)
    return [] if b is None else [not b]


def _abs(focus: Collection, _env: Env) -> Collection:
    if not focus:
        return []
    x = _singleton(focus, "abs()")
    if not _is_number(x):
        raise EvaluationError("abs() needs a number")
    return [abs(x)]


_FUNCTIONS: dict[str, Builder] = {
    "where": _fn_where,
    "select": _fn_select,
    "repeat": _fn_repeat,
    "trace": _fn_trace,
    "iif": _fn_iif,
    "round": _fn_round,
    "startsWith": _fn_starts_with,
    "exists": _fn_exists,
    "sum": _simple("sum", _sum),
    "count": _simple("count", lambda focus, _env: [len(focus)]),
    "empty": _simple("empty", lambda focus, _env: [not focus]),
    "not": _simple("not", _not),
    "abs": _simple("abs", _abs),
    "first": _simple("first", lambda focus, _env: focus[:1]),
    "last": _simple("last", lambda focus, _env: focus[-1:]),
    "weight": _simple("weight", _weight),
    "ordinal": _simple("ordinal", _weight),
}


@dataclass(frozen=True)
class Compiled:
    """A compiled expression; call it with the focus collection and an Env."""

    text: str
    fn: Fn

    def __call__(self, focus: Collection, env: Env) -> Collection:
        try:
            return self.fn(focus, env)
        except RecursionError:
            raise EvaluationError("the expression nests too deeply for this input") from None


def compile_expression(text: str) -> Compiled:
    """Compile an expression of the subset; raises Unsupported for anything else."""
    found = _compiled(text)
    if isinstance(found, str):
        raise Unsupported(found)
    return found


def compiles(text: str) -> bool:
    """Whether the expression is in the compiled subset (else fhirpathpy evaluates it)."""
    return not isinstance(_compiled(text), str)


# Parsing is the slow part (ANTLR, ~15 ms per expression) and a Compiled holds no state of
# an evaluation, so one compilation serves every plan that has the same text. 256 entries
# hold the catalogue's 72 expressions and ~9 MB at most (~20 KiB for LHC-Forms' PHQ-9 total).
@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Compiled | str:
    try:
        tree = parse(text)
    except Exception as exc:  # fhirpathpy's parser raises bare exceptions on syntax errors
        return f"cannot parse FHIRPath: {exc}"
    children = tree.get("children", [])
    if len(children) != 1:
        return "expected one expression"
    try:
        return Compiled(text, _Compiler().compile(children[0]))
    except Unsupported as exc:
        return str(exc)

