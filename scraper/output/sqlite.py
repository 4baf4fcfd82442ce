"""SQLite: one table per spider, one column per field, one transaction per page.

The table (the spider's name unless ``table`` says) has a column per field of
the spider, typed from its processors (``scraper.output.columns``), and
``_url`` and ``_fetched_at`` (the page's URL and the time its records were
written, ISO 8601 in UTC). A list or an object is stored as its JSON text
(``json_extract`` reads it). A database is added to, never replaced: a table
that exists is kept, and gets a column for any field it lacks. The database is
in WAL mode, so others can read the table while a crawl writes it.

Each page's records go in one transaction, so a killed run leaves whole pages
only. With ``key`` (``--key``, or the spider's ``unique:``), a UNIQUE index on
those columns makes a record whose key is already in the table update that row
(``INSERT ... ON CONFLICT DO UPDATE``: the fields the record has, ``_url`` and
``_fetched_at``); ``rows`` counts the rows added and updated.

Exactly once across a kill (``--resume``): the pages written are counted in the
database (``_scraper_output``), in the transaction of each page, with what
undoes the last page (the table's last rowid before it, and the rows it updated
as they were, in ``_scraper_undo``). The crawl state notes that count after each
page; a page written but not noted when the run died is undone by ``rewind``, and
fetched again. The Redis exporter keeps its stream offset in ``_scraper_redis``,
in the transaction of the rows it wrote, so it needs no undo.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timezone
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

from scraper.errors import OutputError, ScraperError
from scraper.models import Record
from scraper.output.columns import JSON_TEXT, Columns
from scraper.output.file import ENCODER, check_space, encoded, open_for_writing

log = logging.getLogger("scraper")

URL, FETCHED_AT = "_url", "_fetched_at"
BUSY_SECONDS = 10.0
"""How long a write waits for a reader that holds the database (a checkpoint, a VACUUM)."""
STATEMENTS_KEPT = 256
"""Insert statements kept, one per set of fields records have come with."""
_INT_RANGE = range(-(1 << 63), 1 << 63)

_META = """
create table if not exists _scraper_output (
    tbl text primary key, seq integer not null, rowid_before integer not null);
create table if not exists _scraper_undo (
    tbl text not null, row integer not null, old text not null, primary key (tbl, row));
create table if not exists _scraper_redis (
    tbl text not null, crawl text not null, after text not null, primary key (tbl, crawl));
"""

Page = tuple[Sequence[Record], str | None, str]
"""A page's records, its URL (``None``: unknown) and when they were fetched (ISO 8601)."""


