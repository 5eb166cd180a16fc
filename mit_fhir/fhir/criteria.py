"""Search criteria: the plain restriction a FHIR search becomes and the store turns into SQL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    """One search restriction: parameter name, comparison and the values OR-ed together."""

    name: str
    op: str  # "eq" | "lt" | "le" | "gt" | "ge" | "between" | "like-suffix" | "like-prefix"
    values: tuple[str, ...]
