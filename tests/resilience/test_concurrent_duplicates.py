"""The same response sent at once by several clients (a retry storm) is stored once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import FHIR_JSON, sample

CLIENTS = 8


def test_simultaneous_copies_of_one_identifier_store_one_response(live_base: str) -> None:
    qr = sample("gad-7")
    qr["identifier"] = {"system": "urn:example:retry-storm", "value": "storm-1"}

    def post(_: int) -> tuple[int, dict]:
        resp = requests.post(f"{live_base}/fhir/QuestionnaireResponse", json=qr,
                             headers={"Content-Type": FHIR_JSON}, timeout=30)
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(post, range(CLIENTS)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 1, statuses
    # The others found it or lost the race to it: either way they get it (200, the same id).
    created_id = next(body["id"] for status, body in results if status == 201)
    for status, body in results:
        assert status in (200, 201), (status, body)
        assert body["id"] == created_id
    found = requests.get(f"{live_base}/fhir/QuestionnaireResponse",
                         params={"identifier": "urn:example:retry-storm|storm-1"}, timeout=10)
    assert found.json()["total"] == 1
    again = requests.post(f"{live_base}/fhir/QuestionnaireResponse", json=qr,
                          headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert again.status_code == 200 and again.json()["id"] == created_id
