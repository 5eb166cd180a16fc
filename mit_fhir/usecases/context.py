"""The collaborators one application owns (store, catalogue, scorer, settings); no Flask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mit_fhir.store.repository import Store
from mit_fhir.usecases.catalogue import Catalogue
from mit_fhir.usecases.scorer import Scorer


@dataclass
class Context:
    """Created once per process (app, worker, CLI); no module-level state anywhere else."""

    store: Store
    catalogue: Catalogue
    scorer: Scorer
    settings: dict[str, Any]

    @property
    def sync_enabled(self) -> bool:
        """Whether writes are queued for the host EHR (MIT_FHIR_EHR_BASE_URL is set)."""
        return bool(self.settings.get("EHR_BASE_URL"))
