"""The `mit-fhir` command: settings each command needs, exit statuses, database failures,
and the licensed-wording path for SCL-90-R."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect

from mit_fhir.app import create_app
from mit_fhir.cli import main
from mit_fhir.cli.exits import Exit
from mit_fhir.store.migrate import is_current
from tests.conftest import ROOT, sample, service_env
from tests.servers.fixtures import free_port

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
    assert result.exit_code == Exit.DATA
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


# Commands that serve no HTTP validate only what they use (issue 15) ----------------------
# What the migrate Job and the worker Deployment get from the shared ConfigMap: jwt without
# an issuer, a metrics-token file the Job does not mount, no SMART client.
MANIFEST_LIKE = {"MIT_FHIR_AUTH": "jwt",
                 "MIT_FHIR_METRICS_TOKEN_FILE": "/var/run/secrets/mit-fhir/metrics-token",
                 "MIT_FHIR_CORS_ORIGINS": "*"}  # even an HTTP value that serve would refuse
NO_HTTP_SETTINGS = [pytest.param({"MIT_FHIR_AUTH": None}, id="auth-unset"),
                    pytest.param(MANIFEST_LIKE, id="jwt-without-issuer")]


def ndjson(path: Path, *resources: Any) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return path


@pytest.mark.parametrize("http", NO_HTTP_SETTINGS)
def test_store_commands_run_without_http_settings(
    db_url: str, tmp_path: Path, http: dict[str, str | None]
) -> None:
    env = {"MIT_FHIR_DATABASE_URL": db_url, **http}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env)

    assert invoke("serve", "--port", "1").exit_code == Exit.CONFIG  # serve does need them
    upgraded = invoke("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    imported = invoke("import", str(ndjson(tmp_path / "in.ndjson", sample("phq-9"))))
    assert imported.exit_code == 0, imported.output
    assert "accepted:          1" in imported.output
    exported = invoke("export", "--since", "2000-01-01")
    assert exported.exit_code == 0, exported.output
    assert '"resourceType": "Observation"' in exported.stdout.replace('":"', '": "')
    assert invoke("wording", "template", "scl-90-r").exit_code == 0
    wording = write_csv(tmp_path / "w.csv", "linkId,text\nscl-90-r-1,Licensed one\n")
    assert invoke("wording", "load", "scl-90-r", str(wording)).exit_code == 0
    assert invoke("sync", "status").exit_code == 0
    demo = invoke("demo", "load")
    assert demo.exit_code == 0, demo.output
    pairs = write_csv(tmp_path / "pairs.csv", "pre,post\n2.0,1.0\n1.5,1.4\n")
    change = invoke("reliable-change", str(pairs), "--pre-column", "pre", "--post-column",
                    "post", "--instrument", "scl-90-r")
    assert change.exit_code == 0, change.output


def test_the_worker_validates_what_sync_needs_not_http(db_url: str) -> None:
    env = {"MIT_FHIR_DATABASE_URL": db_url, "MIT_FHIR_AUTH": None,
           "MIT_FHIR_EHR_BASE_URL": "http://127.0.0.1:9/fhir", "MIT_FHIR_EHR_AUTH": "bearer"}
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == Exit.CONFIG
    assert "MIT_FHIR_EHR_BEARER_TOKEN_FILE: required when MIT_FHIR_EHR_AUTH=bearer" in result.output
    assert "AUTH_ISSUER" not in result.output


def test_the_worker_starts_without_http_settings(db_url: str, tmp_path: Path) -> None:
    env = service_env(DATABASE_URL=db_url, EHR_BASE_URL="http://127.0.0.1:9/fhir",
                      **{k.removeprefix("MIT_FHIR_"): v for k, v in MANIFEST_LIKE.items()})
    proc = subprocess.Popen([sys.executable, "-m", "mit_fhir", "worker"], env=env, cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "sync worker" in first and "started" in first, first
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_import_exit_status_tells_partial_from_nothing_stored(run: Any, tmp_path: Path) -> None:
    bad = {"resourceType": "QuestionnaireResponse", "status": "completed",
           "questionnaire": "http://example.org/unknown-form"}
    nothing = run("import", str(ndjson(tmp_path / "bad.ndjson", bad, bad)))
    assert nothing.exit_code == Exit.DATA == 65, nothing.output
    assert "rejected:          2" in nothing.output
    partial = run("import", str(ndjson(tmp_path / "mixed.ndjson", sample("gad-7"), bad)))
    assert partial.exit_code == Exit.PARTIAL == 3, partial.output
    again = run("import", str(ndjson(tmp_path / "mixed.ndjson", sample("gad-7"), bad)))
    assert again.exit_code == Exit.PARTIAL  # the good line is stored (as "already imported")


COMMANDS = [("serve",), ("check-config",), ("db", "upgrade"), ("worker",), ("import",),
            ("export",), ("wording", "load"), ("wording", "template"), ("demo", "load"),
            ("sync", "status"), ("sync", "retry")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_help_lists_the_exit_statuses(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Exit status:" in result.output
    assert "78  bad configuration" in result.output
    if command not in {("wording", "template")}:
        assert "69  the database cannot be reached" in result.output
    if command == ("import",):
        assert "3  partly done" in result.output and "65  bad input" in result.output


def test_serve_help_documents_make_run_and_the_pools() -> None:
    text = " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())
    assert "HOST=127.0.0.1 PORT=8080" in text
    assert "--workers" in text and "--threads" in text and "--control-socket" in text


# An unreachable or misspelt database: one line naming the host, never the password -------
UNREACHABLE = [
    pytest.param("postgresql://mit:hunter2@127.0.0.1:{port}/mit", "127.0.0.1",
                 "Connection refused", id="refused"),
    pytest.param("postgres://mit:hunter2@db-typo.invalid/mit", "db-typo.invalid",
                 "failed to resolve host", id="misspelt-host"),
]


@pytest.mark.parametrize(("url", "host", "cause"), UNREACHABLE)
@pytest.mark.parametrize("command", [("db", "upgrade"), ("worker",), ("import", "{file}"),
                                     ("export", "--since", "2020-01-01")], ids=" ".join)
def test_an_unreachable_database_is_one_line(
    tmp_path: Path, url: str, host: str, cause: str, command: tuple[str, ...]
) -> None:
    file = ndjson(tmp_path / "in.ndjson", sample("phq-9"))
    args = [a.format(file=file) for a in command]
    env = service_env(DATABASE_URL=url.format(port=free_port()),
                      EHR_BASE_URL="http://127.0.0.1:9/fhir")
    del env["MIT_FHIR_AUTH"]  # none of these commands serves HTTP
    result = subprocess.run([sys.executable, "-m", "mit_fhir", *args], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == Exit.UNAVAILABLE == 69, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"PostgreSQL at {host}" in lines[0] and cause in lines[0]
    assert "hunter2" not in result.stderr + result.stdout


def test_postgres_spelling_reaches_postgresql(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the PostgreSQL spelling is checked on the PostgreSQL run")
    for scheme in ("postgres://", "postgresql://"):
        url = scheme + db_url.split("://", 1)[1]
        result = CliRunner().invoke(main, ["db", "upgrade"], env={"MIT_FHIR_DATABASE_URL": url})
        assert result.exit_code == 0, result.output


def test_the_command_imports_no_metrics_before_serve_prepares_them() -> None:
    # prometheus_client reads PROMETHEUS_MULTIPROC_DIR when imported: imported with the command,
    # before `serve` sets it, each gunicorn worker would count alone and /metrics would miss
    # the other workers' requests.
    code = "import sys, mit_fhir.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)
    assert result.stdout.strip() == "False"
