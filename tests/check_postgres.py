"""`make test` runs the suite on PostgreSQL too: fail at once, and clearly, if it is not there.

Usage: python tests/check_postgres.py  (MIT_FHIR_TEST_POSTGRES_URL, default the local server).
"""

from __future__ import annotations

import os
import sys

import psycopg
from sqlalchemy import make_url

URL = os.environ.get("MIT_FHIR_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


def main() -> int:
    url = make_url(URL)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        print(
            f"make test: PostgreSQL does not answer at {url!r}: {str(exc).strip()}\n"
            "The suite runs on SQLite and then on PostgreSQL. Start the server "
            "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), or run "
            ".ci/run, which installs and starts it; point MIT_FHIR_TEST_POSTGRES_URL elsewhere; "
            "or run only SQLite with `make test TEST_DATABASES=sqlite`.",
            file=sys.stderr,
        )
        return 1
    print(f"make test: PostgreSQL {version[0] if version else '?'} answers at {url!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
