"""The log scan finds the test patients' data when it is there, and nothing in clean logs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.phi_scan import MIN_LINES, main, scan, terms


def test_terms_include_contacts_and_their_digits() -> None:
    found = terms()
    assert found["Dr Paolo Esempio (fictitious psychiatrist)"] == "name"
    assert found["+39 000 000 0001"] == "phone"
    assert found["390000000001"] == "phone"


def _write(path: Path, records: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_planted_name_or_phone_is_found(tmp_path: Path) -> None:
    clean = [{"logger": "mit_fhir.access", "message": "request"}] * MIN_LINES
    _write(tmp_path / "in-process.jsonl", clean)
    assert main([str(tmp_path)]) == 0
    _write(tmp_path / "services" / "serve-1.log",
           [{"message": "bad contact ANNA PROVA"}, {"message": "call 390000000002"}])
    lines, hits = scan(tmp_path, terms())
    assert lines == MIN_LINES + 2
    assert [h.split(": ", 1)[1] for h in hits] == ["a test patient's name",
                                                   "a test patient's phone"]
    assert "Prova" not in " ".join(hits)
    assert main([str(tmp_path)]) == 1


def test_too_little_to_scan_fails(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 2
