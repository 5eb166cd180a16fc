"""/sync/status is for operators: a system/ scope, nothing less (it lists every patient's rows)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.security.conftest import PATIENT, bearer
from tests.security.issuer import Issuer


@pytest.mark.parametrize(("claims", "status"), [
    ({"scope": "openid"}, 403),
    ({"scope": "openid fhirUser launch offline_access"}, 403),
    ({"scope": "user/*.cruds"}, 403),
    ({"scope": "patient/*.cruds", "patient": PATIENT}, 403),
    ({"scope": "system/Observation.rs?category=survey"}, 403),  # a narrowed scope grants nothing
    ({"scope": "system/*.rs"}, 200),
    ({"scp": ["system/Questionnaire.read"]}, 200),
])
def test_sync_status_needs_a_system_scope(api: FlaskClient, issuer: Issuer, claims: dict,
                                          status: int) -> None:
    resp = api.get("/sync/status", headers=bearer(issuer.mint({"sub": "u", **claims})))
    assert resp.status_code == status
    if status == 403:
        assert resp.json["issue"][0]["code"] == "forbidden"
    else:
        assert set(resp.json) >= {"enabled", "counts", "problems"}
