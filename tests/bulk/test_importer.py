"""`mit-fhir import`: time order per patient, resume after a crash, dedupe, rejections, outbox."""

from __future__ import annotations

import copy
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from mit_fhir.bulk.importer import Importer
from mit_fhir.bulk.schema import bulk_import, bulk_rejection, bulk_staged
from mit_fhir.store.schema import outbox, resource
from tests.bulk.conftest import cli_env
from tests.bulk.synthetic import responses, write_ndjson
from tests.conftest import FHIR_JSON, ROOT, on_postgresql, sample

MARKER = "MARKER-do-not-echo-7f3a"
FLAGGED = ("phq-9", "gad-7", "ders-16", "bsl-23", "bpd-criteria")


class Crash(Exception):
    """A simulated failure between two batches."""


def stored(app: Flask, resource_type: str) -> list[dict[str, Any]]:
    with app.extensions["mit_fhir"].store.transaction() as conn:
        rows = conn.execute(select(resource.c.content)
                            .where(resource.c.resource_type == resource_type)).scalars()
        return [orjson.loads(row) for row in rows]


def _strip(value: Any) -> Any:
    """A resource without what differs between two databases (ids, references, timestamps)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if k not in ("id", "meta", "identifier", "valueReference", "derivedFrom",
                             "hasMember")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def observations(app: Flask) -> list[str]:
    """Every stored Observation, comparable across databases (sorted canonical JSON)."""
    return sorted(orjson.dumps(_strip(o), option=orjson.OPT_SORT_KEYS).decode()
                  for o in stored(app, "Observation"))


def flagged(app: Flask) -> int:
    """How many Observations carry a reliable-change or band-change verdict."""
    return sum(1 for o in stored(app, "Observation")
               if any("change" in e["url"] for e in o.get("extension", [])))


def post(app: Flask, qr: dict[str, Any]) -> Any:
    return app.test_client().post("/fhir/QuestionnaireResponse", data=json.dumps(qr),
                                  content_type=FHIR_JSON)


def run_import(app: Flask, path: Path, **kwargs: Any) -> Any:
    return Importer(app.extensions["mit_fhir"], path, progress=False, **kwargs).run()


def test_unsorted_file_gives_the_flags_of_sorted_http_submission(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    qrs = list(responses(70, patients=3, seed="order", instruments=FLAGGED))
    by_date = sorted(qrs, key=lambda qr: qr["authored"])
    assert qrs != by_date  # the file really is out of order
    # Both databases already hold each patient's earliest responses, submitted over HTTP.
    earlier, later = by_date[:15], [qr for qr in qrs if qr not in by_date[:15]]
    http, imported = make_app(), make_app()
    for qr in by_date:
        assert post(http, qr).status_code == 201
    for qr in earlier:
        assert post(imported, qr).status_code == 201

    summary = run_import(imported, write_ndjson(tmp_path / "later.ndjson", later),
                         batch_size=7)

    assert (summary.accepted, summary.rejected, summary.duplicates) == (len(later), 0, 0)
    assert flagged(http) > 40  # the comparison is about real verdicts
    assert observations(imported) == observations(http)


@pytest.mark.parametrize("phase", ["staging", "scoring"])
def test_an_import_that_fails_midway_resumes_without_duplicates(
    make_app: Callable[..., Flask], tmp_path: Path, phase: str
) -> None:
    path = write_ndjson(tmp_path / "in.ndjson", responses(40, patients=4, seed="resume",
                                                          instruments=FLAGGED))
    reference, app = make_app(), make_app()
    run_import(reference, path, batch_size=6)

    def crash(at: str, number: int) -> None:
        if at == phase and number == 3:
            raise Crash

    with pytest.raises(Crash):
        run_import(app, path, batch_size=6, on_batch=crash)
    # Three batches committed: staged lines, or stored responses, but not everything.
    assert len(stored(app, "QuestionnaireResponse")) == (0 if phase == "staging" else 18)

    summary = run_import(app, path, batch_size=6)

    assert summary.resumed_at_line == (18 if phase == "staging" else 40)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (40, 0, 0)
    assert len(stored(app, "QuestionnaireResponse")) == 40
    assert observations(app) == observations(reference)


@pytest.mark.slow
def test_an_import_killed_with_sigkill_resumes_without_duplicates(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    count = 1500
    path = write_ndjson(tmp_path / "big.ndjson",
                        responses(count, patients=50, seed="kill", instruments=("phq-9",)))
    engine = create_engine(database_url, poolclass=NullPool)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mit_fhir", "import", str(path), "--batch-size", "10",
         "--no-progress"],
        cwd=ROOT, env={**os.environ, **cli_env(database_url)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                with engine.connect() as conn:
                    row = conn.execute(select(bulk_import.c.phase, bulk_import.c.accepted)).first()
            except Exception:  # the tables are not migrated yet
                continue
            if row is not None and row.phase == "scoring" and row.accepted >= 100:
                break
        assert proc.poll() is None, "the import finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.dispose()
    app = make_app(database_url)
    assert 0 < len(stored(app, "QuestionnaireResponse")) < count

    summary = run_import(app, path)

    assert (summary.accepted, summary.duplicates, summary.rejected) == (count, 0, 0)
    qrs = stored(app, "QuestionnaireResponse")
    assert len(qrs) == count
    assert len({qr["identifier"]["value"] for qr in qrs}) == count
    # Each response has its own complete set of Observations, none twice.
    per_response = Counter(o["derivedFrom"][0]["reference"] for o in stored(app, "Observation"))
    assert set(per_response) == {f"QuestionnaireResponse/{qr['id']}" for qr in qrs}
    assert len(set(per_response.values())) == 1


def test_gzip_input_with_other_resource_types_and_blank_lines(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    qrs = list(responses(12, patients=2, seed="gzip", instruments=FLAGGED))
    lines: list[Any] = []
    for n, qr in enumerate(qrs):
        lines.append(qr)
        if n % 4 == 0:
            lines += [{"resourceType": "Patient", "id": f"p{n}", "name": [{"text": MARKER}]},
                      "", "   "]
    plain = write_ndjson(tmp_path / "in.ndjson", lines)
    packed = tmp_path / "in.ndjson.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    app = make_app()

    summary = run_import(app, packed, batch_size=5)

    assert (summary.accepted, summary.skipped, summary.rejected) == (12, 3, 0)
    assert len(stored(app, "QuestionnaireResponse")) == 12
    assert stored(app, "Patient") == []


def _plan_with(dose_code: str, drug_text: str) -> dict[str, Any]:
    plan = sample("medication-plan")
    for item in plan["item"]:
        for sub in item.get("item", []):
            if sub["linkId"] == "medplan-med-daily-dose":
                sub["answer"][0]["valueQuantity"]["code"] = dose_code
            if sub["linkId"] == "medplan-med-drug":
                sub["answer"] = [{"valueString": drug_text}]
    return plan


def test_rejected_lines_are_listed_without_answers_and_store_nothing(
    cli: Callable[..., Result], make_app: Callable[..., Flask], database_url: str,
    tmp_path: Path
) -> None:
    wrong_type = sample("phq-9")
    wrong_type["item"][0]["answer"] = [{"valueString": MARKER}]
    unknown_form = {**sample("gad-7"), "questionnaire": "http://example.org/Questionnaire/x"}
    bad_plan = _plan_with("g", MARKER)
    assert post(make_app(), bad_plan).status_code == 422  # also refused over HTTP
    lines: list[Any] = [
        sample("phq-9"),                                                       # 1 accepted
        {"resourceType": "Patient", "name": [{"text": MARKER}]},               # 2 skipped
        wrong_type,                                                            # 3 rejected
        '{"resourceType": "QuestionnaireResponse", "note": "' + MARKER,        # 4 rejected
        sample("gad-7"),                                                       # 5 accepted
        unknown_form,                                                          # 6 rejected
        bad_plan,                                                              # 7 rejected
        sample("ders"),                                                        # 8 accepted
        "[1, 2]",                                                              # 9 rejected
    ]
    path = write_ndjson(tmp_path / "mixed.ndjson", lines)

    result = cli("import", str(path), "--batch-size", "2")

    assert result.exit_code == 3, result.output  # partial: three lines stored, five rejected
    assert MARKER not in result.output
    listed = [line.split(":")[0].strip() for line in result.output.splitlines()
              if line.strip().startswith("line ")]
    assert listed == ["line 3", "line 4", "line 6", "line 7", "line 9"]
    assert "accepted:          3" in result.output
    assert "skipped (not QuestionnaireResponse): 1" in result.output
    assert "rejected:          5" in result.output
    assert "line 7: the plan cannot be recorded" in result.output
    assert "line 4: the line is not valid JSON" in result.output
    app = make_app(database_url)
    with app.extensions["mit_fhir"].store.transaction() as conn:
        contents = list(conn.execute(select(resource.c.content)).scalars())
        reasons = list(conn.execute(select(bulk_rejection.c.reason)).scalars())
        left = conn.execute(select(func.count()).select_from(bulk_staged)).scalar_one()
    assert len(stored(app, "QuestionnaireResponse")) == 3
    assert stored(app, "MedicationRequest") == []
    assert not any(MARKER in c for c in contents + reasons)
    assert left == 0


def test_a_future_dated_line_is_rejected_as_over_http(
    cli: Callable[..., Result], make_app: Callable[..., Flask], database_url: str,
    tmp_path: Path
) -> None:
    future = {**sample("phq-9"), "authored": "9999-12-31T00:00:00Z"}
    assert post(make_app(database_url), future).status_code == 422
    path = write_ndjson(tmp_path / "future.ndjson", [sample("gad-7"), future])

    result = cli("import", str(path))

    assert result.exit_code == 3, result.output  # partial: the past line stored, not this one
    assert "line 2: authored is in the future" in result.output
    assert "rejected:          1" in result.output
    assert len(stored(make_app(database_url), "QuestionnaireResponse")) == 1


def test_a_second_import_reports_everything_as_already_imported(
    cli: Callable[..., Result], make_app: Callable[..., Flask], database_url: str,
    tmp_path: Path
) -> None:
    qrs = list(responses(6, patients=2, seed="twice", instruments=FLAGGED))
    # A response submitted over HTTP with the same identifier is not imported again either.
    assert post(make_app(database_url), qrs[1]).status_code == 201
    path = write_ndjson(tmp_path / "twice.ndjson", [*qrs, copy.deepcopy(qrs[0])])

    first = cli("import", str(path))
    second = cli("import", str(path))

    assert first.exit_code == 0, first.output
    assert "accepted:          5" in first.output  # qrs[1] and the repeated line are known
    assert "already imported:  2" in first.output
    assert second.exit_code == 0, second.output
    assert "accepted:          0" in second.output
    assert "already imported:  7" in second.output
    assert len(stored(make_app(database_url), "QuestionnaireResponse")) == 6


def test_imported_responses_are_queued_for_the_ehr_like_submissions(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    ehr = {"EHR_BASE_URL": "http://127.0.0.1:9/fhir"}
    qrs = list(responses(8, patients=2, seed="outbox", instruments=FLAGGED))
    qrs.append(sample("medication-plan"))
    http, imported = make_app(**ehr), make_app(**ehr)
    for qr in sorted(qrs, key=lambda q: q["authored"]):
        assert post(http, qr).status_code == 201

    run_import(imported, write_ndjson(tmp_path / "sync.ndjson", qrs), batch_size=4)

    def queued(app: Flask) -> dict[str, int]:
        with app.extensions["mit_fhir"].store.transaction() as conn:
            rows = conn.execute(select(outbox.c.resource_type, func.count())
                                .where(outbox.c.state == "pending")
                                .group_by(outbox.c.resource_type)).all()
        return {rtype: int(n) for rtype, n in rows}

    assert queued(imported) == queued(http)
    assert queued(imported)["QuestionnaireResponse"] == 9
    assert queued(imported)["MedicationRequest"] >= 1
    with imported.extensions["mit_fhir"].store.transaction() as conn:
        in_outbox = conn.execute(text("SELECT COUNT(*) FROM outbox")).scalar_one()
        # Provenance and AuditEvent are the service's own records, not synced.
        in_store = conn.execute(text(
            "SELECT COUNT(*) FROM resource WHERE resource_type NOT IN ('Provenance', 'AuditEvent')"
        )).scalar_one()
    assert in_outbox == in_store  # every stored resource, once


def test_a_truncated_gzip_file_is_reported_and_stores_nothing(
    cli: Callable[..., Result], make_app: Callable[..., Flask], database_url: str,
    tmp_path: Path
) -> None:
    plain = write_ndjson(tmp_path / "in.ndjson",
                         responses(30, patients=2, seed="cut", instruments=("phq-9",)))
    whole = gzip.compress(plain.read_bytes())
    packed = tmp_path / "in.ndjson.gz"
    packed.write_bytes(whole[: len(whole) // 2])

    cut = cli("import", str(packed), "--batch-size", "5")

    assert cut.exit_code == 65  # bad input: nothing stored
    assert "cannot read in.ndjson.gz" in cut.output
    assert len(stored(make_app(database_url), "QuestionnaireResponse")) == 0  # only staged
    packed.write_bytes(whole)
    assert "accepted:          30" in cli("import", str(packed)).output


def test_a_value_the_database_refuses_rejects_only_its_line(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    qrs = list(responses(6, patients=2, seed="refused", instruments=("phq-9",)))
    odd = {**sample("gad-7"), "identifier": {"system": "urn:x", "value": "a\u0000b" + "c" * 600}}
    app = make_app()

    summary = run_import(app, write_ndjson(tmp_path / "odd.ndjson", [*qrs[:3], odd, *qrs[3:]]),
                         batch_size=10)

    # SQLite stores any text; PostgreSQL refuses a NUL character and over-long index values.
    refused = 1 if on_postgresql() else 0
    assert (summary.accepted, summary.rejected) == (7 - refused, refused)
    assert len(stored(app, "QuestionnaireResponse")) == 7 - refused
