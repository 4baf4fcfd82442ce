"""Crawl state in SQLite, so that ``scraper run --resume`` continues where a run stopped.

Each request the crawl admits is a row: pending, done or failed, keyed by its
canonical URL and page kind (one URL may be fetched once per page kind). A
page's records are written to the output first; then, in one transaction, the
page is marked done, the links it led to are added as pending, the keys of the
records written under ``unique:`` are added (8-byte hashes), and the output's
size is noted with a checksum of the output's last bytes before that size. A run
that dies between the two leaves records past the noted size: resuming cuts the
output back to it and fetches that page again, so every record ends up in the
output exactly once. An output changed since (a line added, the file replaced)
fails the checksum, and the resume is refused rather than cutting it anywhere
(``scraper.stateoutput`` pairs a state with its output and does the cutting).
A SQLite output counts the pages it holds instead of bytes, and keeps in its own
database what undoes its last page (``scraper.output.sqlite``): the state notes
that count, and the output rewinds itself to it.

A state file that cannot be read (damaged, truncated, not a state at all) is
refused with an error naming it, when it is opened or when its rows are read.
A state written before requests were keyed by page kind (one row per URL) is
upgraded when opened: its rows keep their page kinds, so nothing is fetched
again or lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from scraper.errors import OutputError, ScraperError
from scraper.models import Request

log = logging.getLogger("scraper")

PENDING, DONE, FAILED = 0, 1, 2
TAIL_BYTES = 4096
"""How much of the output, before the size the state vouches for, its checksum covers."""

FORMAT = "2"
"""The layout of the state: 2 keys requests by URL and page kind (1 by URL alone)."""

# A request is unique by (key, page): key is its canonical URL, page its page kind
# (null only in rows of format 1, meaning the spider's first kind).
_REQUEST_TABLE = """
create table if not exists request (
    key text not null,
    url text not null,
    page text,
    depth integer not null,
    carry text not null,
    status integer not null default 0
);
create unique index if not exists request_key on request (key, page);
"""
_SCHEMA = (
    _REQUEST_TABLE
    + """
