"""Crawl state in SQLite, so that ``scraper run --resume`` continues where a run stopped.

Each request the crawl admits is a row: pending, done or failed. A page's
records are written to the output first; then, in one transaction, the page is
marked done, the links it led to are added as pending, and the output's size
is noted. A run that dies between the two leaves records past the noted size:
resuming cuts the output back to it and fetches that page again, so every
record ends up in the output exactly once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from scraper.errors import OutputError
from scraper.models import Request

log = logging.getLogger("scraper")

PENDING, DONE, FAILED = 0, 1, 2

_SCHEMA = """
create table if not exists request (
    key text primary key,
    url text not null,
    page text,
    depth integer not null,
    carry text not null,
    status integer not null default 0
);
create table if not exists meta (name text primary key, value text not null);
"""


class CrawlState:
    """The SQLite file of one crawl; ``spider`` guards against resuming another spider."""

    def __init__(self, path: Path, spider: str) -> None:
        import sqlite3  # only --resume needs it: kept off every other run's start-up

        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=normal")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot keep the crawl state in {path}: {exc}. Choose another with --state PATH."
            ) from None
        stored = self._meta("spider")
        if stored is not None and stored != spider:
            raise OutputError(
                f"{path} holds the state of spider {stored!r}, not {spider!r}; "
                "give this crawl its own --state PATH."
            )
        self._set_meta("spider", spider)
        self._added: list[tuple[str, Request]] = []
        self._finished: list[tuple[int, str]] = []

    @classmethod
    def for_output(cls, path: Path, output: Path, spider: str) -> CrawlState:
        """The state of the crawl writing ``output``: resumed if ``path`` exists, else new.

        Resuming cuts ``output`` back to what the state vouches for (records of
        pages not marked done are fetched again); a new state starts a new output.
        """
        resuming = path.is_file()
        state = cls(path, spider)
        if not resuming:
            output.unlink(missing_ok=True)
            return state
        size = state.output_size
        have = output.stat().st_size if output.exists() else 0
        if have < size:
            state.close()
            raise OutputError(
                f"{output} holds {have} bytes but {path} vouches for {size}: the output was "
                f"changed since. Remove {path} to start over."
            )
        os.truncate(output, size)
        log.warning("resuming from %s", path)
        return state

    @staticmethod
    def remove(path: Path) -> None:
        """Delete a state file (and SQLite's files beside it), if there is one."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    @property
    def output_size(self) -> int:
        """Bytes of output that hold the records of the pages marked done."""
        return int(self._meta("output_size") or 0)

    def admitted_keys(self) -> Iterator[str]:
        """The dedup key of every request admitted so far."""
        for (key,) in self._db.execute("select key from request"):
            yield key

    def unfinished(self) -> Iterator[Request]:
        """Requests still to fetch: pending ones, and failed ones for another try."""
        rows = self._db.execute(
            "select url, page, depth, carry from request where status != ? order by rowid", (DONE,)
        )
        for url, page, depth, carry in rows:
            yield Request(url, page, depth, json.loads(carry))

    def add(self, key: str, request: Request) -> None:
        """Note an admitted request; saved with the next ``commit``."""
        self._added.append((key, request))

    def finish(self, key: str, failed: bool = False) -> None:
        """Note a request done (or failed); saved with the next ``commit``."""
        self._finished.append((FAILED if failed else DONE, key))

    def commit(self, output_size: int) -> None:
        """Save what was noted, with the output size that goes with it, in one transaction."""
        rows = [
            (key, r.url, r.page, r.depth, json.dumps(dict(r.carry), ensure_ascii=False))
            for key, r in self._added
        ]
        with self._db:
            self._db.execute("begin")
            self._db.executemany(
                "insert or ignore into request (key, url, page, depth, carry) "
                "values (?, ?, ?, ?, ?)",
                rows,
            )
            self._db.executemany("update request set status = ? where key = ?", self._finished)
            self._set_meta("output_size", str(output_size))
        self._added.clear()
        self._finished.clear()

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("select value from meta where name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, name: str, value: str) -> None:
        self._db.execute("insert or replace into meta values (?, ?)", (name, value))
