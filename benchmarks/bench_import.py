"""Bulk import of 100,000 synthetic responses into SQLite and PostgreSQL: rate and peak RSS.

Goal (issue 7, "bulk backfill"): peak RSS grows by less than 50 MB from a 10,000-line import
to a 100,000-line one (the import streams). The responses are SYNTHETIC: random answers to the
nine scored catalogue instruments for 2,000 made-up patients, authored at random dates (the
file is not sorted), half with an identifier. Each import runs as `mit-fhir import` in a
child process on a fresh database, which reports its own peak RSS (VmHWM) and import time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.bulk.synthetic import responses, write_ndjson
from tests.conftest import POSTGRES_URL, ROOT

# BENCH_IMPORT_COUNTS="1000,5000" for a quick run; the figures reported use the defaults.
COUNTS = tuple(int(n) for n in os.environ.get("BENCH_IMPORT_COUNTS", "10000,100000").split(","))
PATIENTS = 2_000
GOAL_MB = 50


def generate(path: Path, count: int, patients: int = PATIENTS) -> None:
    """Write `count` synthetic QuestionnaireResponses as NDJSON, in random date order."""
    write_ndjson(path, responses(count, patients, seed="bench-import"))


def child(path: str) -> None:
    """In the child: import the file, then print the import time and peak RSS as JSON."""
    from click.testing import CliRunner

    from mit_fhir.cli import main

    start = time.perf_counter()
    result = CliRunner().invoke(main, ["import", path, "--no-progress"])
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text()
    hwm_kb = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith("VmHWM:")))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm_kb / 1024,
                      "exit": result.exit_code, "output": result.output[-2000:]}))


def _postgres_schema() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with create_engine(POSTGRES_URL, poolclass=NullPool).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def _drop_schema(schema: str) -> None:
    with create_engine(POSTGRES_URL, poolclass=NullPool).begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _import(path: Path, database_url: str) -> dict[str, object]:
    # Development mode: the import is a local command; no HTTP is served.
    env = {**os.environ, "MIT_FHIR_DATABASE_URL": database_url, "MIT_FHIR_AUTH": "none"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_import", "child", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["exit"] != 0:
        raise RuntimeError(f"the import failed: {result['output']}")
    return result


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    print(f"benchmark 5 - bulk import of synthetic responses ({PATIENTS} patients; "
          f"goal: peak RSS grows < {GOAL_MB} MB from {COUNTS[0]:,} to {COUNTS[1]:,})")
    with tempfile.TemporaryDirectory(prefix="mit-fhir-bench-import-") as tmp:
        files = {}
        for count in COUNTS:
            files[count] = Path(tmp) / f"synthetic-{count}.ndjson"
            generate(files[count], count)
        for database in ("sqlite", "postgresql"):
            peaks = []
            for count in COUNTS:
                schema = None
                if database == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'bench-{count}.sqlite3'}"
                else:
                    schema, url = _postgres_schema()
                try:
                    result = _import(files[count], url)
                finally:
                    if schema:
                        _drop_schema(schema)
                seconds, peak = float(result["seconds"]), float(result["peak_rss_mb"])
                peaks.append(peak)
                figures[f"{database}-{count}-rate"] = count / seconds
                figures[f"{database}-{count}-rss"] = peak
                print(f"  {database:10} {count:>7,} responses: {seconds:7.1f} s, "
                      f"{count / seconds:6.0f} responses/s, peak RSS {peak:6.1f} MB")
            growth = peaks[1] - peaks[0]
            figures[f"{database}-growth"] = growth
            print(f"  {database:10} RSS growth {growth:+.1f} MB  "
                  f"({'met' if growth < GOAL_MB else 'MISSED'})")
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        run()
