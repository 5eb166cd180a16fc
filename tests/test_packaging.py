"""The wheel, as a site would build and install it: no build warning, every runtime file inside.

The build runs on a copy of what a clone holds (setup files and mit_fhir/, plus a stand-in for the
browser libraries `make ui-assets` fetches), in a virtualenv of its own with the build-system
requirements of pyproject.toml and no build isolation, so that its whole output is the backend's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from mit_fhir.config import ConfigError, load_settings
from tests.conftest import ROOT, SAMPLES, load_json

PACKAGE = ROOT / "mit_fhir"
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "constraints.txt")
RUNTIME_FILES = ("migrations/versions/*.py", "data/*.json", "questionnaires/*.json",
                 "profiles/*.json", "ui/templates/*.html", "ui/static/*.js", "ui/static/*.css")
# What a build says when something is wrong or about to break: setuptools' warnings and its
# "!!" notice boxes, deprecations.
WARNING = re.compile(r"warn|!!|deprecat", re.IGNORECASE)


@dataclass(frozen=True)
class Built:
    """A wheel built in `venv`, with the build's output."""

    wheel: Path
    output: str
    venv: Path


def clean_env() -> dict[str, str]:
    """The environment without this checkout on the path (the suite's PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")
           and not k.startswith("MIT_FHIR_")}
    env["PIP_ROOT_USER_ACTION"] = "ignore"
    return env


def run(args: list[str], cwd: Path, timeout: int = 600, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env={**clean_env(), **(env or {})},
                            capture_output=True, text=True, timeout=timeout, check=False,
                            input=stdin if stdin is not None else "")
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Build the wheel once for this module."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "mit_fhir", symlinks=True, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "vendor"))
    # What `make ui-assets` leaves in a checkout; the wheel must not take it.
    vendor = src / "mit_fhir" / "ui" / "static" / "vendor" / "lforms" / "webcomponent"
    vendor.mkdir(parents=True)
    (vendor / "lhc-forms.js").write_text("// stand-in\n")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    run([str(venv / "bin" / "pip"), "install", "--quiet", *requires], cwd=tmp)
    out = tmp / "dist"
    result = run([str(venv / "bin" / "pip"), "wheel", "-v", "--no-deps", "--no-build-isolation",
                  "--wheel-dir", str(out), str(src)], cwd=tmp)
    (wheel,) = out.glob("mit_fhir-*.whl")
    return Built(wheel, result.stdout + result.stderr, venv)


@pytest.mark.slow
def test_the_build_prints_no_warning(built: Built) -> None:
    warnings = [line.strip() for line in built.output.splitlines() if WARNING.search(line)]
    assert "Building wheel for mit-fhir" in built.output  # the backend's output is all here
    assert warnings == []


@pytest.mark.slow
def test_the_wheel_has_every_migration_template_and_data_file(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    expected = {f"mit_fhir/{p.relative_to(PACKAGE)}" for pattern in RUNTIME_FILES
                for p in PACKAGE.glob(pattern)}
    assert len([n for n in expected if "/versions/" in n]) >= 6
    assert "mit_fhir/questionnaires/phq-9.json" in expected
    assert "mit_fhir/profiles/psychometrics.json" in expected
    assert expected - names == set()
    # Only the package: no tests, and not the fetched browser libraries (the image has them apart).
    dist_info = "-".join(built.wheel.name.split("-")[:2]) + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"mit_fhir", dist_info}
    assert [n for n in names if "/vendor/" in n] == []


@pytest.mark.parametrize("name", ["QUESTIONNAIRE_DIR", "PROFILE_DIR"])
def test_a_missing_content_directory_is_named_with_its_path(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "site-packages" / "questionnaires"
    with pytest.raises(ConfigError) as caught:
        load_settings({"AUTH": "none", name: str(missing)})
    assert str(caught.value) == (f"invalid configuration: MIT_FHIR_{name}: not a directory: "
                                 f"{missing}")


# Run by the installed package's own interpreter, from a directory that holds nothing of this
# checkout: the catalogue, psychometrics.json, the migrations, a template and a page script, all
# read from inside the package.
FROM_THE_PACKAGE = """
import json, sys
import mit_fhir
from mit_fhir.app import create_app
print(mit_fhir.__file__)


def values(bundle):
    for entry in bundle["entry"]:  # the panel has members, not a value
        obs = entry["resource"]
        if "valueQuantity" in obs:
            yield str(obs["valueQuantity"]["value"])
        elif "valueCodeableConcept" in obs:
            yield obs["valueCodeableConcept"]["coding"][0]["code"]


client = create_app().test_client()
form = client.get("/fhir/Questionnaire/phq-9")
posted = client.post("/fhir/QuestionnaireResponse", data=sys.stdin.read(),
                     content_type="application/fhir+json")
patient = posted.get_json()["subject"]["reference"].split("/")[1]
scores = client.get(f"/fhir/Observation?subject=Patient/{patient}")
page = client.get(f"/app/patients/{patient}/outcomes")
script = client.get("/app/static/outcomes.js")
print(json.dumps({"form": [form.status_code, form.get_json()["id"]],
                  "posted": posted.status_code,
                  "scores": sorted(values(scores.get_json())),
                  "page": [page.status_code, b"<html" in page.data],
                  "script": [script.status_code, len(script.data) > 1000]}))
"""


@pytest.mark.slow
def test_the_installed_wheel_serves_its_own_catalogue_from_anywhere(built: Built,
                                                                    tmp_path: Path) -> None:
    pip, python = built.venv / "bin" / "pip", built.venv / "bin" / "python"
    run([str(pip), "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(built.wheel)],
        cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"MIT_FHIR_AUTH": "none",
           "MIT_FHIR_DATABASE_URL": f"sqlite:///{elsewhere / 'mit-fhir.sqlite3'}"}
    mit_fhir = str(built.venv / "bin" / "mit-fhir")
    run([mit_fhir, "db", "upgrade"], cwd=elsewhere, env=env)
    assert "configuration ok" in run([mit_fhir, "check-config"], cwd=elsewhere, env=env).stdout
    result = run([str(python), "-c", FROM_THE_PACKAGE], cwd=elsewhere, env=env,
                 stdin=(SAMPLES / "phq-9" / "complete.json").read_text())
    lines = result.stdout.strip().splitlines()
    where, found = lines[0], lines[-1]
    assert where.startswith(str(built.venv / "lib"))
    scored = load_json(SAMPLES / "phq-9" / "complete.expected.json")  # the golden scores
    assert json.loads(found) == {
        "form": [200, "phq-9"], "posted": 201,
        "scores": sorted([str(scored["phq-9-total"]), scored["phq-9-severity"]]),
        "page": [200, True], "script": [200, True]}
