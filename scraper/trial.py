"""``scraper try``: what a pattern does on one page, before it goes into a spider.

Shows the match count, the first records as a table, the time the patterns
took and, when nothing matched, the longest start of the pattern that still
matches somewhere, which is where the pattern and the page part ways.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import regex

from scraper.errors import FetchError, ScraperError
from scraper.extract import Extraction, ExtractTimeout, extract
from scraper.fetch import Fetcher, decode
from scraper.models import Page, Request
from scraper.pagespec import FLAGS, WHOLE_MATCH_FIELD, PageSpec, caret, flag_value
from scraper.spec import CrawlSettings, SpiderSpec, StartURLs
from scraper.wire import open_wire

if TYPE_CHECKING:
    import httpx

PREFIX_SEARCH_TIMEOUT = 0.2
PREFIX_SEARCH_BUDGET = 5.0
"""Seconds the search for the longest matching start of a pattern may take in all."""


@dataclass(frozen=True)
class Trial:
    """The outcome of running a page kind on one page."""

    page: Page
    page_spec: PageSpec
    extraction: Extraction
    seconds: float

    def report(self, rows: int) -> str:
        """What ``scraper try`` prints: counts, time, the first ``rows`` records, links."""
        page, records = self.page, self.extraction.records
        dropped = sum(self.extraction.dropped.values())
        lines = [
            f"{len(records) + dropped} matches ({dropped} dropped) in "
            f"{self.seconds * 1000:.2f} ms on {page.url} "
            f"({len(page.text):,} characters, {page.encoding})"
        ]
        lines += [f"  dropped {n}: {reason}" for reason, n in self.extraction.dropped.most_common()]
        if records:
            lines += ["", format_table(records[:rows])]
            if len(records) > rows:
                lines.append(f"... {len(records) - rows} more")
        elif self.page_spec.pattern is not None and not dropped:
            lines.append(_where_it_breaks(self.page_spec.pattern, page.text))
        requests = self.extraction.requests
        for kind in dict.fromkeys(r.page for r in requests):
            links = [r.url for r in requests if r.page == kind]
            lines.append(f"follow -> {kind}: {len(links)} links, e.g. {links[0]}")
        return "\n".join(lines)


def _where_it_breaks(pattern: regex.Pattern[str], text: str) -> str:
    length, where = longest_matching_prefix(pattern, text)
    if where is None:
        return "Nothing matched, not even the start of the pattern."
    line = text.count("\n", 0, where) + 1
    return (
        f"Nothing matched. The longest start of the pattern that matches is "
        f"{length} of {len(pattern.pattern)} characters (first at line {line}):\n"
        f"    {pattern.pattern[:length]}\n"
        f"The page parts ways with the pattern at:\n"
        f"    {pattern.pattern[length : length + 60]}"
    )


def load_page(
    source: str, settings: CrawlSettings, transport: httpx.AsyncBaseTransport | None = None
) -> Page:
    """The page at ``source``: a URL (fetched) or a file (read and decoded)."""
    if source.startswith(("http://", "https://")):
        return asyncio.run(_fetch(source, settings, transport))
    path = Path(source)
    try:
        with path.open("rb") as file:  # at most max_bytes, as a fetched page: /dev/zero ends
            content = file.read(settings.max_bytes + 1)
    except OSError as exc:
        raise ScraperError(
            f"cannot read {source}: {exc.strerror}. Give a URL (http:// or https://) or a file."
        ) from None
    if len(content) > settings.max_bytes:
        raise ScraperError(
            f"{source} is larger than {settings.max_bytes:,} bytes, the most a page may be "
            "(max_bytes); try a smaller page, or raise max_bytes in the spider."
        )
    text, encoding = decode(content, None)
    url = path.resolve().as_uri()
    return Page(url, 200, (), content, text, encoding, Request(url))


async def _fetch(
    url: str, settings: CrawlSettings, transport: httpx.AsyncBaseTransport | None
) -> Page:
    wire = open_wire(settings, transport)
    try:
        return await Fetcher(wire, settings).fetch(Request(url))
    except FetchError as failure:
        raise ScraperError(f"cannot fetch {url}: {failure.reason}: {failure.detail}.") from None
    finally:
        await wire.aclose()


def adhoc_page_spec(source: str, flag_names: list[str], fields: list[str]) -> PageSpec:
    """A page kind for ``--pattern``: named groups, else ``fields`` or group numbers."""
    flags = 0
    for name in flag_names:
        value = flag_value(name)
        if value is None:
            raise ScraperError(f"unknown flag {name!r}; use any of {', '.join(FLAGS)}.")
        flags |= value
    try:
        pattern = regex.compile(source, flags | regex.VERSION0)
    except regex.error as exc:
        position = exc.pos or 0
        raise ScraperError(
            f"the pattern is not a valid regular expression: {exc.msg} at position {position}:"
            f"{caret(source, position)}"
        ) from None
    if pattern.groupindex:
        names = sorted(pattern.groupindex, key=lambda n: pattern.groupindex[n])
        return PageSpec("try", pattern, tuple(names), tuple(names))
    groups: list[int | str] = list(range(1, pattern.groups + 1)) or [0]
    names = fields or ([str(g) for g in groups] if pattern.groups else [WHOLE_MATCH_FIELD])
    if len(names) != len(groups):
        raise ScraperError(
            f"--fields names {len(names)} fields but the pattern has {len(groups)} groups."
        )
    return PageSpec("try", pattern, tuple(names), tuple(groups))


def run_trial(page: Page, page_spec: PageSpec, spider: SpiderSpec) -> Trial:
    """Run ``page_spec`` on ``page``, timed."""
    started = time.perf_counter()
    try:
        extraction = extract(page, page_spec, spider)
    except ExtractTimeout:
        raise ScraperError(
            f"the patterns ran past extract_timeout ({spider.settings.extract_timeout}s) on "
            f"{page.url}: one of them backtracks too much; make its repeats more specific "
            "(e.g. [^<]* instead of .*)."
        ) from None
    return Trial(page, page_spec, extraction, time.perf_counter() - started)


def adhoc_spider(page_spec: PageSpec) -> SpiderSpec:
    """A spider around one page kind, with default settings."""
    return SpiderSpec("try", "", StartURLs(), {page_spec.name: page_spec}, CrawlSettings())


def longest_matching_prefix(pattern: regex.Pattern[str], text: str) -> tuple[int, int | None]:
    """The length of the longest start of ``pattern`` that matches in ``text``, and where.

    Groups left open by the cut are closed, so ``<dd>(\\d+`` is tried as
    ``<dd>(\\d+)``. Returns ``(0, None)`` when not even the first character matches.
    """
    source = pattern.pattern
    deadline = time.monotonic() + PREFIX_SEARCH_BUDGET
    for end in range(len(source), 0, -1):
        if time.monotonic() > deadline:
            break
        prefix = source[:end]
        for closing in range(0, prefix.count("(") - prefix.count(")") + 1):
            try:
                candidate = regex.compile(prefix + ")" * closing, pattern.flags)
            except regex.error:
                continue
            try:
                found = candidate.search(text, timeout=PREFIX_SEARCH_TIMEOUT)
            except TimeoutError:
                break
            if found:
                return end, found.start()
            break
    return 0, None


def format_table(records: list[dict[str, object]], width: int = 40) -> str:
    """Records as a plain text table, values cut to ``width`` characters."""
    columns = list(dict.fromkeys(name for record in records for name in record))
    rows = [columns] + [[_cell(record.get(n), width) for n in columns] for record in records]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(columns))]
    rows.insert(1, ["-" * w for w in widths])
    return "\n".join(
        "  ".join(
            cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(value: object, width: int) -> str:
    text = " ".join(("null" if value is None else str(value)).split())
    if _width(text) <= width:
        return text
    while _width(text) > width - 1:
        text = text[:-1]
    return text + "…"
