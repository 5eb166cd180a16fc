"""The `mit-fhir` command: database upgrade and the licensed-wording path for SCL-90-R."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect

from mit_fhir import create_app
from mit_fhir.cli import main
from mit_fhir.exits import Exit
from mit_fhir.store.migrate import is_current

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def run(db_url: str) -> Any:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env={"MIT_FHIR_DATABASE_URL": db_url})

    return invoke


def served(db_url: str, qid: str = "scl-90-r") -> dict[str, Any]:
    """The Questionnaire as the HTTP API serves it from that database."""
    app = create_app({"DATABASE_URL": db_url})
    try:
        resp = app.test_client().get(f"/fhir/Questionnaire/{qid}")
    finally:
        app.extensions["mit_fhir"].store.dispose()
    assert resp.status_code == 200
    body: dict[str, Any] = resp.get_json()
    return body


def items(questionnaire: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def visit(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            out[node["linkId"]] = node
            visit(node.get("item", []))

    visit(questionnaire["item"])
    return out


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_help_lists_the_commands(run: Any) -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("serve", "check-config", "db", "wording", "reliable-change"):
        assert command in result.output


def test_db_upgrade_creates_the_database(run: Any, db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert not inspect(conn).get_table_names()  # empty before
        result = run("db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "newest migration" in result.output
        assert is_current(engine)
        with engine.connect() as conn:
            assert {"alembic_version", "resource", "outbox"} <= set(inspect(conn).get_table_names())
        assert run("db", "upgrade").exit_code == 0  # idempotent
        assert is_current(engine)
    finally:
        engine.dispose()


def test_bad_configuration_is_a_clean_error() -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"MIT_FHIR_LOG_LEVEL": "chatty"})
    assert result.exit_code == Exit.CONFIG == 78
    assert "MIT_FHIR_LOG_LEVEL" in result.output
    assert "Traceback" not in result.output


def test_template_lists_the_90_slots_of_scl_90_r(run: Any) -> None:
    result = run("wording", "template", "scl-90-r")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["linkId"] for r in rows] == [f"scl-90-r-{n}" for n in range(1, 91)]
    assert all(r["text"] == "" for r in rows)


def test_template_of_a_form_without_slots_is_only_the_header(run: Any) -> None:
    result = run("wording", "template", "phq-9")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["linkId,text"]


@pytest.mark.parametrize("command", [("template",), ("clear",)])
def test_unknown_questionnaire_is_refused(run: Any, command: tuple[str, ...]) -> None:
    result = run("wording", *command, "scl-91")
    assert result.exit_code != 0
    assert "no Questionnaire 'scl-91'" in result.output


def test_load_serves_the_wording_and_clear_removes_it(
    run: Any, db_url: str, tmp_path: Path
) -> None:
    original = items(served(db_url))
    template = list(csv.DictReader(io.StringIO(run("wording", "template", "scl-90-r").stdout)))
    wording = {"scl-90-r-1": "Licensed text one", "scl-90-r-90": "Licensed text, ninety"}
    path = tmp_path / "en.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.DictWriter(handle, ["linkId", "text"])
        out.writeheader()
        out.writerows({**row, "text": wording[row["linkId"]]}
                      for row in template if row["linkId"] in wording)

    result = run("wording", "load", "scl-90-r", str(path))
    assert result.exit_code == 0, result.output
    assert "loaded 2 item texts" in result.output

    now = items(served(db_url))
    assert now["scl-90-r-1"]["text"] == "Licensed text one"
    assert now["scl-90-r-90"]["text"] == "Licensed text, ninety"
    assert now["scl-90-r-2"].get("text") == original["scl-90-r-2"].get("text")

    result = run("wording", "clear", "scl-90-r")
    assert result.exit_code == 0, result.output
    assert items(served(db_url))["scl-90-r-1"].get("text") == original["scl-90-r-1"].get("text")


def test_second_language_is_served_as_a_translation(
    run: Any, db_url: str, tmp_path: Path
) -> None:
    en = write_csv(tmp_path / "en.csv", "linkId,text\nscl-90-r-1,Headaches\n")
    de = write_csv(tmp_path / "de.csv", "linkId,text\nscl-90-r-1,Kopfschmerzen\n")
    assert run("wording", "load", "scl-90-r", str(en)).exit_code == 0
    result = run("wording", "load", "scl-90-r", str(de), "--language", "de")
    assert result.exit_code == 0, result.output

    item = items(served(db_url))["scl-90-r-1"]
    assert item["text"] == "Headaches"
    (translation,) = [e for e in item["_text"]["extension"] if e["url"] == TRANSLATION]
    parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value"))
             for p in translation["extension"]}
    assert parts == {"lang": "de", "content": "Kopfschmerzen"}

    # Clearing English leaves the German translation in place.
    assert run("wording", "clear", "scl-90-r").exit_code == 0
    item = items(served(db_url))["scl-90-r-1"]
    assert item.get("text") != "Headaches"
    assert "Kopfschmerzen" in str(item["_text"])
    assert run("wording", "clear", "scl-90-r", "--language", "de").exit_code == 0
    assert "_text" not in items(served(db_url))["scl-90-r-1"]


def test_loading_again_replaces_the_language(run: Any, db_url: str, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", "linkId,text\nscl-90-r-1,One\nscl-90-r-2,Two\n")
    second = write_csv(tmp_path / "b.csv", "linkId,text\nscl-90-r-2,Zwei\n")
    assert run("wording", "load", "scl-90-r", str(first)).exit_code == 0
    assert run("wording", "load", "scl-90-r", str(second)).exit_code == 0
    now = items(served(db_url))
    assert now["scl-90-r-1"].get("text") != "One"
    assert now["scl-90-r-2"]["text"] == "Zwei"


def test_utf8_bom_and_surrounding_space_are_handled(
    run: Any, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflinkId,text\nscl-90-r-3,  Trimmed  \n".encode())
    assert run("wording", "load", "scl-90-r", str(path)).exit_code == 0
    assert items(served(db_url))["scl-90-r-3"]["text"] == "Trimmed"


REJECTED = {
    "linkId that is not a slot": (
        "linkId,text\nscl-90-r-1,Fine\nscl-90-r-total,Sneaky\n",
        "scl-90-r-total",
    ),
    "linkId of another form": ("linkId,text\nscl-90-r-1,Fine\nders-1,Other\n", "ders-1"),
    "empty text": ("linkId,text\nscl-90-r-1,Fine\nscl-90-r-2,\n", "line 3"),
    "blank text": ("linkId,text\nscl-90-r-1,Fine\nscl-90-r-2,   \n", "scl-90-r-2"),
    "empty linkId": ("linkId,text\n,Orphan\n", "line 2"),
    "duplicate linkId": ("linkId,text\nscl-90-r-1,A\nscl-90-r-1,B\n", "repeats"),
    "no header": ("scl-90-r-1,Fine\nscl-90-r-2,Also fine\n", "header"),
    "wrong header": ("id,wording\nscl-90-r-1,Fine\n", "header"),
    "missing text column": ("linkId,text\nscl-90-r-1\n", "line 2"),
    "text too long": ("linkId,text\nscl-90-r-1," + "x" * 2001 + "\n", "line 2"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_bad_wording_is_refused_and_nothing_loaded(
    run: Any, db_url: str, tmp_path: Path, case: str
) -> None:
    text, mentioned = REJECTED[case]
    path = write_csv(tmp_path / "bad.csv", text)
    before = served(db_url)
    result = run("wording", "load", "scl-90-r", str(path))
    assert result.exit_code != 0
    assert mentioned in result.output
    assert "Traceback" not in result.output
    assert served(db_url) == before


def test_refused_load_keeps_the_previous_wording(run: Any, db_url: str, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", "linkId,text\nscl-90-r-1,Kept\n")
    bad = write_csv(tmp_path / "bad.csv", "linkId,text\nscl-90-r-1,New\nnot-a-slot,x\n")
    assert run("wording", "load", "scl-90-r", str(good)).exit_code == 0
    assert run("wording", "load", "scl-90-r", str(bad)).exit_code != 0
    assert items(served(db_url))["scl-90-r-1"]["text"] == "Kept"


def test_missing_csv_file_is_refused(run: Any, tmp_path: Path) -> None:
    result = run("wording", "load", "scl-90-r", str(tmp_path / "absent.csv"))
    assert result.exit_code == 2
    assert "does not exist" in result.output
