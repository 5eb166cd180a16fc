"""The FHIR mapping and psychometrics modules import without a database, web framework or HTTP
client: each one, alone in a fresh interpreter, leaves sqlalchemy, flask, werkzeug and requests
out of sys.modules (lint-imports checks the import graph; this checks what really runs)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import mit_fhir.fhir
import mit_fhir.psychometrics

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("sqlalchemy", "alembic", "psycopg", "flask", "werkzeug", "requests")
PACKAGES = (mit_fhir.fhir, mit_fhir.psychometrics)
MODULES = [package.__name__ for package in PACKAGES] + [
    info.name for package in PACKAGES
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
]
PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
forbidden = set(sys.argv[2:])
print(" ".join(sorted({name.split(".")[0] for name in sys.modules} & forbidden)))
"""


def test_every_module_is_probed() -> None:
    assert {"mit_fhir.fhir.search", "mit_fhir.fhir.paging", "mit_fhir.fhir.scoring",
            "mit_fhir.fhir.answer_weights", "mit_fhir.psychometrics.reliable_change",
            } <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_database_web_or_http_package(module: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, *FORBIDDEN],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} pulls in {result.stdout.strip()}"
