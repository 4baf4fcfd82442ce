"""What a crawl counts, and the summary printed at its end."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

EMPTY_URLS_KEPT = 5
_BY_REASON = ("failed", "dropped", "skipped", "empty_pages")
_COUNTS = ("pages", "records", *_BY_REASON)


@dataclass
class CrawlStats:
    """Counters of one crawl; ``summary()`` is what ``scraper run`` prints on stderr."""

    pages: int = 0
    records: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    empty_pages: Counter[str] = field(default_factory=Counter)
    empty_urls: dict[str, list[str]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    rows: Counter[str] | None = None
    """Rows a SQLite output added (``new``) and ``updated``; None for other outputs."""
    incremental: bool = False
    """Whether the run is an ``--incremental`` re-crawl, whose summary has the three
    counts below."""
    not_modified: int = 0
    """Pages that answered 304 to a conditional request (not counted in ``pages``)."""
    done_before: int = 0
    """Pages not fetched: they yielded records in an earlier run."""
    unchanged: int = 0
    """Records not written: identical to one an earlier page or run wrote."""

    def merge(self, other: CrawlStats) -> None:
        """Add ``other``'s counts to these (the shares of several worker processes)."""
        self.pages += other.pages
        self.records += other.records
        for name in _BY_REASON:
            getattr(self, name).update(getattr(other, name))
        for kind, urls in other.empty_urls.items():
            kept = self.empty_urls.setdefault(kind, [])
            kept.extend(urls[: EMPTY_URLS_KEPT - len(kept)])

    def to_json(self) -> str:
        """The counts as JSON, for a worker process to hand to its parent."""
        counts = {name: getattr(self, name) for name in _COUNTS}
        return json.dumps({**counts, "empty_urls": self.empty_urls}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CrawlStats:
        """Counts written by ``to_json``."""
        data = json.loads(text)
        stats = cls(pages=data["pages"], records=data["records"], empty_urls=data["empty_urls"])
        for name in _BY_REASON:
            getattr(stats, name).update(data[name])
        return stats

    def page_without_match(self, kind: str, url: str) -> None:
        """Count a page whose pattern matched nothing; keep its URL (the first few a kind)."""
        self.empty_pages[kind] += 1
        urls = self.empty_urls.setdefault(kind, [])
        if len(urls) < EMPTY_URLS_KEPT:
            urls.append(url)

    @property
    def elapsed(self) -> float:
        """Seconds since the crawl started (until it finished, once it has)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def pages_per_second(self) -> float:
        """Pages fetched (failed and not modified ones included) per second of the crawl."""
        done = self.pages + self.failures + self.not_modified
        return done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def failures(self) -> int:
        """Pages that could not be fetched or extracted."""
        return sum(self.failed.values())

    def progress_line(self) -> str:
        """One short line for the live progress display."""
        return (
            f"{self.pages} pages, {self.records} records, {self.failures} failed, "
            f"{self.pages_per_second:.0f} pages/s, {self.elapsed:.0f}s"
        )

    def summary(self) -> str:
        """The end-of-run report, one fact a line."""
        recrawl = self.incremental
        lines = [f"pages fetched:   {self.pages}"]
        if recrawl:
            lines.append(f"pages unchanged: {self.not_modified} (304 not modified)")
            lines.append(f"pages skipped:   {self.done_before} (already done)")
        lines.append(f"pages failed:    {self.failures}{_by_reason(self.failed)}")
        lines.append(f"records written: {self.records}")
        if self.rows is not None:
            new, updated = self.rows["new"], self.rows["updated"]
            lines.append(f"rows:            {new} new, {updated} updated")
        if recrawl:
            lines.append(f"records skipped: {self.unchanged} (unchanged)")
        lines.append(f"records dropped: {sum(self.dropped.values())}{_by_reason(self.dropped)}")
        if self.skipped:
            lines.append(f"links skipped:   {sum(self.skipped.values())}{_by_reason(self.skipped)}")
        for kind, count in self.empty_pages.most_common():
            lines.append(
                f"no match:        {count} pages of kind {kind!r} (has the markup changed?)"
            )
            lines.extend(f"                 {url}" for url in self.empty_urls[kind])
            if count > len(self.empty_urls[kind]):
                lines.append(f"                 ... and {count - len(self.empty_urls[kind])} more")
        lines.append(f"elapsed:         {self.elapsed:.2f}s ({self.pages_per_second:.1f} pages/s)")
        return "\n".join(lines)


def _by_reason(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{reason}: {n}" for reason, n in counts.most_common()) + ")"
