"""Streaming records out as JSON Lines, one page's records at a time.

Each page's records go out in one ``os.write`` of whole lines, so a run that is
killed leaves a file whose every line is a complete record; a write that fails
part-way (a full disk) is cut back to the last complete line before the error
is raised. Only strict JSON in valid UTF-8 is written: every record of a page is
encoded before any is written, and a record that cannot be (a NaN, a set, a lone
surrogate) is left out with a warning, never written half or as something else.

``RunLock`` keeps a second run off an output (or a state file) that a run is
writing: ``PATH.lock`` beside it, held with ``flock`` and naming the holder's PID.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import date
from datetime import time as time_of_day
from pathlib import Path
from typing import IO, Any, Protocol

from scraper.errors import OutputError, ScraperError
from scraper.models import Record

log = logging.getLogger("scraper")


class RecordSink(Protocol):
    """Where a crawl puts records: a JSON Lines file, or a check in ``scraper test``.

    ``size`` is how many bytes of output the records so far fill (0 when there is no
    file), which ``--resume`` keeps to cut a half-written output back to.
    """

    size: int

    def write(self, records: Iterable[Record]) -> Counter[str]:
        """Take the records of one page; return those left out, by reason (usually none)."""


class JsonLinesWriter:
    """Writes records to a file, a pipe or stdout as UTF-8 JSON Lines, never ASCII-escaped.

    ``count`` is the records written; ``rejected`` counts the records left out
    because JSON cannot hold them, by reason (``"FIELD: not finite"``, ...).
    """

    def __init__(self, path: str | Path | None = None, *, append: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self.size = 0
        """Bytes in the output file after the last write (0 for stdout, a pipe or a device)."""
        self.rejected: Counter[str] = Counter()
        self._name = str(self.path) if self.path is not None else "stdout"
        self._stream: IO[bytes] | None = None
        self._fd = -1
        self._regular = False
        if self.path is None:
            if sys.stdout is None:
                raise OutputError("stdout is closed: give the records a file with -o PATH.")
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
        # A FIFO, /dev/stdout on a pipe or a device has no size to keep nor disk to check.
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        if self._regular:
            self.size = os.lseek(self._fd, 0, os.SEEK_END)
            self._check_space()

    def write(self, records: Iterable[Record]) -> Counter[str]:
        """Write ``records`` as whole lines, in one write call; leave out what JSON cannot
        hold, and return those records by reason."""
        lines = []
        rejected: Counter[str] = Counter()
        for record in records:
            try:
                lines.append(_ENCODER.encode(record).encode("utf-8"))
            except (TypeError, ValueError, RecursionError) as exc:
                reason = _rejection(record, exc)
                rejected[reason] += 1
                log.warning("not writing a record: %s", reason)
        self.rejected.update(rejected)
        if lines:
            lines.append(b"")
            self._write_whole(b"\n".join(lines))
            self.count += len(lines) - 1
        return rejected

    def write_encoded(self, lines: bytes, count: int) -> None:
        """Write ``count`` records already encoded as JSON Lines by ``write``'s encoder
        (``lines`` ends with a newline), in one write call: the Redis record stream's text."""
        if lines:
            self._write_whole(lines)
            self.count += count

    def close(self) -> None:
        """Close the file (stdout is only flushed)."""
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.flush()
        elif self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write_whole(self, data: bytes) -> None:
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
            if self._regular:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self.size)
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise OutputError(
                f"writing {self._name} failed: {reason}. The {self.count} records before "
                "this page are in the file, complete."
            ) from None
        if self._regular:
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
    # Dates (a YAML date in `default:`) have one obvious JSON form; anything else
    # unknown is refused rather than written as its str().
    if isinstance(value, (date, time_of_day)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_jsonable)


def _rejection(record: Any, error: Exception) -> str:
    """Why ``record`` cannot be written, as ``FIELD: what is wrong`` where one field is."""
    if isinstance(record, dict):
        for name, value in record.items():
            if not isinstance(name, str):
                return f"{name!r}: a field name that is not text"
            try:
                _ENCODER.encode(value).encode("utf-8")
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


class RunLock:
    """One run's claim on a file it writes (the output, the crawl state).

    The claim is ``PATH.lock`` beside the file, locked with ``flock`` and holding
    the run's PID; the kernel drops the lock when the process ends, however it
    ends (``kill -9`` too), so a stale lock file never blocks a later run. Only
    files that two runs can share by name are claimed: regular files (or paths
    not created yet) and named pipes, not terminals, devices or stdout's pipe.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def claim(cls, path: str | Path, option: str) -> RunLock | None:
        """Claim ``path`` for this run, or raise naming the run that holds it.

        ``option`` is how the user chooses another path (``-o PATH``). Returns
        ``None`` when ``path`` is not a file to claim, or no lock file can be made
        beside it (a read-only folder); the run then goes on without one.
        """
        real = Path(os.path.realpath(path))
        try:
            mode = real.stat().st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG  # created by this run
        except OSError:
            return None  # /dev/stdout on a pipe resolves to no path at all
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            return None
        lock_path = real.with_name(real.name + ".lock")
        while True:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                by = f"another scraper run (pid {holder})" if holder else "another scraper run"
                raise ScraperError(
                    f"{path} is being written by {by}; wait for it to finish "
                    f"or choose another {option}."
                ) from None
            # The holder before us may have removed the file between our open and
            # our flock: then we hold a lock on a name nobody else sees. Try again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(lock_path, fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock (removed first, so no one locks a ghost)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = -1


def _read_pid(fd: int) -> int | None:
    # The holder writes its PID just after taking the lock: give it a moment.
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.005)
    return None
