"""A budget of items and wall-clock time for the FHIRPath a request brings with it.

A site Questionnaire sent to `$extract` carries its own expressions, so one request could
otherwise ask for unbounded work (`1.repeat($this + 1)`) or memory. While a budget is active
(`limited`) the compiled evaluator (fhir/fhirpath.py) charges every collection it builds
against it; expressions outside the compiled subset run in fhirpathpy under a profile hook
(`foreign`) that checks the same limits on every Python call and return, because fhirpathpy
offers no hook of its own. Exceeding a limit raises BudgetExceeded, which callers turn into a
422 naming the item; it is not an EvaluationError, so no score silently becomes "absent".
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
# Longer strings than this are refused whatever the item limit: `'x'.repeat($this + $this)`
# doubles a string each round, so a bound on the number of items alone does not bound memory.
MAX_STRING = 65_536


class BudgetExceeded(Exception):
    """An expression needed more items or time than its budget; `where` names the item."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where

    def at(self, where: str) -> BudgetExceeded:
        """The same exception, told which item (linkId) or variable was being evaluated."""
        return self if self.where else BudgetExceeded(self.reason, where)


@dataclass(frozen=True)
class Limits:
    """How many items one collection may hold and how long one request's evaluation may run."""

    max_items: int
    time_limit_ms: int


class Budget:
    """The limits of one request's evaluations, with its deadline fixed when they start."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # Set by the first check: the clock measures evaluation, not the request's other work
        # (validation, waiting for the database) inside the same `limited` block.
        self.deadline: float | None = None
        self.exceeded: BudgetExceeded | None = None

    def check_time(self) -> None:
        if self.exceeded is not None:
            raise self.exceeded
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.limits.time_limit_ms / 1000
        elif now > self.deadline:
            self.exceeded = BudgetExceeded(
                f"the expression ran longer than {self.limits.time_limit_ms} ms")
            raise self.exceeded

    def check_size(self, size: int) -> None:
        if size > self.limits.max_items:
            self.exceeded = BudgetExceeded(
                f"the expression built a collection of more than {self.limits.max_items} items")
            raise self.exceeded

    def check_string(self, text: str) -> None:
        if len(text) > MAX_STRING:
            self.exceeded = BudgetExceeded(
                f"the expression built a string longer than {MAX_STRING} characters")
            raise self.exceeded


_ACTIVE: ContextVar[Budget | None] = ContextVar("fhirpath_budget", default=None)


def active() -> Budget | None:
    """The budget of the evaluation running in this context, if any."""
    return _ACTIVE.get()


@contextmanager
def limited(limits: Limits) -> Iterator[Budget]:
    """Run the block's evaluations within `limits` (one deadline for the whole block)."""
    budget = Budget(limits)
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


@contextmanager
def suspended() -> Iterator[None]:
    """Run the block outside the active budget; its time is not charged to the deadline.

    Compiling a form's expressions is bounded by their length instead (fhir/site_forms.py),
    so that whether a form is accepted does not depend on how loaded the machine is.
    """
    budget = _ACTIVE.get()
    started = time.monotonic()
    token = _ACTIVE.set(None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        if budget is not None and budget.deadline is not None:
            budget.deadline += time.monotonic() - started


def charge(coll: list[Any]) -> list[Any]:
    """Check a collection the evaluator built against the active budget; return it."""
    budget = _ACTIVE.get()
    if budget is not None:
        budget.check_size(len(coll))
        budget.check_time()
    return coll


def tick() -> None:
    """Check the active budget's deadline (inside loops that build nothing)."""
    budget = _ACTIVE.get()
    if budget is not None:
        budget.check_time()


def foreign(run: Callable[[], T]) -> T:
    """Call `run` (fhirpathpy) under a profile hook that enforces the active budget.

    fhirpathpy catches every Exception of its own code and the scorer turns what escapes into
    an EvaluationError, so the hook also records the breach on the budget and this function
    re-raises it afterwards: a swallowed BudgetExceeded still fails the request.
    """
    budget = _ACTIVE.get()
    if budget is None:
        return run()

    def hook(_frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            budget.check_time()
        elif event == "return":
            if isinstance(arg, list):
                budget.check_size(len(arg))
            elif isinstance(arg, str):
                budget.check_string(arg)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        result = run()
    except Exception:
        if budget.exceeded is not None:
            raise budget.exceeded from None
        raise
    finally:
        sys.setprofile(previous)
    if budget.exceeded is not None:
        raise budget.exceeded
    return result
