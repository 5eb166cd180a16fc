"""Reading an NDJSON file (plain or gzip) line by line, resumable at a byte offset."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Line:
    """One non-blank line: its number (from 1), its bytes (None when too long), where it ends."""

    number: int
    data: bytes | None
    end: int  # uncompressed offset just after the line


def file_digest(path: Path) -> str:
    """SHA-256 of the file as stored (compressed or not): the import's identity."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class NdjsonReader:
    """Lines of an NDJSON file, decompressed when it starts with the gzip magic number.

    `position` is the offset in the file as stored (for the progress bar); line offsets are
    in the uncompressed stream, where a resumed run seeks to (gzip: by decompressing forward).
    """

    def __init__(self, path: Path, max_line_bytes: int) -> None:
        self.size = path.stat().st_size
        self._raw: BinaryIO = path.open("rb")
        magic = self._raw.read(2)
        self._raw.seek(0)
        self._stream: BinaryIO = (
            gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
            if magic == GZIP_MAGIC else self._raw
        )
        self.max_line_bytes = max_line_bytes

    @property
    def position(self) -> int:
        """Bytes of the stored file consumed so far."""
        return self._raw.tell()

    def lines(self, after_line: int = 0, offset: int = 0) -> Iterator[Line]:
        """Non-blank lines after line `after_line`, which ends at uncompressed `offset`."""
        self._stream.seek(offset)
        number, end = after_line, offset
        while True:
            data = self._stream.readline(self.max_line_bytes + 1)
            if not data:
                return
            number += 1
            end += len(data)
            if len(data) > self.max_line_bytes and not data.endswith(b"\n"):
                end += self._skip_rest()
                yield Line(number, None, end)
            elif data.strip():
                yield Line(number, data, end)

    def _skip_rest(self) -> int:
        skipped = 0
        while True:
            data = self._stream.readline(CHUNK)
            skipped += len(data)
            if not data or data.endswith(b"\n"):
                return skipped

    def close(self) -> None:
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> NdjsonReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
