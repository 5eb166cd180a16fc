"""MIT_FHIR_SMART_PATIENT_SCOPE must ask for `openid` and `fhirUser`: the patient launch knows
its patient by the ID token's fhirUser (newcomer finding 15)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mit_fhir.cli import main
from mit_fhir.config import DEFAULT_SMART_PATIENT_SCOPE, ConfigError, load_settings

DEV = {"AUTH": "none"}


@pytest.mark.parametrize(("scope", "missing"), [
    ("launch/patient fhirUser patient/Task.rus", "openid"),
    ("launch/patient openid patient/Task.rus", "fhirUser"),
    ("launch/patient patient/Task.rus", "openid and fhirUser"),
    ("launch/patient openidfhirUser patient/Task.rus", "openid and fhirUser"),
])
def test_a_patient_scope_without_the_identity_scopes_is_refused(scope: str,
                                                                 missing: str) -> None:
    with pytest.raises(ConfigError, match=f"MIT_FHIR_SMART_PATIENT_SCOPE: must include {missing}"):
        load_settings({**DEV, "SMART_PATIENT_SCOPE": scope})


def test_the_default_and_a_narrower_one_with_them_are_accepted() -> None:
    assert load_settings(DEV)["SMART_PATIENT_SCOPE"] == DEFAULT_SMART_PATIENT_SCOPE
    narrow = "launch/patient openid fhirUser patient/Task.rs"
    assert load_settings({**DEV, "SMART_PATIENT_SCOPE": narrow})["SMART_PATIENT_SCOPE"] == narrow


def test_check_config_exits_78_naming_it() -> None:
    result = CliRunner().invoke(main, ["check-config", "--offline"], env={
        "MIT_FHIR_AUTH": "none", "MIT_FHIR_SMART_PATIENT_SCOPE": "launch/patient patient/Task.rs"})
    assert result.exit_code == 78
    assert "MIT_FHIR_SMART_PATIENT_SCOPE" in result.stderr
