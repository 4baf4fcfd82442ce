"""A shared crawl's records out of Redis into one output, each exactly once.

Every process of a Redis crawl commits its pages' records to the crawl's record
stream (``scraper.redisfrontier``); the exporter reads that stream in order and
writes it to ``-o PATH`` in its format (``scraper.output``), whichever process
fetched the pages. A file output (JSON Lines, CSV, JSON) keeps
``PATH.redis-offset`` beside it: the crawl, the id of the last stream entry
written, and the size of the output after it, replaced (write, then rename)
after a batch at most every ``SAVE_EVERY`` seconds and when the exporter closes.
An exporter that is killed anywhere and started again cuts the output back to
that size (dropping what was written after the offset was saved, and a JSON
array's closing bracket) and reads on after that id, so no record is lost or
written twice. A SQLite output keeps the id in the database
instead, in the transaction of the batch's rows (``_scraper_redis``).

A stream entry holds one record (field ``r``) or a page's records, one line each
(field ``p``), as the JSON Lines encoder wrote them, and both are read. JSON Lines
gets that text as stored, never decoded and re-encoded (the same bytes ``scraper
run -o`` writes); the other formats decode it. The stream keeps no page URL, so
SQLite's ``_url`` is empty for an exported record, and ``_fetched_at`` is the time
its page was committed (the entry id's). The exporter ends when the crawl is
finished and the stream is drained (or, with ``until_now``, once it has written
what the stream holds). Records stay in Redis until ``scraper reset``; exporting
again from the start only takes a new path (or removing the offset file and the
output).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scraper.errors import OutputError, ScraperError
from scraper.models import Record
from scraper.output import OutputOptions, output_format
from scraper.output.jsonl import JsonLinesWriter
from scraper.output.sqlite import SqliteOutput, stream_time
from scraper.rediscrawl import Entry
from scraper.spec import SpiderSpec

log = logging.getLogger("scraper")

OFFSET_SUFFIX = ".redis-offset"
BATCH = 1000
"""Stream entries read (and written in one go) at a time."""
WAIT = 0.25
"""Seconds a read blocks on an empty stream before the exporter asks whether the crawl ended."""
GATHER = 0.05
"""Seconds the exporter lets records gather after a read that was not full."""
SAVE_EVERY = 1.0
"""Seconds between two saves of a file output's offset (a save is a file written and
renamed): a restart after a kill writes again what came after the last."""


class RecordStream(Protocol):
    """What the exporter needs of a ``RedisCrawl``: the record stream and the crawl's end."""

    async def read_entries(self, after: str, count: int, block_seconds: float) -> list[Entry]: ...

    async def finished(self) -> bool: ...


