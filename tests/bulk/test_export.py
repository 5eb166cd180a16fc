"""`mit-fhir export --since`: stored Observations as NDJSON, one per line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
from click.testing import Result
from flask import Flask

from tests.bulk.synthetic import responses, write_ndjson


def test_export_round_trip(
    cli: Callable[..., Result], make_app: Callable[..., Flask], database_url: str,
    tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "in.ndjson",
                        responses(15, patients=3, seed="export", instruments=("phq-9", "ders")))
    assert cli("import", str(path)).exit_code == 0
    out = tmp_path / "out.ndjson"

    result = cli("export", "--since", "2000-01-01", "--output", str(out))

    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    exported = [orjson.loads(line) for line in lines]
    assert exported and all(o["resourceType"] == "Observation" for o in exported)
    client = make_app(database_url).test_client()
    for obs in exported:  # each line is the stored resource, as the API serves it
        assert client.get(f"/fhir/Observation/{obs['id']}").get_json() == obs
    served = client.get("/fhir/Observation?_count=500").get_json()
    assert served["total"] == len(exported) == len({o["id"] for o in exported})
    assert f"exported {len(exported)} Observation(s)" in result.output


def test_export_selects_by_last_updated(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "in.ndjson",
                        responses(3, patients=1, seed="since", instruments=("gad-7",)))
    assert cli("import", str(path)).exit_code == 0

    # The responses were authored years ago, but stored today: an export since today has them.
    today = cli("export", "--since", "2020-01-01")
    future = cli("export", "--since", "2999-01-01T00:00:00Z")
    bad = cli("export", "--since", "last week")

    assert today.exit_code == 0
    assert len([ln for ln in today.output.splitlines() if ln.startswith("{")]) > 0
    assert future.exit_code == 0
    assert not [ln for ln in future.output.splitlines() if ln.startswith("{")]
    assert bad.exit_code == 2
    assert "--since" in bad.output