class SqliteOutput:
    """Writes records into ``table`` of the database at ``path`` (see the module).

    ``append`` continues the count of pages written (``--resume``); otherwise it
    starts at 0. ``count`` is the records written, ``rows`` the rows ``new`` and
    ``updated``.
    """

    def __init__(
        self,
        path: Path,
        columns: Columns,
        *,
        table: str,
        key: tuple[str, ...] = (),
        append: bool = False,
    ) -> None:
        self.path = path
        self.table = table
        self.key = key
        self.count = 0
        self.rejected: Counter[str] = Counter()
        self.rows: Counter[str] = Counter(new=0, updated=0)
        self.seq = 0
        """Pages written since the crawl started (kept in the database)."""
        self._q = _quoted(table)
        self._warned: set[str] = set()
        self._statements: dict[tuple[str, ...], str] = {}
        os.close(open_for_writing(path, append=True))  # the same message as other formats
        check_space(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the output {path}: {exc}.") from None
        try:
            self._db.execute(f"pragma busy_timeout = {int(BUSY_SECONDS * 1000)}")
            self._db.execute("pragma journal_mode = wal")
            self._db.execute("pragma synchronous = normal")
            with self._transaction():
                for statement in _META.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._columns = self._make_table(columns)
                if key:
                    self._make_key_index()
                row = self._db.execute(
                    "select seq from _scraper_output where tbl = ?", (table,)
                ).fetchone()
                if row is None or not append:
                    self._db.execute(
                        "insert or replace into _scraper_output values (?, 0, 0)", (table,)
                    )
                    self._db.execute("delete from _scraper_undo where tbl = ?", (table,))
                else:
                    self.seq = int(row[0])
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutputError(
                f"cannot write the table {table!r} of {path}: {exc}. Choose another path "
                "with -o PATH (or another table with --table NAME)."
            ) from None
        except ScraperError:
            self._db.close()
            raise

    @property
    def size(self) -> int:
        """The pages written since the crawl started: what ``--resume`` notes."""
        return self.seq

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        """Write one page's records in one transaction; leave out what JSON cannot hold,
        and return those records by reason."""
        kept, rejected = encoded(records)
        self.rejected.update(rejected)
        if kept:
            self.write_pages([([record for record, _ in kept], url, now())])
        return rejected

    def write_pages(self, pages: Sequence[Page], *, redis: tuple[str, str] | None = None) -> None:
        """Write ``pages`` in one transaction, as one page to undo; with ``redis``
        (crawl, stream id), note that the crawl's stream is written up to that id."""
        try:
            with self._transaction():
                before = self._db.execute(f"select max(rowid) from {self._q}").fetchone()[0]
                self._db.execute("delete from _scraper_undo where tbl = ?", (self.table,))
                counts: Counter[str] = Counter()
                for records, url, fetched_at in pages:
                    for record in records:
                        counts[self._put(record, url, fetched_at, before or 0)] += 1
                self._db.execute(
                    "update _scraper_output set seq = ?, rowid_before = ? where tbl = ?",
                    (self.seq + 1, before or 0, self.table),
                )
                if redis is not None:
                    self._db.execute(
                        "insert or replace into _scraper_redis values (?, ?, ?)",
                        (self.table, *redis),
                    )
        except sqlite3.Error as exc:
            reason = "the disk is full" if "full" in str(exc) else str(exc)
            raise OutputError(
                f"writing {self.path} failed: {reason}. The {self.count} records before "
                f"this page are in the table {self.table!r}, complete."
            ) from None
        self.seq += 1
        self.rows.update(counts)
        self.count += sum(counts.values())

    def redis_after(self, crawl: str) -> str:
        """The stream id up to which ``crawl``'s records are in the table ("0": none)."""
        row = self._db.execute(
            "select after from _scraper_redis where tbl = ? and crawl = ?", (self.table, crawl)
        ).fetchone()
        return str(row[0]) if row else "0"

    def forget_redis(self, crawl: str) -> None:
        """Forget where ``crawl``'s export stood: the next one starts from its beginning."""
        with self._transaction():
            self._db.execute(
                "delete from _scraper_redis where tbl = ? and crawl = ?", (self.table, crawl)
            )

    def rewind(self, pages: int, state: Path) -> None:
        """Undo what was written after the first ``pages`` pages (the crawl state
        ``state`` vouches for that many): at most the last page, written as the run died."""
        if pages == self.seq:
            return
        if pages != self.seq - 1:
            raise ScraperError(
                f"{self.path} is not the database that {state} vouches for: its table "
                f"{self.table!r} holds {self.seq} pages of this crawl, and the state "
                f"{pages}, so resuming could write records twice or lose some. To start "
                f"over, delete {state}; to keep the table, write to another with --table NAME."
            )
        with self._transaction():
            before = self._db.execute(
                "select rowid_before from _scraper_output where tbl = ?", (self.table,)
            ).fetchone()[0]
            for row, old in self._db.execute(
                "select row, old from _scraper_undo where tbl = ?", (self.table,)
            ).fetchall():
                values = json.loads(old)
                sets = ", ".join(f"{_quoted(name)} = ?" for name in values)
                self._db.execute(
                    f"update {self._q} set {sets} where rowid = ?", (*values.values(), row)
                )
            self._db.execute(f"delete from {self._q} where rowid > ?", (before,))
            self._db.execute("delete from _scraper_undo where tbl = ?", (self.table,))
            self._db.execute(
                "update _scraper_output set seq = ? where tbl = ?", (pages, self.table)
            )
        self.seq = pages
        log.info("%s: took out the rows of a page written as the last run stopped", self.path)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("begin immediate")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("rollback")
            raise
        self._db.execute("commit")

    def _make_table(self, columns: Columns) -> dict[str, str]:
        """Create the table, or add the columns it lacks; its columns by casefolded name."""
        for name in (*columns.names, *self.key):
            if name in (URL, FETCHED_AT):
                raise ScraperError(
                    f"the spider has a field {name!r}, the name of a column the SQLite output "
                    f"adds itself ({URL}, {FETCHED_AT}); rename the field."
                )
        have = {
            row[1].casefold(): row[1] for row in self._db.execute(f"pragma table_info({self._q})")
        }
        wanted = [(name, columns.types.get(name, "")) for name in columns.names]
        if not have:
            defined = ", ".join(
                f"{_quoted(name)} {_declared(kind)}".rstrip() for name, kind in wanted
            )
            extra = f"{_quoted(URL)} TEXT, {_quoted(FETCHED_AT)} TEXT"
            self._db.execute(f"create table {self._q} ({defined + ', ' if defined else ''}{extra})")
            return {name.casefold(): name for name in (*columns.names, URL, FETCHED_AT)}
        for name, kind in wanted:
            if name.casefold() not in have:
                self._add_column(name, kind)
                have[name.casefold()] = name
        return have

    def _add_column(self, name: str, kind: str = "") -> None:
        self._db.execute(
            f"alter table {self._q} add column {_quoted(name)} {_declared(kind)}".rstrip()
        )

    def _make_key_index(self) -> None:
        index = f"_scraper_key_{self.table}"
        for name in self.key:
            if name.casefold() not in self._columns:
                self._add_column(name)
                self._columns[name.casefold()] = name
        found = [row[2] for row in self._db.execute(f"pragma index_info({_quoted(index)})")]
        if found and tuple(found) != self.key:
            self._db.execute(f"drop index {_quoted(index)}")
            found = []
        if not found:
            try:
                self._db.execute(
                    f"create unique index {_quoted(index)} on {self._q} "
                    f"({', '.join(_quoted(name) for name in self.key)})"
                )
            except sqlite3.IntegrityError:
                raise ScraperError(
                    f"cannot make {', '.join(self.key)} the key of the table {self.table!r} "
                    f"in {self.path}: rows already there share a key. Write to another table "
                    "with --table NAME, or choose another --key."
                ) from None

    def _put(self, record: Record, url: str | None, fetched_at: str, before: int) -> str:
        """Insert (or, with a key, upsert) one record; "new" or "updated"."""
        names = tuple(name for name in record if self._column(name))
        updated = False
        if self.key:
            where = " and ".join(f"{_quoted(name)} = ?" for name in self.key)
            values = [_stored(record.get(name)) for name in self.key]
            found = self._db.execute(f"select rowid, * from {self._q} where {where}", values)
            old = found.fetchone()
            if old is not None:
                updated = True
                if old[0] <= before:  # a row new in this page is taken out whole by rewind
                    columns = [column[0] for column in found.description[1:]]
                    was = json.dumps(dict(zip(columns, old[1:], strict=True)))
                    self._db.execute(
                        "insert or ignore into _scraper_undo values (?, ?, ?)",
                        (self.table, old[0], was),
                    )
        statement = self._statements.get(names)
        if statement is None:
            if len(self._statements) >= STATEMENTS_KEPT:
                self._statements.clear()  # a callback's records may vary without end
            statement = self._statement(names)
            self._statements[names] = statement
        self._db.execute(statement, [*(_stored(record[name]) for name in names), url, fetched_at])
        return "updated" if updated else "new"

    def _column(self, name: str) -> bool:
        """Whether ``name`` has a column (added now if it is new); warns once if it cannot."""
        folded = name.casefold()
        have = self._columns.get(folded)
        if have == name and name not in (URL, FETCHED_AT):
            return True
        if have is None:
            self._add_column(name)
            self._columns[folded] = name
            log.info("%s: added the column %r to table %r", self.path, name, self.table)
            return True
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "the field %r cannot have a column in table %r: %s; its values are left "
                "out of %s (a JSON Lines output keeps every field)",
                name,
                self.table,
                f"SQLite does not tell it from the column {have!r}"
                if name not in (URL, FETCHED_AT)
                else "the output fills that column itself",
                self.path,
            )
        return False

    def _statement(self, names: tuple[str, ...]) -> str:
        columns = [_quoted(name) for name in (*names, URL, FETCHED_AT)]
        insert = (
            f"insert into {self._q} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})"
        )
        if not self.key:
            return insert
        sets = ", ".join(f"{name} = excluded.{name}" for name in columns)
        keys = ", ".join(_quoted(name) for name in self.key)
        return f"{insert} on conflict ({keys}) do update set {sets}"


def now() -> str:
    """The time now in ISO 8601, UTC, to the second (``_fetched_at``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stream_time(entry_id: str) -> str:
    """The time a Redis stream entry was added (its id starts with Unix milliseconds)."""
    millis = entry_id.partition("-")[0]
    seconds = int(millis) / 1000 if millis.isdigit() else time.time()
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _stored(value: Any) -> Any:
    """``value`` as SQLite stores it: lists and objects as JSON text, dates as ISO text,
    an integer SQLite cannot hold as its digits."""
    if isinstance(value, (list, dict)):
        return ENCODER.encode(value)
    if isinstance(value, int) and value not in _INT_RANGE:
        return str(value)
    if isinstance(value, (date, time_of_day)):
        return value.isoformat()
    return value


def _declared(kind: str) -> str:
    return "TEXT" if kind == JSON_TEXT else kind


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
