"""The frontier: which requests are still to fetch, each admitted once.

Links found on pages come first, in the order they were found (so a crawl
goes deep before it goes wide); start URLs are drawn from their templates only
as workers need them, so a spider with 100,000 start URLs never holds them
all, and none is drawn once ``max_pages`` is reached (the rest are counted as
skipped without being made). A request is admitted once per crawl, by its
canonical URL (``canonical_url``: query arguments sorted, fragment dropped)
and page kind: a URL sent to two page kinds is fetched once for each. It is
admitted only within ``allowed_domains``, ``max_depth`` and ``max_pages``; a
link that cannot be parsed into a URL is skipped as ``bad url``, one admitted
before as ``already seen`` (a start URL too, unless a resumed state admitted
it). (The ``only``/``skip`` filters are decided in ``scraper.extract``, under
the page's time budget.)

Memory stays bounded whatever a site links to: past ``PENDING_IN_MEMORY``
pending requests, the newest wait in a temporary SQLite file (private to the
process and deleted when it ends, a crash included) and are read back, in
order, a batch at a time.

``UniqueRecords`` is the same idea for records: it drops a record whose
``unique:`` fields were written before in the crawl.

With a ``CrawlState`` the frontier also records what it admits and what is
done, and starts from what a previous run left; a request there for a page
kind the spider no longer has is counted as failed (``unknown page kind``)
with a warning, never handed out. With a ``shard`` (I, N) it takes only every
N-th start URL from the I-th on: the share of one of N worker processes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import pickle
import re
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from scraper.models import PLAIN_HOST, Record, Request
from scraper.output.file import jsonable
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats

if TYPE_CHECKING:
    import sqlite3

    from scraper.state import CrawlState

log = logging.getLogger("scraper")

ALREADY_SEEN = "already seen"
"""The reason a link admitted before (same canonical URL, same page kind) is skipped."""

PENDING_IN_MEMORY = 10_000
"""Pending requests held in memory; the ones past them wait on disk."""
SPILL_BATCH = 1_000
"""Requests written to (and read back from) disk at a time."""


class Frontier:
    """Requests still to fetch, for one crawl of ``spider``."""

    def __init__(
        self,
        spider: SpiderSpec,
        stats: CrawlStats,
        state: CrawlState | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.spider = spider
        self.settings = spider.settings
        self.stats = stats
        self.state = state
        self._allowed = self.settings.allowed_domains or spider.start.hosts()
        self._first_page = spider.first_page
        # hash() of (page kind, canonical URL): a tenth of the memory of the strings,
        # and a collision needs ~4 billion URLs to become likely.
        self._seen: set[int] = set()
        self._admitted = 0
        self._pending = PendingQueue()
        index, count = shard
        self._starts_left = len(range(index, len(spider.start), count))
        self._starts: Iterator[Request] = (
            Request(s.url, s.page or spider.first_page)
            for s in itertools.islice(spider.start, index, None, count)
        )
        if state is not None:
            first = self._first_page
            self._seen.update(hash((page or first, key)) for key, page in state.admitted_keys())
            self._admitted = len(self._seen)
            self._resume(state)
        # Start URLs admitted by the run resumed are not news: they are not counted.
        self._count_seen_starts = self._admitted == 0

    def __len__(self) -> int:
        """Links waiting (start URLs not yet drawn are not counted)."""
        return len(self._pending)

    @property
    def in_memory(self) -> int:
        """Pending requests held in memory (at most ``PENDING_IN_MEMORY + SPILL_BATCH``)."""
        return self._pending.in_memory

    def next(self) -> Request | None:
        """The next request to fetch, or ``None`` when nothing is left to start."""
        if self._pending:
            return self._pending.popleft()
        for request in self._starts:
            if self._full():
                break
            self._starts_left -= 1
            if self._admit(request, count_seen=self._count_seen_starts):
                return self._pending.popleft()
        if self._starts_left:
            # max_pages is reached: the start URLs not drawn are counted, not made.
            self.stats.skipped["max_pages"] += self._starts_left
            self._starts_left = 0
            self._starts = iter(())
        return None

    def allows(self, url: str) -> bool:
        """Whether ``url`` is http(s) on an allowed domain (or a subdomain of one)."""
        try:
            return self._allows(urlsplit(url))
        except ValueError:
            return False

    def follow(self, request: Request) -> None:
        """Queue a link found on a page, unless a limit rules it out (counted as skipped)."""
        skipped = self.skip_reason(request)
        if skipped is not None:
            self.stats.skipped[skipped] += 1
            return
        self._admit(request)

    def finish(self, request: Request, *, failed: bool = False) -> None:
        """Note that ``request`` is done (kept in the state, when there is one)."""
        if self.state is not None:
            self.state.finish(canonical_url(request.url), request.page, failed=failed)

    def close(self) -> None:
        """Let go of the pending requests (and the file of those that waited on disk)."""
        self._pending.close()

    def _allows(self, parts: SplitResult) -> bool:
        if parts.scheme not in ("http", "https"):
            return False
        host = (parts.hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self._allowed)

    def skip_reason(self, request: Request) -> str | None:
        """Why a link is not to be followed (``offsite``, ``bad url``, ``max_depth``), or None."""
        plain = PLAIN_HOST.match(request.url)
        if plain:
            host = plain[2]
            if not any(host == d or host.endswith("." + d) for d in self._allowed):
                return "offsite"
        else:
            try:
                parts = urlsplit(request.url)
            except ValueError:
                return "bad url"
            if not self._allows(parts):
                return "offsite"
        max_depth = self.settings.max_depth
        if max_depth is not None and request.depth > max_depth:
            return "max_depth"
        return None

    def _full(self) -> bool:
        max_pages = self.settings.max_pages
        return max_pages is not None and self._admitted >= max_pages

    def _admit(self, request: Request, count_seen: bool = True) -> bool:
        key = canonical_url(request.url)
        fingerprint = hash((request.page or self._first_page, key))
        if fingerprint in self._seen:
            if count_seen:
                self.stats.skipped[ALREADY_SEEN] += 1
            return False
        if self._full():
            self.stats.skipped["max_pages"] += 1
            return False
        self._seen.add(fingerprint)
        self._admitted += 1
        self._pending.append(request)
        if self.state is not None:
            self.state.add(key, request)
        return True

    def _resume(self, state: CrawlState) -> None:
        """Queue what ``state`` left to fetch (through the queue, so it may wait on disk)."""
        unknown: Counter[str] = Counter()
        for request in state.unfinished():
            if request.page is None or request.page in self.spider.pages:
                self._pending.append(request)
            else:
                unknown[request.page] += 1
        for kind, count in unknown.items():
            self.stats.failed["unknown page kind"] += count
            log.warning(
                "%s holds %d requests for page kind %r, which spider %r no longer has; they "
                "are counted as failed. Restore page kind %r in the spider, or remove %s to "
                "start over.",
                state.path,
                count,
                kind,
                self.spider.name,
                kind,
                state.path,
            )


class UniqueRecords:
    """Drops the records whose ``unique:`` fields were written before in this crawl.

    A page kind's ``unique`` wins over the spider's. A record's key is the names
    and values of those fields as JSON, object keys sorted (so ``1``, ``1.0`` and
    ``"1"`` differ, and a field the record lacks is ``null``), whatever page kind
    wrote it. Keys are kept as 8-byte BLAKE2b hashes, stable across processes so
    that a crawl state can hold them: a collision needs ~4 billion keys to become
    likely. With ``state``, the keys of the records kept go into it with their
    page (``CrawlState.add_record_key``), and a resumed crawl starts from them.
    """

    def __init__(
        self, spider: SpiderSpec, stats: CrawlStats, state: CrawlState | None = None
    ) -> None:
        self.stats = stats
        self.state = state
        self.fields = unique_fields(spider)
        self._seen: set[int] = set()
        if state is not None and self.fields:
            self._seen.update(state.record_keys())

    def keep(self, records: list[Record], kind: str) -> list[Record]:
        """``records`` of a page of ``kind`` but the duplicates (counted as dropped)."""
        fields = self.fields.get(kind)
        if fields is None or not records:
            return records
        kept: list[Record] = []
        for record in records:
            key = record_key(record, fields)
            if key is None:  # a value JSON cannot hold: the writer drops it, with why
                kept.append(record)
            elif key in self._seen:
                self.stats.dropped[DUPLICATE] += 1
            else:
                self._seen.add(key)
                kept.append(record)
                if self.state is not None:
                    self.state.add_record_key(key)
        return kept


def unique_fields(spider: SpiderSpec) -> dict[str, tuple[str, ...]]:
    """The ``unique:`` fields of each page kind that has some (a page kind's own win)."""
    fields: dict[str, tuple[str, ...]] = {}
    for kind, page in spider.pages.items():
        own = spider.unique if page.unique is None else page.unique
        if own:
            fields[kind] = own
    return fields


DUPLICATE = "duplicate"
"""The reason a record dropped by ``unique:`` is counted under."""
_KEY_JSON = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), default=jsonable
)


