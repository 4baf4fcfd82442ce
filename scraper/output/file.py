"""A file (or stdout) that an output writes whole pages to, and the JSON every format checks.

``OutputFile`` writes each page's bytes in one go: ``os.write`` until all is
out, and on a failure part-way (a full disk) the file is cut back to its size
before the page, so a file never ends in half a page. ``size`` is the bytes that
hold the pages written, which ``--resume`` keeps to cut the file back to.

``encoded`` turns a page's records into JSON text: every format writes only what
strict JSON in UTF-8 can hold, so each format holds the same records; a record
that cannot be (a NaN, a set, a lone surrogate) is left out with a warning and
counted by ``FIELD: what is wrong``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import date
from datetime import time as time_of_day
from pathlib import Path
from typing import IO, Any

from scraper.errors import OutputError
from scraper.models import Record

log = logging.getLogger("scraper")


class OutputFile:
    """A regular file, a pipe, a device or stdout (``path`` None), written in whole pages.

    ``append`` keeps what the file holds; otherwise it is emptied.
    """

    def __init__(self, path: Path | None, *, append: bool = False) -> None:
        self.path = path
        self.name = str(path) if path is not None else "stdout"
        self.size = 0
        """Bytes in the file after the last write (0 for stdout, a pipe or a device)."""
        self.regular = False
        """Whether it is a regular file (one that has a size to keep and to cut back to)."""
        self._stream: IO[bytes] | None = None
        self._fd = -1
        if path is None:
            if sys.stdout is None:
                raise OutputError("stdout is closed: give the records a file with -o PATH.")
            self._stream = sys.stdout.buffer
            return
        self._fd = open_for_writing(path, append=append)
        # A FIFO, /dev/stdout on a pipe or a device has no size to keep nor disk to check.
        self.regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        if self.regular:
            self.size = os.lseek(self._fd, 0, os.SEEK_END)
            check_space(path)

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of a regular file (b"" for anything else)."""
        if not self.regular or self.path is None:
            return b""
        with self.path.open("rb") as file:  # the file is open write-only, as a FIFO must be
            file.seek(start)
            return file.read(max(0, end - start))

    def cut(self, size: int) -> None:
        """Cut a regular file back to ``size`` bytes (what follows goes after them)."""
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            raise OutputError(f"cannot write the output {self.name}: {exc.strerror}.") from None
        self.size = size

    def write(self, data: bytes, records_before: int) -> None:
        """Write ``data`` whole, or cut the file back and raise ``OutputError`` saying that
        the ``records_before`` records before it are in the file, complete."""
        view = memoryview(data)
        try:
            if self._stream is not None:
                self._stream.write(data)
                self._stream.flush()
            while self._stream is None and view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BrokenPipeError:
            raise  # the reader went away (`| head`): the CLI ends the run quietly
        except OSError as exc:
            if self.regular:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self.size)
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise OutputError(
                f"writing {self.name} failed: {reason}. The {records_before} records before "
                "this page are in the file, complete."
            ) from None
        if self.regular:
            self.size += len(data)

    def close(self) -> None:
        """Close the file (stdout is only flushed)."""
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.flush()
        elif self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_for_writing(path: Path, *, append: bool) -> int:
    """``path`` opened for writing (created if missing, emptied unless ``append``), or an
    ``OutputError`` that says why it cannot be and what to do."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        return os.open(path, flags, 0o644)
    except OSError as exc:
        raise OutputError(
            f"cannot write the output {path}: {exc.strerror}. "
            "Choose a path in a writable folder with -o PATH."
        ) from None


def check_space(path: Path) -> None:
    """Refuse to start writing where less than 1 MiB is free."""
    stats = os.statvfs(path.parent if str(path.parent) else ".")
    if stats.f_bavail * stats.f_frsize < 1024 * 1024:
        raise OutputError(
            f"less than 1 MiB is free where {path} would be written; "
            "free some space or choose another path with -o PATH."
        )


def encoded(records: Iterable[Record]) -> tuple[list[tuple[Record, bytes]], Counter[str]]:
    """Each record with its JSON text in UTF-8, and those JSON cannot hold, left out by
    reason (each logged as a warning)."""
    kept: list[tuple[Record, bytes]] = []
    rejected: Counter[str] = Counter()
    for record in records:
        try:
            text = ENCODER.encode(record).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            reason = rejection(record, exc)
            rejected[reason] += 1
            log.warning("not writing a record: %s", reason)
            continue
        kept.append((record, text))
    return kept, rejected


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it (the ``default`` of the outputs' encoder): a date or
    a time as its ISO text; ``TypeError`` for anything else."""
    # Dates (a YAML date in `default:`) have one obvious JSON form; anything else
    # unknown is refused rather than written as its str().
    if isinstance(value, (date, time_of_day)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=jsonable)
"""The JSON every output writes: UTF-8 as is, strict (no NaN), dates as ISO text."""


def rejection(record: Any, error: Exception) -> str:
    """Why ``record`` cannot be written, as ``FIELD: what is wrong`` where one field is."""
    if isinstance(record, dict):
        for name, value in record.items():
            if not isinstance(name, str):
                return f"{name!r}: a field name that is not text"
            try:
                ENCODER.encode(value).encode("utf-8")
            except (TypeError, ValueError, RecursionError) as exc:
                return f"{name}: {_what(exc)}"
    else:
        return f"not a record but {type(record).__name__}"
    return _what(error)


def _what(error: Exception) -> str:
    if isinstance(error, UnicodeEncodeError):
        return "lone surrogate"
    if isinstance(error, RecursionError):
        return "nested too deep"
    text = str(error)
    if text.startswith("Out of range float"):
        return "not finite"
    if text.startswith("Circular reference"):
        return "refers to itself"
    if text.startswith("keys must be"):
        return "a key that is not text"
    return text if text.endswith(" is not JSON") else "not JSON"
