"""Where the shipped content lives: inside the package, so an installed wheel finds it anywhere."""

from __future__ import annotations

from pathlib import Path

# The one root of the shipped content; MIT_FHIR_QUESTIONNAIRE_DIR / MIT_FHIR_PROFILE_DIR /
# MIT_FHIR_PSYCHOMETRICS_FILE point elsewhere when a site needs to.
CONTENT_ROOT = Path(__file__).resolve().parent
QUESTIONNAIRE_DIR = CONTENT_ROOT / "questionnaires"
PROFILE_DIR = CONTENT_ROOT / "profiles"
PSYCHOMETRICS_FILE = PROFILE_DIR / "psychometrics.json"
