"""Daily re-crawls that fetch and write only what is new: ``scraper run --incremental``.

The crawl state (``scraper.state``) is kept across runs, and ``RecrawlState``
adds to it what one run leaves the next:

- each page's last full answer (``page_answer``): when, whether it yielded
  records, and its ``ETag`` / ``Last-Modified``;
- the follow links of that answer (``page_link``), for the pages fetched on
  every run: start pages, page kinds with ``refresh: true``, and pages that
  yielded no records;
- a 64-bit hash of each record written (``frontier.record_key`` of all its
  fields) and, for a record with a key (``unique:`` or ``--key``), the hash of
  the record its key was last written with (``record_version``).

In a run, a page that yielded records in an earlier run is not fetched again
(counted ``already done``) unless it is a start page, its kind says ``refresh:
true``, or it was fetched longer than ``--since`` days ago. A page fetched again
whose links were kept with an ``ETag`` or ``Last-Modified`` is asked with
``If-None-Match`` / ``If-Modified-Since``: a 304 leads to those links again,
so pagers and listings still lead to new pages, and yields no records. A record
identical to one written before is not written again (``unchanged``); with a
key, one whose key was written with other values is (a SQLite output updates
that row).

Each run's own frontier is the ``request`` table, as for ``--resume``: a new run
empties it (and the ``unique:`` keys, which hold within one run), a run that
crawls to its end notes so (``run_open``). A run that was interrupted is
continued by ``--resume``; else a new run starts. Either way the output is first
cut back to the last page the state noted, as ``--resume`` does: the records
past it are not in the ``record_hash`` table, so they would be written twice. Everything a
page changes is saved in the transaction of its ``CrawlState.commit``, with the
output's size.
"""

from __future__ import annotations

import json
import logging
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scraper.errors import OutputError, ScraperError
from scraper.frontier import canonical_url, record_key, unique_fields
from scraper.models import Page, Record, Request
from scraper.state import CrawlState, request_row
from scraper.stateoutput import check_paths, cut_back

if TYPE_CHECKING:
    from scraper.output import Output, OutputOptions
    from scraper.spec import SpiderSpec

log = logging.getLogger("scraper")

DAY = 86_400.0
LOOKUP_BATCH = 500
"""Record hashes looked up in the state in one query (SQLite takes 999 parameters at least)."""

_TABLES = """
create table if not exists page_answer (
    key text not null, page text not null, done_at real not null, records integer not null,
    etag text, last_modified text, primary key (key, page)) without rowid;
create table if not exists page_link (
    key text not null, page text not null, url text not null, kind text,
    depth integer not null, carry text not null);
create index if not exists page_link_of on page_link (key, page);
create table if not exists record_hash (hash integer primary key);
create table if not exists record_version (key integer primary key, hash integer not null);
"""

Where = tuple[str, str]
"""A page as the state keys it: its canonical URL and page kind."""


@dataclass(frozen=True)
class LastAnswer:
    """What a page's last full answer left: when (Unix time), whether it yielded
    records, and its validators (kept only with its links)."""

    done_at: float
    records: bool
    etag: str | None = None
    last_modified: str | None = None

    @property
    def conditional(self) -> dict[str, str] | None:
        """The headers that ask whether the page changed since; None without validators."""
        headers = {}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None:
            headers["If-Modified-Since"] = self.last_modified
        return headers or None


