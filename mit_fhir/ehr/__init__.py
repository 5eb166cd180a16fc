"""The host EHR: FHIR REST client, authentication, and reading data back."""
