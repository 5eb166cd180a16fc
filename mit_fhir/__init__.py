"""mit-fhir: Metacognitive Interpersonal Therapy instruments, scores and plans over FHIR R4."""

from __future__ import annotations

__version__ = "0.1.0"

from mit_fhir.app import create_app

__all__ = ["__version__", "create_app"]
