"""mit-fhir: Metacognitive Interpersonal Therapy instruments, scores and plans over FHIR R4."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mit_fhir.app import create_app


def __getattr__(name: str) -> Any:
    # Imported on first use, not with the package: `mit-fhir serve` must set
    # PROMETHEUS_MULTIPROC_DIR before the app (and so prometheus_client) is imported.
    if name == "create_app":
        from mit_fhir.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "create_app"]
