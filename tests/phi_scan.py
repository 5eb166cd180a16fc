"""Search the service's logs of a test run for the test patients' identifying data.

Usage: python -m tests.phi_scan build/logs/<database>   (make test runs it after each pass)

The terms are every name, birth date and phone number of tests/data/test-people.json, of the
sample responses (answers to linkIds ending in -name, -phone or -birthdate) and of any Patient
resource under tests/data. Phone numbers are also searched with their digits only. Exit 1 naming
the file, line and kind of every hit (never the term itself); exit 2 when there is too little to
scan, so that an empty log directory cannot pass.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
MIN_LINES = 2000


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def terms() -> dict[str, str]:
    """term -> kind (name, phone, birth date)."""
    found: dict[str, str] = {}
    people = json.loads((DATA / "test-people.json").read_text(encoding="utf-8"))
    for person in people["people"]:
        found[person["name"]] = "name"
        if person.get("phone"):
            found[person["phone"]] = "phone"
        if person.get("birthDate"):
            found[person["birthDate"]] = "birth date"
    for path in DATA.rglob("*.json"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        for node in _walk(doc):
            link = str(node.get("linkId", ""))
            for answer in node.get("answer", []) if isinstance(node.get("answer"), list) else []:
                value = answer.get("valueString") if isinstance(answer, dict) else None
                if isinstance(value, str):
                    for suffix, kind in (("-name", "name"), ("-phone", "phone"),
                                         ("-birthdate", "birth date")):
                        if link.endswith(suffix):
                            found[value] = kind
            if node.get("resourceType") == "Patient":
                for name in node.get("name", []):
                    for part in [name.get("family"), *name.get("given", [])]:
                        if isinstance(part, str) and len(part) > 2:
                            found[part] = "name"
                if node.get("birthDate"):
                    found[node["birthDate"]] = "birth date"
                for telecom in node.get("telecom", []):
                    if telecom.get("value"):
                        found[telecom["value"]] = "phone"
    for term, kind in list(found.items()):
        if kind == "phone":
            digits = re.sub(r"\D", "", term)
            if len(digits) >= 7:
                found[digits] = "phone"
    return found


def scan(log_dir: Path, wanted: dict[str, str]) -> tuple[int, list[str]]:
    """(lines scanned, hits as 'file:line: kind')."""
    pattern = re.compile("|".join(re.escape(t) for t in sorted(wanted, key=len, reverse=True)),
                         re.IGNORECASE)
    lowered = {t.lower(): k for t, k in wanted.items()}
    lines, hits = 0, []
    for path in sorted(p for p in log_dir.rglob("*") if p.suffix in (".log", ".jsonl")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                lines += 1
                match = pattern.search(line)
                if match:
                    kind = lowered.get(match.group(0).lower(), "data")
                    hits.append(f"{path.relative_to(log_dir)}:{number}: a test patient's {kind}")
    return lines, hits


def main(argv: list[str]) -> int:
    log_dir = Path(argv[0]) if argv else Path("build/logs")
    wanted = terms()
    lines, hits = scan(log_dir, wanted)
    print(f"phi_scan: {lines} log lines in {log_dir}, {len(wanted)} terms, {len(hits)} hits")
    if lines < MIN_LINES:
        print(f"phi_scan: fewer than {MIN_LINES} lines: the logs were not captured")
        return 2
    for hit in hits[:50]:
        print(f"phi_scan: {hit}")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
