"""A JSON array: ``[``, one record a line with commas between, ``]`` when the run ends.

The closing bracket is written by ``close()``, which a run reaches however it
ends but by ``kill -9`` (Ctrl-C, SIGTERM, an error included): a killed run
leaves whole records and no ``]``. Continuing such a file (``append``, as
``--resume`` and the Redis exporter do) takes off a closing bracket if there is
one and writes on, so the array stays one. JSON Lines is the format for crawls
that may be killed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from scraper.errors import OutputError
from scraper.models import Record
from scraper.output.file import OutputFile, encoded

OPEN, CLOSE = b"[", b"\n]\n"


class JsonArrayWriter:
    """Writes records as the items of one JSON array (see the module)."""

    def __init__(self, path: Path | None, *, append: bool = False) -> None:
        self.path = path
        self.count = 0
        self.rejected: Counter[str] = Counter()
        self._file = OutputFile(path, append=append)
        self._first = True
        if self._file.size == 0:
            self._file.write(OPEN, 0)
        else:
            self._continue()

    @property
    def size(self) -> int:
        """Bytes of the array so far, without its closing bracket (0 for stdout or a pipe)."""
        return self._file.size

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        """Write one page's records as array items, in one write call; leave out what
        JSON cannot hold, and return those records by reason."""
        kept, rejected = encoded(records)
        self.rejected.update(rejected)
        if kept:
            items = b",\n".join(text for _, text in kept)
            self._file.write((b"\n" if self._first else b",\n") + items, self.count)
            self._first = False
            self.count += len(kept)
        return rejected

    def close(self) -> None:
        """Write the closing bracket and close the file."""
        try:
            self._file.write(CLOSE, self.count)
        except BrokenPipeError:
            pass  # the reader of stdout went away: it wanted no more
        finally:
            self._file.close()

    def _continue(self) -> None:
        """Take off the closing bracket the file ends with, if any; note whether the
        array holds items yet."""
        end = self._file.size
        tail = self._file.read(max(0, end - 64), end)
        kept = tail.rstrip()
        if kept.endswith(b"]"):
            kept = kept[:-1].rstrip()
            self._file.cut(end - len(tail) + len(kept))
        if self._file.read(0, 1) != OPEN:
            raise OutputError(
                f"cannot continue {self._file.name}: it does not start with '[', so it is "
                "not a JSON array this tool wrote. Move it away to start anew."
            )
        self._first = kept.endswith(OPEN)
