"""Reading NDJSON: line numbers, blank lines, over-long lines, gzip offsets, resuming."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from mit_fhir.bulk.reader import NdjsonReader, file_digest

TEXT = b'{"a": 1}\n\n  \n{"b": 2}\n' + b'{"long": "' + b"x" * 100 + b'"}\n{"c": 3}'


@pytest.fixture(params=["plain", "gzip"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "plain":
        target = tmp_path / "in.ndjson"
        target.write_bytes(TEXT)
    else:
        target = tmp_path / "in.ndjson.gz"
        target.write_bytes(gzip.compress(TEXT))
    return target


def test_lines_are_numbered_blank_ones_skipped_long_ones_flagged(path: Path) -> None:
    with NdjsonReader(path, max_line_bytes=50) as reader:
        lines = list(reader.lines())
        assert reader.position == reader.size == path.stat().st_size
    assert [(ln.number, ln.data) for ln in lines] == [
        (1, b'{"a": 1}\n'), (4, b'{"b": 2}\n'), (5, None), (6, b'{"c": 3}')]
    assert lines[-1].end == len(TEXT)


def test_reading_resumes_after_a_line_at_its_offset(path: Path) -> None:
    with NdjsonReader(path, max_line_bytes=50) as reader:
        second = list(reader.lines())[1]
    with NdjsonReader(path, max_line_bytes=50) as reader:
        rest = list(reader.lines(second.number, second.end))
    assert [ln.number for ln in rest] == [5, 6]


def test_the_digest_is_of_the_stored_bytes(path: Path) -> None:
    assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
