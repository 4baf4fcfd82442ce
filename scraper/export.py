"""Streaming records out as JSON Lines, one page's records at a time.

Each page's records go out in one ``os.write`` of whole lines, so a run that is
killed leaves a file whose every line is a complete record; a write that fails
part-way (a full disk) is cut back to the last complete line before the error
is raised.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Protocol

from scraper.errors import OutputError
from scraper.models import Record


class RecordSink(Protocol):
    """Where a crawl puts records: a JSON Lines file, or a check in ``scraper test``.

    ``size`` is how many bytes of output the records so far fill (0 when there is no
    file), which ``--resume`` keeps to cut a half-written output back to.
    """

    size: int

    def write(self, records: Iterable[Record]) -> None:
        """Take the records of one page."""


class JsonLinesWriter:
    """Writes records to a file (or stdout) as UTF-8 JSON Lines, never ASCII-escaped."""

    def __init__(self, path: str | Path | None = None, *, append: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self.size = 0
        """Bytes in the output file after the last write (0 for stdout)."""
        self._stream: IO[bytes] | None = None
        self._fd = -1
        if self.path is None:
            self._stream = sys.stdout.buffer
            return
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise OutputError(
                f"cannot write the output {self.path}: {exc.strerror}. "
                "Choose a path in a writable folder with -o PATH."
            ) from None
        self.size = os.lseek(self._fd, 0, os.SEEK_END)
        self._check_space()

    def write(self, records: Iterable[Record]) -> None:
        """Write ``records`` as whole lines, in one write call."""
        encode = _ENCODER.encode
        lines = [encode(record) for record in records]
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self._stream is not None:
            self._stream.write(data)
            self._stream.flush()
        else:
            self._write_whole(data)
        self.count += len(lines)

    def close(self) -> None:
        """Close the file (stdout is only flushed)."""
        if self._stream is not None:
            self._stream.flush()
        elif self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write_whole(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.size)
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise OutputError(
                f"writing {self.path} failed: {reason}. The {self.count} records before "
                "this page are in the file, complete."
            ) from None
        self.size += len(data)

    def _check_space(self) -> None:
        assert self.path is not None
        stats = os.statvfs(self.path.parent if str(self.path.parent) else ".")
        if stats.f_bavail * stats.f_frsize < 1024 * 1024:
            raise OutputError(
                f"less than 1 MiB is free where {self.path} would be written; "
                "free some space or choose another path with -o PATH."
            )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_jsonable)