class RecrawlState(CrawlState):
    """The state of ``--incremental`` re-crawls of ``spider`` (see the module).

    ``key`` are the fields that identify a record (``--key``; default: each page
    kind's ``unique:``); ``since`` the age in days past which a page done is
    fetched again.
    """

    KIND = "incremental"

    def __init__(
        self,
        path: Path,
        spider: SpiderSpec,
        output: Path | None = None,
        *,
        key: Sequence[str] | None = None,
        since: float | None = None,
    ) -> None:
        import sqlite3

        super().__init__(path, spider.name, output)
        self.spider = spider
        self.keys = {kind: tuple(key) for kind in spider.pages} if key else unique_fields(spider)
        self.oldest = None if since is None else time.time() - since * DAY
        """Pages done before this time (Unix) are fetched again; None: none are."""
        try:
            self._db.executescript(_TABLES)
        except sqlite3.DatabaseError as exc:
            self.close()
            self._damaged(str(exc))
        self._new_run = False
        self._answers: dict[Where, tuple[float, int, str | None, str | None]] = {}
        self._links: dict[Where, list[tuple[Any, ...]]] = {}
        self._hashes: set[int] = set()
        self._versions: dict[int, int] = {}

    @property
    def interrupted(self) -> bool:
        """Whether the last run stopped before the end of its crawl."""
        return self._meta("run_open") == "1"

    def start_run(self, output_size: int, *, resume: bool) -> None:
        """Begin a run: the interrupted one continued (``resume``), else a new one."""
        if resume and self.interrupted:
            done, left = self.progress()
            log.info(
                "continuing the interrupted re-crawl in %s: %d pages done, %d to fetch",
                self.path,
                done,
                left,
            )
        else:
            self._new_run = True
        self.commit(output_size)

    def end_run(self) -> None:
        """Note that this run crawled to its end: the next one is a new run."""
        import sqlite3

        try:
            with self._db:
                self._db.execute("begin")
                self._set_meta("run_open", "0")
        except sqlite3.Error as exc:
            raise OutputError(
                f"saving the crawl state in {self.path} failed: {exc}. The records are in "
                "the output; the next run cuts it back to its last page noted."
            ) from None

    def last_answer(self, request: Request) -> LastAnswer | None:
        """What the last full answer of ``request``'s page left, if it was fetched before."""
        where = self._where(request)
        row = self._answers.get(where)
        if row is None:
            query = "select done_at, records, etag, last_modified from page_answer "
            rows = self._rows(query + "where key = ? and page = ?", where)
            row = next(rows, None)
        if row is None:
            return None
        done_at, records, etag, modified = row
        if not isinstance(done_at, (int, float)) or not isinstance(records, int):
            self._damaged(f"the answer noted for {request.url!r} is not one this tool wrote")
        return LastAnswer(float(done_at), bool(records), etag, modified)

    def skips(self, request: Request, last: LastAnswer | None) -> bool:
        """Whether ``request`` is not fetched: its page yielded records before, and it is
        no start page, its kind has no ``refresh: true``, and it is not too old."""
        if last is None or not last.records or request.depth == 0:
            return False
        if self.oldest is not None and last.done_at < self.oldest:
            return False
        return not self._refreshed(request)

    def links(self, request: Request) -> Iterator[Request]:
        """The links of ``request``'s page at its last full answer, from ``request``."""
        query = "select url, kind, depth, carry from page_link where key = ? and page = ?"
        for url, kind, depth, carry in self._rows(query + " order by rowid", self._where(request)):
            try:
                fields = json.loads(carry)
            except (TypeError, ValueError):
                fields = None
            if not (isinstance(url, str) and isinstance(depth, int) and isinstance(fields, dict)):
                self._damaged(f"a link kept for {request.url!r} is not one this tool wrote")
            yield Request(url, kind, request.depth + depth, fields)

    def answered(
        self,
        request: Request,
        last: LastAnswer | None,
        page: Page,
        links: Sequence[Request],
        yielded: bool,
    ) -> None:
        """Note a full answer of ``request``'s page; saved with the next ``commit``.

        Its validators and links are kept for a page that is fetched on every run (a
        start page, a ``refresh: true`` kind, a page without records), so that the
        next run asks it conditionally.
        """
        where = self._where(request)
        etag = modified = None
        if request.depth == 0 or self._refreshed(request) or not yielded:
            etag, modified = _validators(page)
        self._answers[where] = (time.time(), int(yielded), etag, modified)
        if etag is not None or modified is not None:
            rows = []
            for link in links:
                row = request_row("", link)
                if isinstance(row, str):
                    log.info("not keeping the link %s in %s: %s", link.url, self.path, row)
                    continue
                _, url, kind, depth, carry = row
                rows.append((*where, url, kind, depth - request.depth, carry))
            self._links[where] = rows
        elif last is not None and last.conditional is not None:
            self._links[where] = []  # no validators now: its links are not needed

    def not_modified(self, request: Request, last: LastAnswer, page: Page) -> None:
        """Note a 304 to ``request``: its page is as its last answer (validators the 304
        brings replace those kept); saved with the next ``commit``."""
        etag, modified = _validators(page)
        if etag is None and modified is None:
            etag, modified = last.etag, last.last_modified
        self._answers[self._where(request)] = (time.time(), int(last.records), etag, modified)

    def new_records(self, records: list[Record], kind: str) -> tuple[list[Record], int]:
        """``records`` but those written before unchanged, and how many those are.

        A record with a key (its kind's) is new when its key was never written or was
        written with other values; one without, when no identical record was written.
        """
        fields = self.keys.get(kind)
        hashed = [
            (
                record,
                record_key(record, tuple(record)),
                record_key(record, fields) if fields else None,
            )
            for record in records
        ]
        # One look-up a page, not a record: what the state holds of these hashes.
        if fields:
            query = "select key, hash from record_version where key in ({})"
            stored = self._stored(query, [key for _, _, key in hashed if key is not None])
        else:
            query = "select hash, hash from record_hash where hash in ({})"
            stored = self._stored(query, [digest for _, digest, _ in hashed if digest is not None])
        kept: list[Record] = []
        unchanged = 0
        for record, digest, key in hashed:
            if digest is None:  # JSON cannot hold it: the output leaves it out, saying why
                kept.append(record)
            elif key is not None:
                if self._versions.get(key, stored.get(key)) == digest:
                    unchanged += 1
                    continue
                self._versions[key] = digest
                kept.append(record)
            elif digest in self._hashes or digest in stored:
                unchanged += 1
            else:
                self._hashes.add(digest)
                kept.append(record)
        return kept, unchanged

    def _save_more(self) -> None:
        db = self._db
        if self._new_run:
            db.execute("delete from request")
            db.execute("delete from record_key")  # unique: holds within one run
            self._set_meta("run", str(int(self._meta("run") or 0) + 1))
            self._set_meta("run_open", "1")
            self._new_run = False
        db.executemany(
            "insert or replace into page_answer values (?, ?, ?, ?, ?, ?)",
            [(*where, *answer) for where, answer in self._answers.items()],
        )
        for where, rows in self._links.items():
            db.execute("delete from page_link where key = ? and page = ?", where)
            db.executemany("insert into page_link values (?, ?, ?, ?, ?, ?)", rows)
        db.executemany("insert or ignore into record_hash values (?)", [(h,) for h in self._hashes])
        db.executemany(
            "insert or replace into record_version values (?, ?)", self._versions.items()
        )
        self._answers.clear()
        self._links.clear()
        self._hashes.clear()
        self._versions.clear()

    def _where(self, request: Request) -> Where:
        return canonical_url(request.url), request.page or self.spider.first_page

    def _refreshed(self, request: Request) -> bool:
        page = self.spider.pages.get(request.page or self.spider.first_page)
        return page is not None and page.refresh

    def _stored(self, query: str, values: list[int]) -> dict[int, int]:
        """The rows ``query`` finds for ``values`` (its ``{}`` the placeholders), as a dict."""
        found: dict[int, int] = {}
        for start in range(0, len(values), LOOKUP_BATCH):
            batch = values[start : start + LOOKUP_BATCH]
            for first, second in self._rows(
                query.format(", ".join("?" * len(batch))), tuple(batch)
            ):
                found[first] = second
        return found


