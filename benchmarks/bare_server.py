"""The HTTP benchmark's reference: a bare Flask endpoint that only parses the body, as `serve` runs.

`python -m benchmarks.bare_server --port N` serves `POST /fhir/QuestionnaireResponse`, which
parses the body into fhir.resources' R4B QuestionnaireResponse model and answers 201 with no
body, with the same server settings as `mit-fhir serve` (mit_fhir.server.gunicorn_options: its
uvicorn worker class and read limits).
"""

from __future__ import annotations

import argparse

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask import Flask, Response, request

from mit_fhir.server import GunicornServer, gunicorn_options


def create_bare_app() -> Flask:
    app = Flask("mit-fhir-bench-bare")

    @app.post("/fhir/QuestionnaireResponse")
    def create() -> Response:
        QuestionnaireResponse.model_validate_json(request.get_data())
        return Response(status=201)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status": "ok"}', content_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    options = gunicorn_options(args.host, args.port, args.workers, args.threads)
    GunicornServer(create_bare_app(), options).run()


if __name__ == "__main__":
    main()
