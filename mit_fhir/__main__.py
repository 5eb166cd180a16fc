"""`python -m mit_fhir` is the `mit-fhir` command."""

from mit_fhir.cli import main

main()
