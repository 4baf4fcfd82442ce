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
fails the checksum, and the resume is refused rather than cutting it anywhere.
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

import contextlib
import hashlib
import json
import logging
import os
import stat
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

    ``output`` is the file whose size and tail each ``commit`` vouches for. A state
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

    @classmethod
    def for_output(
        cls, path: Path, output: Path, spider: str, *, in_bytes: bool | None = None
    ) -> CrawlState:
        """The state of the crawl writing ``output``: resumed if ``path`` exists, else new.

        Resuming cuts ``output`` back to what the state vouches for (records of
        pages not marked done are fetched again), once its bytes up to there are
        found unchanged; a new state starts a new output. An output that does not
        count its size ``in_bytes`` (a SQLite table, which counts pages) is neither
        cut nor removed here: it is rewound to ``output_size`` by its own means
        (``None``: any output but a SQLite database counts in bytes).
        """
        cls.check_paths(path, output)
        if in_bytes is None:
            in_bytes = not _is_sqlite(output)
        if in_bytes and output.exists() and not stat.S_ISREG(output.stat().st_mode):
            raise ScraperError(
                f"--resume needs the output to be a regular file, and {output} is not one "
                "(a pipe or a device cannot be cut back to the last complete page)."
            )
        resuming = path.is_file()
        state = cls(path, spider, output if in_bytes else None)
        if not resuming:
            if in_bytes:
                output.unlink(missing_ok=True)
            return state
        if in_bytes:
            try:
                state._check_output()
            except ScraperError:
                state.close()
                raise
            os.truncate(output, state.output_size)
        # Resuming is the normal use of --resume, a finished crawl included: not a warning.
        done, left = state.progress()
        if left:
            log.info(
                "resuming from %s: %d pages done, %d to fetch (pending or failed), "
                "then any start URL not requested yet",
                path,
                done,
                left,
            )
        else:
            log.info(
                "resuming from %s: %d pages done, none pending or failed; only start URLs "
                "not requested yet are fetched (none, if the crawl had finished)",
                path,
                done,
            )
        return state

    @staticmethod
    def check_paths(path: Path, output: Path) -> None:
        """Refuse a state file that is the output itself (each would overwrite the other)."""
        if _same_file(path, output):
            raise ScraperError(
                f"--state {path} is the output file itself; give the state its own path "
                f"(the default is {output}.state)."
            )

    @staticmethod
    def check_fresh(path: Path, output: Path) -> None:
        """Before a run that writes ``output`` anew (and removes its state): refuse a state
        that keeps the history of --incremental re-crawls of it."""
        if _kind(path) == "incremental":
            raise ScraperError(
                f"{path} keeps the history of --incremental re-crawls of {output}: add "
                f"--incremental to add to it, or delete {path} to start over (a run without "
                f"it writes {output} anew)."
            )

    @staticmethod
    def remove(path: Path) -> None:
        """Delete a state file (and SQLite's files beside it), if there is one."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    @property
    def output_size(self) -> int:
        """Bytes of output that hold the records of the pages marked done."""
        return int(self._meta("output_size") or 0)

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

    def _check_output(self) -> None:
        """Refuse to resume when ``output`` is not what the last commit vouched for."""
        assert self.output is not None
        size, tail = self.output_size, self._meta("output_tail")
        have = self.output.stat().st_size if self.output.exists() else 0
        changed = have < size
        if not changed and tail is not None:
            changed = _tail_digest(self.output, size) != tail
        if changed:
            raise ScraperError(
                f"{self.output} is not the output that {self.path} vouches for: its first "
                f"{size} bytes changed since the last run (edited, cut or replaced), so "
                f"resuming could cut a line or lose records. To start over, delete "
                f"{self.path} (the next run writes {self.output} anew); to keep this "
                f"output, move it away first."
            )

    def _tail(self, size: int) -> str:
        if self.output is None:
            return _digest(b"")
        if self._output_fd < 0:
            if size == 0:
                return _digest(b"")
            self._output_fd = os.open(self.output, os.O_RDONLY | os.O_CLOEXEC)
        start = max(0, size - TAIL_BYTES)
        return _digest(os.pread(self._output_fd, size - start, start))

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


def _kind(path: Path) -> str | None:
    """The kind of run a state file was kept for ("resume", "incremental"), if it can be
    read (read-only: nothing is created or changed)."""
    import sqlite3

    if not path.is_file():
        return None
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            row = db.execute("select value from meta where name = 'kind'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` is a SQLite database (which must never be cut like a file)."""
    try:
        with path.open("rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _tail_digest(path: Path, size: int) -> str:
    start = max(0, size - TAIL_BYTES)
    with path.open("rb") as file:
        file.seek(start)
        return _digest(file.read(size - start))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
