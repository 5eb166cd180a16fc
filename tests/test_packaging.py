"""The wheel, as a site would build and install it: no build warning, every runtime file inside.

The build runs on a copy of what a clone holds (setup files and mit_fhir/, plus a stand-in for the
browser libraries `make ui-assets` fetches), in a virtualenv of its own with the build-system
requirements of pyproject.toml and no build isolation, so that its whole output is the backend's.
"""

from __future__ import annotations

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
from tests.conftest import ROOT

PACKAGE = ROOT / "mit_fhir"
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "constraints.txt")
RUNTIME_FILES = ("migrations/versions/*.py", "data/*.json", "ui/templates/*.html",
                 "ui/static/*.js", "ui/static/*.css")
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


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True,
                            timeout=timeout, check=False, stdin=subprocess.DEVNULL)
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
