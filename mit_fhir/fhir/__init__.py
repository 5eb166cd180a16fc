"""FHIR mapping: pure functions over FHIR JSON (dicts); no Flask, no HTTP client."""