create table if not exists meta (name text primary key, value text not null);
create table if not exists record_key (hash integer primary key);
"""
)


class CrawlState:
    """The SQLite file of one crawl; ``spider`` guards against resuming another spider.

    ``output`` is the file whose size and tail each ``commit`` vouches for
    (``scraper.stateoutput.open_state`` opens the state of a run that writes one). A state
    of ``--incremental`` re-crawls (``scraper.incremental.RecrawlState``) is refused
    here, and this one there: each keeps what the other does not.
    """

    KIND = "resume"
    """What the state is kept for, noted in it: ``resume``, or ``incremental``."""

    def __init__(self, path: Path, spider: str, output: Path | None = None) -> None:
        import sqlite3  # only --resume needs it: kept off every other run's start-up

        self.path = path
        self.output = output
        existed = path.is_file()
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot keep the crawl state in {path}: {exc}. Choose another with --state PATH."
            ) from None
        try:
            if existed:
                self._check()
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=normal")
            if existed:
                self._upgrade()
            self._db.executescript(_SCHEMA)
            self._set_meta("format", FORMAT)
            stored = self._meta("spider")
            if existed and stored is None:
                self._damaged("it holds no spider name")
            if stored is not None and stored != spider:
                raise ScraperError(
                    f"{path} holds the state of spider {stored!r}, not {spider!r}; "
                    "give this crawl its own --state PATH."
                )
            self._set_meta("spider", spider)
            self._check_kind(existed)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if existed:
                self._damaged(str(exc))
            raise OutputError(
                f"cannot keep the crawl state in {path}: {exc}. Choose another with --state PATH."
            ) from None
        except ScraperError:
            self._db.close()
            raise
        self._added: list[tuple[str, Request]] = []
        self._finished: list[tuple[int, str, str | None]] = []
        self._record_keys: list[tuple[int]] = []
        self._output_fd = -1

    @staticmethod
    def remove(path: Path) -> None:
        """Delete a state file (and SQLite's files beside it), if there is one."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    @property
    def output_size(self) -> int:
        """Bytes of output that hold the records of the pages marked done."""
        return int(self._meta("output_size") or 0)

    @property
    def output_tail(self) -> str | None:
        """The ``tail_digest`` of the output at ``output_size`` (None: none noted yet)."""
        return self._meta("output_tail")

    def progress(self) -> tuple[int, int]:
        """Requests done, and requests left to fetch (pending or failed)."""
        counts = dict(self._rows("select status = ?, count(*) from request group by 1", (DONE,)))
        return int(counts.get(1, 0)), int(counts.get(0, 0))

    def admitted_keys(self) -> Iterator[tuple[str, str | None]]:
        """The dedup key and page kind of every request admitted so far (``None``: the
        spider's first kind)."""
        for key, page in self._rows("select key, page from request"):
            if not isinstance(key, str):
                self._damaged(f"a request key is {type(key).__name__}, not text")
            if not (page is None or isinstance(page, str)):
                self._damaged(f"a request's page kind is {type(page).__name__}, not text")
            yield key, page

    def record_keys(self) -> Iterator[int]:
        """The hashes of the ``unique:`` keys of the records written so far."""
        for (key,) in self._rows("select hash from record_key"):
            if not isinstance(key, int):
                self._damaged(f"a record key is {type(key).__name__}, not a number")
            yield key

    def unfinished(self) -> Iterator[Request]:
        """Requests still to fetch: pending ones, and failed ones for another try."""
        query = "select url, page, depth, carry from request where status != ? order by rowid"
        for url, page, depth, carry in self._rows(query, (DONE,)):
            try:
                fields = json.loads(carry)
            except (TypeError, ValueError):
                fields = None
            if not (
                isinstance(url, str)
                and (page is None or isinstance(page, str))
                and isinstance(depth, int)
                and isinstance(fields, dict)
            ):
                self._damaged(f"the request row of {url!r} is not one this tool wrote")
            yield Request(url, page, depth, fields)

    def add(self, key: str, request: Request) -> None:
        """Note an admitted request; saved with the next ``commit``."""
        self._added.append((key, request))

    def finish(self, key: str, page: str | None, failed: bool = False) -> None:
        """Note the request of ``key`` and ``page`` done (or failed); saved with the next
        ``commit``.

        ``finish`` of a request whose row was not kept (see ``commit``) changes nothing.
        """
        self._finished.append((FAILED if failed else DONE, key, page))

    def add_record_key(self, key: int) -> None:
        """Note the hash of a written record's ``unique:`` key; saved with the next ``commit``."""
        self._record_keys.append((key,))

    def commit(self, output_size: int) -> None:
        """Save what was noted, with the output size that goes with it, in one transaction.

        A request that cannot be stored (a carried field JSON cannot hold) is left
        out with a warning: this run still fetches it, a resumed one would not.
        Raises ``OutputError`` when the state file cannot be written (a full disk).
        """
        import sqlite3

        rows = []
        for key, request in self._added:
            row = request_row(key, request)
            if isinstance(row, str):
                log.warning(
                    "not keeping %s in the crawl state %s: %s; a resumed run would not fetch it",
                    request.url,
                    self.path,
                    row,
                )
            else:
                rows.append(row)
        try:
            tail = self._tail(output_size)
            with self._db:
                self._db.execute("begin")
                self._db.executemany(
                    "insert or ignore into request (key, url, page, depth, carry) "
                    "values (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.executemany(
                    "update request set status = ? where key = ? and page is ?", self._finished
                )
                self._db.executemany(
                    "insert or ignore into record_key (hash) values (?)", self._record_keys
                )
                self._save_more()
                self._set_meta("output_size", str(output_size))
                self._set_meta("output_tail", tail)
        except (sqlite3.Error, OSError) as exc:
            reason = "the disk is full" if "full" in str(exc) else str(exc)
            raise OutputError(
                f"saving the crawl state in {self.path} failed: {reason}. The records and "
                "the state saved before are kept: once the state can be written again (free "
                "some space), run again with --resume to continue."
            ) from None
        self._added.clear()
        self._finished.clear()
        self._record_keys.clear()

    def close(self) -> None:
        """Close the database file."""
        self._db.close()
        if self._output_fd >= 0:
            os.close(self._output_fd)
            self._output_fd = -1

    def _save_more(self) -> None:
        """Write, in the transaction of ``commit``, what a subclass keeps besides."""

    def _check_kind(self, existed: bool) -> None:
        """Refuse a state kept for the other kind of run (``KIND``); note this one's."""
        found = self._meta("kind") or ("resume" if existed else self.KIND)
        if found != self.KIND and found == "incremental":
            raise ScraperError(
                f"{self.path} holds the state of --incremental re-crawls; run with "
                "--incremental (and --resume to continue an interrupted one), or give this "
                "crawl its own --state PATH."
            )
        if found != self.KIND:
            raise ScraperError(
                f"{self.path} holds the state of a crawl run without --incremental; give the "
                f"re-crawls their own --state PATH, or delete {self.path} to start them there."
            )
        self._set_meta("kind", self.KIND)

    def _check(self) -> None:
        """Refuse a file that is not a sound crawl state (damaged, truncated, foreign)."""
        problems = [row[0] for row in self._db.execute("pragma quick_check")]
        if problems != ["ok"]:
            self._damaged(problems[0] if problems else "quick_check found nothing to check")
        tables = {row[0] for row in self._db.execute("select name from sqlite_master")}
        if not {"request", "meta"} <= tables:
            self._damaged("it has no request or meta table")
        size = self._meta("output_size")
        if size is not None and not (isinstance(size, str) and size.isdigit()):
            self._damaged(f"the output size it notes is {size!r}")

    def _upgrade(self) -> None:
        """Rewrite a state of format 1 (requests keyed by URL alone) as format 2.

        The rows are copied as they are, in their order: each keeps the page kind it
        was admitted for. A state of a format this version does not know is refused.
        """
        found = self._meta("format")
        if found == FORMAT:
            return
        if found is not None:
            self._damaged(f"it is of format {found!r}, written by another version of scraper")
        with self._db:
            self._db.execute("begin")
            self._db.execute("alter table request rename to request_1")
            for statement in _REQUEST_TABLE.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "insert into request (rowid, key, url, page, depth, carry, status) "
                "select rowid, key, url, page, depth, carry, status from request_1"
            )
            self._db.execute("drop table request_1")
            self._set_meta("format", FORMAT)
        log.info(
            "%s: upgraded to format %s (requests keyed by URL and page kind)", self.path, FORMAT
        )

    def _tail(self, size: int) -> str:
        if self.output is None or size == 0:
            return hashlib.sha256(b"").hexdigest()
        if self._output_fd < 0:
            self._output_fd = os.open(self.output, os.O_RDONLY | os.O_CLOEXEC)
        return tail_digest(self._output_fd, size)

    def _rows(self, query: str, parameters: tuple[Any, ...] = ()) -> Iterator[Any]:
        import sqlite3

        try:
            yield from self._db.execute(query, parameters)
        except sqlite3.DatabaseError as exc:
            self._damaged(str(exc))

    def _damaged(self, detail: str) -> NoReturn:
        where = f" (the next --resume run writes {self.output} anew)" if self.output else ""
        raise ScraperError(
            f"the crawl state {self.path} cannot be used: {detail}. Delete it to start "
            f"over{where}, or restore it from a copy."
        )

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("select value from meta where name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, name: str, value: str) -> None:
        self._db.execute("insert or replace into meta values (?, ?)", (name, value))


def request_row(key: str, request: Request) -> tuple[str, str, str | None, int, str] | str:
    """The row that stores ``request`` (key, URL, page kind, depth, carried fields as
    JSON), or why it cannot be stored."""
    try:
        # ASCII escapes keep a lone surrogate in a carried value storable (SQLite wants UTF-8).
        carry = json.dumps(dict(request.carry), ensure_ascii=True)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"a carried field cannot be stored as JSON ({exc})"
    for text in (key, request.url, request.page or ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "its URL holds a lone surrogate"
    return key, request.url, request.page, request.depth, carry


def tail_digest(fd: int, size: int) -> str:
    """The checksum a commit notes of the open output ``fd``: SHA-256 of its last
    ``TAIL_BYTES`` bytes before ``size``."""
    start = max(0, size - TAIL_BYTES)
    return hashlib.sha256(os.pread(fd, size - start, start)).hexdigest()
