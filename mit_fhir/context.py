"""The collaborators one application owns (store, catalogue), reachable from views and CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from mit_fhir.catalogue import Catalogue
from mit_fhir.outcomes import Scorer
from mit_fhir.store.repository import Store


@dataclass
class Context:
    """Created once per app by create_app; no module-level state anywhere else."""

    store: Store
    catalogue: Catalogue
    scorer: Scorer
    settings: dict[str, Any]

    @property
    def sync_enabled(self) -> bool:
        """Whether writes are queued for the host EHR (MIT_FHIR_EHR_BASE_URL is set)."""
        return bool(self.settings.get("EHR_BASE_URL"))


def ctx() -> Context:
    """The current application's Context."""
    context: Context = current_app.extensions["mit_fhir"]
    return context
