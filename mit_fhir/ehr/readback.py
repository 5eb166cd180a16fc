"""Reading the patient's prescriptions back from the EHR for the psychiatrist's view."""

from __future__ import annotations

from typing import Any

from mit_fhir.ehr.client import EhrClient


def medication_requests(client: EhrClient, patient_id: str) -> list[dict[str, Any]]:
    """All of the patient's MedicationRequests in the EHR, every intent (orders and plans)."""
    found = client.search("MedicationRequest", {"subject": f"Patient/{patient_id}",
                                                "_count": "100"})
    # Some servers ignore unknown or unsupported search parameters and return everything:
    # keep only this patient's requests.
    wanted = {f"Patient/{patient_id}", patient_id}
    return [
        r for r in found
        if r.get("resourceType") == "MedicationRequest"
        and str(r.get("subject", {}).get("reference", "")).split("/_history")[0] in wanted
    ]
