"""The frontier: which requests are still to fetch, each admitted once.

Links found on pages come first (so a crawl goes deep before it goes wide and
the list of pending links stays short); start URLs are drawn from their
templates only as workers need them, so a spider with 100,000 start URLs
never holds them all. A request is admitted once per crawl, by its canonical
URL (``canonical_url``: query arguments sorted, fragment dropped), and only within
``allowed_domains``, ``max_depth``, ``max_pages`` and the ``only``/``skip``
filters. With a ``CrawlState`` the frontier also records what it admits and
what is done, and starts from what a previous run left. With a ``shard``
(I, N) it takes only every N-th start URL from the I-th on: the share of one
of N worker processes.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scraper.models import Request
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats

if TYPE_CHECKING:
    from scraper.state import CrawlState


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
        # hash() of the canonical URL: a tenth of the memory of the strings, and a
        # collision needs ~4 billion URLs to become likely.
        self._seen: set[int] = set()
        self._admitted = 0
        self._pending: deque[Request] = deque()
        index, count = shard
        self._starts: Iterator[Request] = (
            Request(s.url, s.page or spider.first_page)
            for s in itertools.islice(spider.start, index, None, count)
        )
        if state is not None:
            self._seen.update(hash(key) for key in state.admitted_keys())
            self._admitted = len(self._seen)
            self._pending.extend(state.unfinished())

    def __len__(self) -> int:
        """Links waiting (start URLs not yet drawn are not counted)."""
        return len(self._pending)

    def next(self) -> Request | None:
        """The next request to fetch, or ``None`` when nothing is left to start."""
        if self._pending:
            return self._pending.popleft()
        for request in self._starts:
            if self._admit(request):
                return self._pending.popleft()
        return None

    def allows(self, url: str) -> bool:
        """Whether ``url`` is http(s) on an allowed domain (or a subdomain of one)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return False
        host = (parts.hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self._allowed)

    def follow(self, request: Request) -> None:
        """Queue a link found on a page, unless a limit or filter rules it out."""
        skipped = self._skip_reason(request)
        if skipped is not None:
            self.stats.skipped[skipped] += 1
            return
        self._admit(request)

    def finish(self, request: Request, *, failed: bool = False) -> None:
        """Note that ``request`` is done (kept in the state, when there is one)."""
        if self.state is not None:
            self.state.finish(canonical_url(request.url), failed=failed)

    def _skip_reason(self, request: Request) -> str | None:
        if not self.allows(request.url):
            return "offsite"
        settings = self.settings
        if settings.max_depth is not None and request.depth > settings.max_depth:
            return "max_depth"
        url, limit = request.url, settings.extract_timeout  # the URL came from a page
        try:
            if settings.only and not any(p.search(url, timeout=limit) for p in settings.only):
                return "not in only"
            if any(p.search(url, timeout=limit) for p in settings.skip):
                return "skip"
        except TimeoutError:
            return "filter timeout"
        return None

    def _admit(self, request: Request) -> bool:
        key = canonical_url(request.url)
        fingerprint = hash(key)
        if fingerprint in self._seen:
            return False
        max_pages = self.settings.max_pages
        if max_pages is not None and self._admitted >= max_pages:
            self.stats.skipped["max_pages"] += 1
            return False
        self._seen.add(fingerprint)
        self._admitted += 1
        self._pending.append(request)
        if self.state is not None:
            self.state.add(key, request)
        return True


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
# Already canonical: lower-case scheme and host, a path, no query, fragment or blanks.
_PLAIN_URL = re.compile(r"(https?)://[a-z0-9.-]+(:[0-9]+)?/[^?#\s]*")


def canonical_url(url: str) -> str:
    """``url`` as dedup compares it: scheme and host lower-case, default port, empty
    path and fragment dropped, query arguments sorted (blank ones kept)."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain and plain[2] != _DEFAULT_PORTS[plain[1]]:
        return url  # most URLs, such as a template's: one match instead of split and join
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower().removesuffix(_DEFAULT_PORTS.get(scheme, "\0"))
    query = parts.query
    if query:
        query = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))
