"""JSON Lines: one record a line, one page's lines in one write.

A run that is killed leaves a file whose every line is a complete record (see
``scraper.output.file``). This is the format for crawls that may be killed: no
closing bracket to lose, and ``cat`` joins two files into one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from scraper.models import Record
from scraper.output.file import OutputFile, encoded


class JsonLinesWriter:
    """Writes records to a file, a pipe or stdout as UTF-8 JSON Lines, never ASCII-escaped.

    ``count`` is the records written; ``rejected`` counts the records left out
    because JSON cannot hold them, by reason (``"FIELD: not finite"``, ...).
    """

    def __init__(self, path: str | Path | None = None, *, append: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self.rejected: Counter[str] = Counter()
        self._file = OutputFile(self.path, append=append)

    @property
    def size(self) -> int:
        """Bytes in the output file after the last write (0 for stdout, a pipe or a device)."""
        return self._file.size

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        """Write ``records`` as whole lines, in one write call; leave out what JSON cannot
        hold, and return those records by reason. ``url`` (the page's) is not written."""
        kept, rejected = encoded(records)
        self.rejected.update(rejected)
        if kept:
            lines = [text for _, text in kept]
            lines.append(b"")  # the last line's newline
            self.write_encoded(b"\n".join(lines), len(kept))
        return rejected

    def write_encoded(self, lines: bytes, count: int) -> None:
        """Write ``count`` records already encoded as JSON Lines by ``write``'s encoder
        (``lines`` ends with a newline), in one write call: the Redis record stream's text."""
        if lines:
            self._file.write(lines, self.count)
            self.count += count

    def close(self) -> None:
        """Close the file (stdout is only flushed)."""
        self._file.close()