def record_key(record: Record, fields: Sequence[str]) -> int | None:
    """The 8-byte hash of ``record``'s ``fields`` (names and values as JSON, dates as the
    outputs write them), or ``None`` when a value is not one JSON can hold."""
    try:
        text = _KEY_JSON.encode({name: record.get(name) for name in fields})
    except (TypeError, ValueError, RecursionError):
        return None
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)  # signed: what SQLite stores


class PendingQueue:
    """Requests first in, first out; past ``limit`` in memory, the newest wait on disk.

    The front stays in memory (at most ``limit``), then come the batches on disk,
    then the newest requests (fewer than ``batch``) until they make a batch. The
    disk is a private temporary SQLite database, which SQLite deletes when it is
    closed (or the process ends); it is made only when first needed.
    """

    def __init__(self, limit: int = PENDING_IN_MEMORY, batch: int = SPILL_BATCH) -> None:
        self.limit = limit
        self.batch = batch
        self._head: deque[Request] = deque()
        self._tail: list[Request] = []
        self._on_disk = 0
        self._db: sqlite3.Connection | None = None

    def __len__(self) -> int:
        return len(self._head) + self._on_disk + len(self._tail)

    @property
    def in_memory(self) -> int:
        """Requests held in memory."""
        return len(self._head) + len(self._tail)

    def append(self, request: Request) -> None:
        """Add ``request`` at the end."""
        if self._tail or self._on_disk or len(self._head) >= self.limit:
            self._tail.append(request)
            if len(self._tail) >= self.batch:
                self._write_batch()
        else:
            self._head.append(request)

    def popleft(self) -> Request:
        """Take the first request (``IndexError`` when there is none)."""
        if not self._head:
            if self._on_disk:
                self._read_batch()
            else:
                self._head.extend(self._tail)
                self._tail.clear()
        return self._head.popleft()

    def close(self) -> None:
        """Drop every request; the file on disk goes with them."""
        self._head.clear()
        self._tail.clear()
        self._on_disk = 0
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write_batch(self) -> None:
        if self._db is None:
            import sqlite3  # only a crawl with a long queue needs it

            # "": a temporary database in a file SQLite deletes itself.
            self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            self._db.execute("pragma journal_mode=off")
            self._db.execute("pragma synchronous=off")
            self._db.execute("create table batch (id integer primary key, requests blob not null)")
        # pickle: the file is ours alone, and a carry may hold any value a processor gives.
        rows: list[tuple[Any, ...]] = [(r.url, r.page, r.depth, r.carry) for r in self._tail]
        blob = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        self._db.execute("insert into batch (requests) values (?)", (blob,))
        self._on_disk += len(rows)
        self._tail.clear()

    def _read_batch(self) -> None:
        assert self._db is not None
        number, blob = self._db.execute(
            "select id, requests from batch order by id limit 1"
        ).fetchone()
        self._db.execute("delete from batch where id = ?", (number,))
        rows = pickle.loads(blob)
        self._on_disk -= len(rows)
        self._head.extend(Request(*row) for row in rows)


# An http(s) URL whose host needs no parsing: lower-case letters, digits, dots and dashes,
# then a port, a path, a query, a fragment or nothing (so no user info, no IPv6).
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
# Already canonical: lower-case scheme and host, a path, no query, fragment or blanks.
_PLAIN_URL = re.compile(r"(https?)://[a-z0-9.-]+(:[0-9]+)?/[^?#\s]*")


def canonical_url(url: str) -> str:
    """``url`` as dedup compares it: scheme and host lower-case, default port, empty
    path and fragment dropped, query arguments sorted (blank ones kept). A URL that
    cannot be parsed is compared as it is written."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain and plain[2] != _DEFAULT_PORTS[plain[1]]:
        return url  # most URLs, such as a template's: one match instead of split and join
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower().removesuffix(_DEFAULT_PORTS.get(scheme, "\0"))
    query = parts.query
    if query:
        query = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))
