"""CSV: a header row of the spider's fields, then one row a record, a page's rows in one write.

The header is the spider's fields in the order it defines them
(``scraper.output.columns``): a field only some records have still has its
column, empty where a record lacks it. A spider with a callback page kind makes
its fields as it runs: its header is the declared fields, then the other fields
of the first page that has records, in their order there; a field that turns up
only later has no column, so its values are left out, with one warning per field
(JSON Lines and SQLite keep every field).

Cells follow RFC 4180 (Python's ``csv`` module: quotes around a value holding a
comma, a quote or a line break, quotes doubled, CRLF line ends) in UTF-8; a list
or an object is its JSON text, a number or true/false as JSON writes it, a null
an empty cell. ``bom`` starts the file with a UTF-8 byte order mark, which Excel
needs to read UTF-8. Resuming (``append``) reads the header back from the file.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scraper.errors import OutputError
from scraper.models import Record
from scraper.output.columns import Columns
from scraper.output.file import ENCODER, OutputFile, encoded

log = logging.getLogger("scraper")

BOM = "\ufeff"
HEADER_READ = 1 << 20
"""The most of a file read back to find its header row when resuming."""


class CsvWriter:
    """Writes records as CSV rows under a header of ``columns`` (see the module)."""

    def __init__(
        self, path: Path | None, columns: Columns, *, append: bool = False, bom: bool = False
    ) -> None:
        self.path = path
        self.count = 0
        self.rejected: Counter[str] = Counter()
        self._file = OutputFile(path, append=append)
        self._declared = columns
        self._left_out: set[str] = set()
        self._bom = bom
        self.header: tuple[str, ...] | None = None
        """The columns, once the header is written (or read back)."""
        if self._file.size:
            self.header = _read_header(path)
        elif columns.complete:
            self._write_header(columns.names)

    @property
    def size(self) -> int:
        """Bytes in the output file after the last write (0 for stdout, a pipe or a device)."""
        return self._file.size

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        """Write one page's records as rows, in one write call; leave out what JSON cannot
        hold, and return those records by reason."""
        kept, rejected = encoded(records)
        self.rejected.update(rejected)
        if not kept:
            return rejected
        header = self.header
        if header is None:
            seen = dict.fromkeys(self._declared.names)
            for record, _ in kept:
                seen.update(dict.fromkeys(record))
            header = tuple(seen)
            self._write_header(header)
        columns = set(header)
        buffer = io.StringIO()
        rows = csv.writer(buffer)
        for record, _ in kept:
            for name in record.keys() - columns - self._left_out:
                self._left_out.add(name)
                log.warning(
                    "the field %r came after the CSV header was written: its values are "
                    "left out of %s (JSON Lines and SQLite outputs keep every field)",
                    name,
                    self._file.name,
                )
            rows.writerow([_cell(record.get(name)) for name in header])
        self._file.write(buffer.getvalue().encode("utf-8"), self.count)
        self.count += len(kept)
        return rejected

    def close(self) -> None:
        """Close the file (stdout is only flushed)."""
        self._file.close()

    def _write_header(self, names: tuple[str, ...]) -> None:
        buffer = io.StringIO()
        if self._bom:
            buffer.write(BOM)
        csv.writer(buffer).writerow(names)
        self._file.write(buffer.getvalue().encode("utf-8"), self.count)
        self.header = names


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else ENCODER.encode(value)


def _read_header(path: Path | None) -> tuple[str, ...]:
    """The header row of the CSV file at ``path``, which has one."""
    assert path is not None
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as file:
            row = next(csv.reader(io.StringIO(file.read(HEADER_READ))), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        row, problem = None, str(exc)
    else:
        problem = "it has no header row"
    if not row:
        raise OutputError(
            f"cannot continue the CSV file {path}: {problem}. Move it away to start anew."
        )
    return tuple(row)
