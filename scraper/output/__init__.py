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

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from scraper.errors import ScraperError

if TYPE_CHECKING:
    from contextlib import ExitStack

    from scraper.models import Record
    from scraper.output.columns import Columns
    from scraper.spec import SpiderSpec
    from scraper.state import CrawlState

log = logging.getLogger("scraper")

__all__ = [
    "FORMATS",
    "Output",
    "OutputOptions",
    "RecordSink",
    "open_for_crawl",
    "open_output",
    "output_format",
    "row_counts",
]

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


@dataclass(frozen=True, kw_only=True)
class OutputOptions:
    """How an output is written beyond its path and spider (see ``open_output``)."""

    format: str | None = None
    bom: bool = False
    table: str | None = None
    key: tuple[str, ...] | None = None

    def open(self, path: str | Path | None, spider: SpiderSpec, *, append: bool = False) -> Output:
        """``open_output`` with these options."""
        return open_output(
            path,
            spider,
            format=self.format,
            append=append,
            bom=self.bom,
            table=self.table,
            key=self.key,
        )


def open_for_crawl(
    stack: ExitStack,
    path: str | Path | None,
    spider: SpiderSpec,
    *,
    options: OutputOptions | None = None,
    resume: bool = False,
    state_path: str | Path | None = None,
) -> tuple[Output, CrawlState | None]:
    """The output of a crawl (``scraper run -o``) and, with ``resume``, its crawl state
    (at ``state_path``, default ``PATH.state``), both closed when ``stack`` closes.

    Resuming continues the output from what the state vouches for (a file cut back,
    a SQLite table rewound); without ``resume`` an old state of the output is removed,
    as a new output makes it meaningless. Claiming the paths (``RunLock``) is the
    caller's.
    """
    from scraper.output.sqlite import SqliteOutput
    from scraper.state import CrawlState
    from scraper.stateoutput import check_fresh, check_paths, open_state

    options = options or OutputOptions()
    if path is None or str(path) == "-":
        if resume:
            raise ScraperError("--resume needs an output file: add -o PATH.")
        return _closed_with(stack, options.open(None, spider)), None
    state_at = Path(state_path or f"{path}.state")
    check_paths(state_at, Path(path))
    if not resume:
        check_fresh(state_at, Path(path))
        output = _closed_with(stack, options.open(path, spider))
        CrawlState.remove(state_at)
        return output, None
    in_bytes = output_format(path, options.format) != "sqlite"
    state = open_state(state_at, Path(path), spider.name, in_bytes=in_bytes)
    stack.callback(state.close)
    output = _closed_with(stack, options.open(path, spider, append=True))
    if isinstance(output, SqliteOutput):
        output.rewind(state.output_size, state.path)
    return output, state


def _closed_with(stack: ExitStack, output: Output) -> Output:
    stack.callback(output.close)
    return output


def row_counts(output: Output) -> Counter[str] | None:
    """The rows a SQLite output added (``new``) and ``updated``; None for other formats."""
    from scraper.output.sqlite import SqliteOutput

    return output.rows.copy() if isinstance(output, SqliteOutput) else None


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
    # The formats are imported when one is opened: `scraper --help` only needs FORMATS.
    from scraper.output.columns import spider_columns
    from scraper.output.csvfile import CsvWriter
    from scraper.output.jsonarray import JsonArrayWriter
    from scraper.output.jsonl import JsonLinesWriter
    from scraper.output.sqlite import SqliteOutput

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
    if kind == "json":
        return JsonArrayWriter(target, append=append)
    columns = spider_columns(spider)
    if kind == "csv":
        return CsvWriter(target, columns, append=append, bom=bom)
    if target is None:
        raise ScraperError(
            "a SQLite output needs a file: give one with -o PATH.db (stdout takes jsonl, csv "
            "or json)."
        )
    return SqliteOutput(
        target,
        columns,
        table=_table_name(table if table is not None else spider.name, table is not None),
        key=_key(spider, columns, key),
        append=append,
    )


def _table_name(name: str, given: bool) -> str:
    if name and not name.lower().startswith(("sqlite_", "_scraper_")):
        return name
    what = f"--table {name!r}" if given else f"the spider name {name!r}"
    raise ScraperError(
        f"{what} cannot name a table: names starting with sqlite_ or _scraper_ are kept for "
        "SQLite and scraper; choose another with --table NAME."
    )


def _key(spider: SpiderSpec, columns: Columns, key: Sequence[str] | None) -> tuple[str, ...]:
    """The key of a SQLite table: ``key`` as given (checked against the fields), else the
    ``unique:`` that every page kind with one shares."""
    if key is None:
        uniques = {
            page.unique if page.unique is not None else spider.unique
            for page in spider.pages.values()
        } - {()}
        if len(uniques) > 1:
            log.warning(
                "the page kinds of %r have different unique: fields, so the SQLite table has "
                "no key and every record is a new row; choose one with --key FIELD,...",
                spider.name,
            )
        return next(iter(uniques)) if len(uniques) == 1 else ()
    from scraper.yamlnodes import did_you_mean

    names = tuple(key)
    for index, name in enumerate(names):
        if not name or name in names[:index]:
            problem = "an empty field name" if not name else f"{name!r} twice"
            raise ScraperError(f"--key names {problem}: give FIELD,... each once.")
        if columns.complete and name not in columns.names:
            raise ScraperError(
                f"--key names field {name!r}, which the records of spider {spider.name!r} "
                f"do not have (they have: {', '.join(columns.names) or 'nothing'})"
                f"{did_you_mean(name, columns.names)}."
            )
    return names