def open_recrawl(
    stack: ExitStack,
    path: str | Path | None,
    spider: SpiderSpec,
    *,
    options: OutputOptions,
    state_path: str | Path | None = None,
    resume: bool = False,
    since: float | None = None,
) -> tuple[Output, RecrawlState]:
    """The output of an ``--incremental`` run and its state (at ``state_path``, default
    ``PATH.state``; stdout needs one), both closed when ``stack`` closes.

    An existing output is added to (it is the history): a file appended to, a JSON
    array reopened, a SQLite table upserted. Claiming the paths is the caller's.
    """
    from scraper.output import output_format

    target = None if path is None or str(path) == "-" else Path(path)
    if target is None and state_path is None:
        raise ScraperError(
            "--incremental to stdout needs --state PATH: the state of the re-crawls is "
            "kept beside the output file, and stdout has none. Give it a file that stays "
            "from one run to the next, e.g. --state NAME.state."
        )
    state_at = Path(state_path or f"{target}.state")
    sqlite = output_format(target, options.format) == "sqlite"
    vouched = None  # the file whose size the state notes: none for stdout, a pipe or SQLite
    if target is not None:
        check_paths(state_at, target)
        if not sqlite and (not target.exists() or stat.S_ISREG(target.stat().st_mode)):
            vouched = target
    state = RecrawlState(state_at, spider, vouched, key=options.key, since=since)
    stack.callback(state.close)
    existed = target is not None and target.exists()
    if state.interrupted and vouched is not None and existed:
        cut_back(state)  # to the last page noted; a missing output starts anew
    output = options.open(target, spider, append=True)
    stack.callback(output.close)
    if state.interrupted and sqlite and existed:
        from scraper.output.sqlite import SqliteOutput

        assert isinstance(output, SqliteOutput)
        output.rewind(state.output_size, state.path)
    state.start_run(output.size, resume=resume)
    return output, state


def _validators(page: Page) -> tuple[str | None, str | None]:
    """The ``ETag`` and ``Last-Modified`` of ``page``'s answer (ASCII ones only: they are
    sent back as they came)."""
    etag = modified = None
    for name, value in page.raw_headers:
        lower = name.lower()
        if lower in (b"etag", b"last-modified") and value.isascii() and value.strip():
            text = value.decode("ascii").strip()
            if lower == b"etag":
                etag = text
            else:
                modified = text
    return etag, modified
