"""FHIR Bulk Data NDJSON in and out: `mit-fhir import` (resumable backfill) and `export`."""
