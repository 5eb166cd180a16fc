"""Questionnaire and QuestionnaireResponse item trees, walked as plain dicts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk_items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every item of a Questionnaire (or response) item tree, depth first."""
    for item in items:
        yield item
        yield from walk_items(item.get("item", []))
