"""The built wheel carries every file the service reads at run time (the image installs it)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "mit_fhir"
RUNTIME_FILES = ("migrations/versions/*.py", "data/*.json", "ui/templates/*.html",
                 "ui/static/*.js", "ui/static/*.css")


def test_the_wheel_has_every_migration_template_and_data_file(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = tmp_path.glob("mit_fhir-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"mit_fhir/{p.relative_to(PACKAGE)}" for pattern in RUNTIME_FILES
                for p in PACKAGE.glob(pattern)}
    assert len([n for n in expected if "/versions/" in n]) >= 6
    assert expected - names == set()
