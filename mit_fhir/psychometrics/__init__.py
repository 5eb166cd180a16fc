"""Pure scoring and reliable-change maths: no FHIR, no HTTP."""