@dataclass(frozen=True)
class ExportOffset:
    """Where an export stands: the last stream id written and the output's size after it."""

    crawl: str
    after: str = "0"
    size: int = 0

    @classmethod
    def load(cls, path: Path) -> ExportOffset | None:
        """The offset saved at ``path``, or None when there is none."""
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["crawl"]), str(data["after"]), int(data["size"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise ScraperError(
                f"{path} cannot be read: remove it (and the output) to export from the start."
            ) from None

    def save(self, path: Path) -> None:
        """Replace the offset at ``path`` in one rename, so a kill leaves the old or the new."""
        data = {"crawl": self.crawl, "after": self.after, "size": self.size}
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(data) + "\n", encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}.") from None


class RecordExporter:
    """Writes the records of ``crawl`` from ``stream`` to ``output`` (None: stdout), in
    the format ``options`` choose (see ``scraper.output.open_output``).

    A file output keeps its offset beside it (``PATH.redis-offset``), a SQLite output
    in its database, unless ``keep_offset`` is False (``--workers``, whose crawl dies
    with its run): then, as for stdout, every record is written from the start of the
    stream.
    """

    def __init__(
        self,
        stream: RecordStream,
        crawl: str,
        output: str | Path | None,
        spider: SpiderSpec,
        *,
        options: OutputOptions | None = None,
        keep_offset: bool = True,
    ) -> None:
        options = options or OutputOptions()
        self.stream = stream
        self.crawl = crawl
        self.keep_offset = keep_offset
        self.written = 0
        """Records written by this exporter (not counting a run it continues)."""
        path = None if output is None or str(output) == "-" else Path(output)
        in_table = output_format(output, options.format) == "sqlite"
        self.offset_path = (
            path.with_name(path.name + OFFSET_SUFFIX)
            if path is not None and keep_offset and not in_table
            else None
        )
        self.after = "0"
        self._saved_at = 0.0  # time.monotonic() of the last save of the offset file
        self._unsaved: tuple[str, int] | None = None  # the stream id and size to save
        offset = ExportOffset.load(self.offset_path) if self.offset_path else None
        if offset is not None:
            if offset.crawl != crawl:
                raise ScraperError(
                    f"{path} holds the records of crawl {offset.crawl!r}, not {crawl!r}: "
                    "choose another -o PATH, or give --crawl the crawl it holds."
                )
            assert path is not None
            _cut_back(path, offset.size, self.offset_path)
            self.after = offset.after
        self.writer = options.open(path, spider, append=offset is not None)
        if isinstance(self.writer, SqliteOutput) and keep_offset:
            self.after = self.writer.redis_after(crawl)
        if offset is None and self.offset_path is not None:
            self._save(self.after, self.writer.size)  # fresh: an old offset beside it would lie

    async def run(self, *, stop: asyncio.Event | None = None, until_now: bool = False) -> int:
        """Write records until the crawl has finished and the stream is drained.

        With ``until_now``, or once ``stop`` is set, write what the stream holds
        and return without waiting for the crawl. Returns the records written.
        """
        drained = False  # the last read found nothing new
        while True:
            ending = until_now or (stop is not None and stop.is_set())
            if not ending and drained:  # while records come, the crawl is not over
                ending = await self.stream.finished()
            # Once ending, every record of the crawl is in the stream: read what is there.
            read = await (
                self.stream.read_entries(self.after, BATCH, 0) if ending else self._read_until(stop)
            )
            if read is None:
                continue  # stopped while waiting: drain
            entries = read
            drained = not entries
            if entries:
                self._write(entries)
                if len(entries) < BATCH and not ending:
                    # Let a few pages' records gather: fewer, larger reads and writes.
                    await asyncio.sleep(GATHER)
            elif ending:
                return self.written

    async def _read_until(self, stop: asyncio.Event | None) -> list[Entry] | None:
        """The next entries, waiting up to ``WAIT`` for them; ``None`` as soon as ``stop``
        is set (the crawl this process worked on has ended: no need to wait more)."""
        reading = asyncio.ensure_future(self.stream.read_entries(self.after, BATCH, WAIT))
        if stop is None:
            return await reading
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if reading.done():
            return reading.result()
        # The blocked read's connection is dropped; the same entries are read again after.
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        return None

    def close(self) -> None:
        """Save the offset of what was written, and close the output."""
        try:
            if self._unsaved is not None:
                self._save(*self._unsaved)
        finally:
            self.writer.close()

    def _write(self, entries: list[Entry]) -> None:
        # No await between writing the records and saving the offset: a task cancelled
        # here (a stop signal) never leaves records the offset does not cover.
        after = entries[-1][0]
        records = sum(count for _, _, count in entries)
        writer = self.writer
        if isinstance(writer, JsonLinesWriter):
            writer.write_encoded(b"".join(text for _, text, _ in entries), records)
        elif isinstance(writer, SqliteOutput):
            pages = [(_decoded(text), None, stream_time(name)) for name, text, _ in entries]
            writer.write_pages(pages, redis=(self.crawl, after) if self.keep_offset else None)
        else:
            writer.write([r for _, text, _ in entries for r in _decoded(text)])
        self.written += records
        self.after = after
        if self.offset_path is not None:
            self._unsaved = (after, writer.size)
            if time.monotonic() - self._saved_at >= SAVE_EVERY:
                self._save(after, writer.size)

    def _save(self, after: str, size: int) -> None:
        """Save the offset: the output holds the records up to ``after``, in ``size`` bytes."""
        assert self.offset_path is not None
        ExportOffset(self.crawl, after, size).save(self.offset_path)
        self._saved_at, self._unsaved = time.monotonic(), None


def _decoded(lines: bytes) -> list[Record]:
    """The records of JSON Lines text as the stream holds it."""
    return [json.loads(line) for line in lines.splitlines() if line]


def _cut_back(path: Path, size: int, offset_path: Path | None) -> None:
    """Cut ``path`` back to ``size`` bytes: the lines after it were never counted as written."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        actual = 0
    if actual < size:
        raise ScraperError(
            f"{path} is shorter than {offset_path} says ({actual} bytes, not {size}): "
            "it was changed since. Remove both to export from the start."
        )
    if actual > size:
        try:
            os.truncate(path, size)
        except OSError as exc:
            raise OutputError(f"cannot write the output {path}: {exc.strerror}.") from None
