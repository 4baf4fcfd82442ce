"""``scraper try``: what a pattern does on one page, before it goes into a spider.

Shows the match count, the first records as a table, the time the patterns
took and, when nothing matched, the longest start of the pattern that still
matches somewhere, which is where the pattern and the page part ways.
"""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import regex

from scraper.errors import FetchError, ScraperError
from scraper.extract import Extraction, ExtractTimeout, extract
from scraper.fetch import Fetcher, decode
from scraper.jsonpage import PageFailed
from scraper.models import Page, Request
from scraper.pagespec import WHOLE_MATCH_FIELD, PageSpec
from scraper.regexspec import FLAGS, caret, flag_value
from scraper.spec import CrawlSettings, SpiderSpec, StartURLs
from scraper.wire import open_wire

if TYPE_CHECKING:
    import httpx

PREFIX_SEARCH_TIMEOUT = 0.2
PREFIX_SEARCH_BUDGET = 5.0
"""Seconds the search for the longest matching start of a pattern may take in all."""

TABLE_WIDTH = 40
"""Display columns a value takes in the table unless ``--width`` says otherwise."""

TIME_COVERS = "(pattern, clean:, follow rules; not fetching or decoding)"
"""What the time ``scraper try`` prints covers: one run of ``extract`` on the page."""


@dataclass(frozen=True)
class Trial:
    """The outcome of running a page kind on one page."""

    page: Page
    page_spec: PageSpec
    extraction: Extraction
    seconds: float

    def report(self, rows: int, width: int | None = None, long: bool = False) -> str:
        """What ``scraper try`` prints: counts, time, the first ``rows`` records, links.

        Records are a table of values cut to ``width`` display columns (default
        40), or with ``long`` one block each, values whole as JSON writes them
        (cut only when ``width`` is given). 0 cuts nothing.
        """
        page, records = self.page, self.extraction.records
        dropped = sum(self.extraction.dropped.values())
        lines = [
            f"{len(records) + dropped} {'items' if self.page_spec.json else 'matches'} "
            f"({dropped} dropped) in "
            f"{self.seconds * 1000:.2f} ms {TIME_COVERS} on {page.url} "
            f"({len(page.text):,} characters, {page.encoding})"
        ]
        lines += [f"  dropped {n}: {reason}" for reason, n in self.extraction.dropped.most_common()]
        if records:
            if long:
                lines += ["", format_blocks(records[:rows], width or 0)]
            else:
                table_width = TABLE_WIDTH if width is None else width
                lines += ["", format_table(records[:rows], table_width)]
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
    except PageFailed as failed:  # as in a run, the page fails: exit status 1
        error = ScraperError(f"{page.url}: {failed.detail}.")
        error.exit_code = 1
        raise error from None
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


def format_blocks(records: list[dict[str, object]], width: int = 0) -> str:
    """Records one block each, a field a line, values as JSON writes them (so a line
    break shows as ``\\n`` and a string in quotes), cut to ``width`` columns unless 0."""
    blocks = []
    for number, record in enumerate(records, 1):
        names = max((_width(name) for name in record), default=0)
        lines = [f"record {number}:"]
        for name, value in record.items():
            shown = _cut(json.dumps(value, ensure_ascii=False), width)
            lines.append(f"  {name}:{' ' * (names - _width(name))}  {shown}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_table(records: list[dict[str, object]], width: int = TABLE_WIDTH) -> str:
    """Records as a plain text table, values on one line, cut to ``width`` display
    columns (0: not cut)."""
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
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _cut(" ".join(shown.split()), width)


def _cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` display columns, ending in "…" when cut; 0: whole."""
    if not width or _width(text) <= width:
        return text
    text = text[:width]  # every character takes a column at least: the rest is cut anyway
    while _width(text) > width - 1:
        text = text[:-1]
    return text + "…"
