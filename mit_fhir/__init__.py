"""mit-fhir: Metacognitive Interpersonal Therapy instruments, scores and plans over FHIR R4.

The application factory is mit_fhir.app.create_app; the package root imports nothing, so that
`mit-fhir serve` can set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported.
"""

__version__ = "0.1.0"
