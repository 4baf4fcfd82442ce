"""Where a crawl's records go: JSON Lines, CSV, a JSON array or a SQLite table.

``open_output`` chooses the format by the path's extension or by ``format``
(``FORMATS``) and opens it; whatever the format, the crawl hands it one page's
records at a time (``RecordSink.write``) and every format keeps the same
promises: memory stays flat however many records, a page's records go in whole
(a killed run leaves whole pages only), a record strict JSON cannot hold is left
out and counted, and ``size`` is the commit point that ``--resume`` and the Redis
exporter keep to continue exactly once.

=========  =====================================  ===================================
format     extension                              module
=========  =====================================  ===================================
jsonl      ``.jsonl``, any other, stdout (``-``)  ``scraper.output.jsonl``
csv        ``.csv``                               ``scraper.output.csvfile``
json       ``.json``                              ``scraper.output.jsonarray``
sqlite     ``.db``, ``.sqlite``, ``.sqlite3``     ``scraper.output.sqlite``
=========  =====================================  ===================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from scraper.errors import ScraperError
from scraper.models import Record
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import SpiderSpec

__all__ = ["FORMATS", "Output", "RecordSink", "open_output", "output_format"]

FORMATS = ("jsonl", "csv", "json", "sqlite")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".json": "json",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}


class RecordSink(Protocol):
    """Where a crawl puts records: an output file or table, or a check in ``scraper test``.

    ``size`` is the commit point of the records so far (bytes of a file, pages of a
    table; 0 when there is nothing to keep), which ``--resume`` notes after each page.
    """

    @property
    def size(self) -> int: ...

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        """Take the records of one page (fetched from ``url``); return those left out,
        by reason (usually none)."""
        ...


class Output(RecordSink, Protocol):
    """An opened output: ``count`` records written, ``rejected`` those left out by
    reason; ``close()`` ends it (a JSON array gets its closing bracket)."""

    count: int
    rejected: Counter[str]

    def close(self) -> None: ...


def output_format(path: str | Path | None, format: str | None = None) -> str:
    """The format of an output: ``format`` when given, else by ``path``'s extension
    (JSON Lines for any other, and for stdout: ``None`` or ``-``)."""
    if format is not None:
        if format not in FORMATS:
            raise ScraperError(
                f"unknown output format {format!r}: choose one of {', '.join(FORMATS)}."
            )
        return format
    if path is None or str(path) == "-":
        return "jsonl"
    return EXTENSIONS.get(Path(path).suffix.lower(), "jsonl")


def open_output(
    path: str | Path | None,
    spider: SpiderSpec,
    *,
    format: str | None = None,
    append: bool = False,
    bom: bool = False,
    table: str | None = None,
    key: Sequence[str] | None = None,
) -> Output:
    """Open the output of ``spider``'s records at ``path`` (``None`` or ``-``: stdout).

    ``format`` overrides the choice by extension (see ``FORMATS``). ``append``
    continues what a file holds (``--resume``); a SQLite table is always added to,
    and ``append`` keeps its commit point. ``bom`` starts a CSV with a UTF-8 BOM (for
    Excel). ``table`` names the SQLite table (default: the spider's name); ``key``
    are the fields whose values identify a row, so a record with a key already in
    the table updates that row (default: the spider's ``unique:``). Raises
    ``ScraperError`` for options that do not fit the format, ``OutputError`` for a
    path that cannot be written.
    """
    kind = output_format(path, format)
    target = None if path is None or str(path) == "-" else Path(path)
    if bom and kind != "csv":
        raise ScraperError("--bom goes with a CSV output (-o PATH.csv or --format csv).")
    for given, option in ((table, "--table"), (key, "--key")):
        if given is not None and kind != "sqlite":
            raise ScraperError(
                f"{option} goes with a SQLite output (-o PATH.db or --format sqlite)."
            )
    if kind == "jsonl":
        return JsonLinesWriter(target, append=append)
    raise ScraperError(f"the {kind} output is not written yet.")
