"""A shared crawl's records out of Redis into one JSON Lines file, each exactly once.

Every process of a Redis crawl commits its pages' records to the crawl's record
stream (``scraper.redisfrontier``); the exporter reads that stream in order and
writes it to ``-o PATH``, whichever process fetched the pages. Beside the output
it keeps ``PATH.redis-offset``: the crawl, the id of the last stream entry
written, and the size of the output after it, replaced (write, then rename)
after every batch. An exporter that is killed anywhere and started again cuts
the output back to that size (dropping a batch written after the offset was
saved) and reads on after that id, so no line is lost or written twice.

The records are written as the text the commit stored (the JSON Lines encoder's
output, the same bytes ``scraper run -o`` writes), never decoded and re-encoded: a
stream entry holds one record (field ``r``) or a page's records, one line each
(field ``p``), and both are read. The exporter ends when the crawl is finished and
the stream is drained (or, with ``until_now``, once it has written what the stream
holds). Records stay in Redis
until ``scraper reset``; exporting again from the start only takes a new path
(or removing the offset file and the output).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from scraper.errors import OutputError, ScraperError
from scraper.output.jsonl import JsonLinesWriter

log = logging.getLogger("scraper")
T = TypeVar("T")

OFFSET_SUFFIX = ".redis-offset"
BATCH = 1000
"""Stream entries read (and written in one go) at a time."""
WAIT = 0.5
"""Seconds a read blocks on an empty stream before the exporter asks whether the crawl ended."""
DRAIN_WAIT = 0.05
"""Seconds a read blocks once the crawl has ended: only what is already there is left."""


class RecordStream(Protocol):
    """What the exporter needs of a ``RedisFrontier``: its client, its keys, its retrying
    while Redis is away, and the crawl's end."""

    client: Any

    def key(self, name: str) -> str: ...

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T: ...

    async def finished(self) -> bool: ...


async def read_lines(
    stream: RecordStream, after: str, count: int, block_seconds: float
) -> tuple[str, bytes, int]:
    """Up to ``count`` stream entries after id ``after``, blocking up to ``block_seconds``
    while there are none: the last id read, their records as JSON Lines text (each line
    ending in a newline, as stored) and how many records that is."""
    block = max(1, int(block_seconds * 1000)) if block_seconds > 0 else None
    key = stream.key("records")
    reply: Any = await stream._retry(
        lambda: stream.client.xread({key: after}, count=count, block=block)
    )
    lines: list[bytes] = []
    records = 0
    for _stream, entries in reply or ():
        for entry_id, fields in entries:
            after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            text = fields.get(b"r")
            if text is not None:
                lines.append(text)
                records += 1
                continue
            page = fields.get(b"p")
            if page:  # a page's records, one line each
                lines.append(page)
                records += page.count(b"\n") + 1
    if lines:
        lines.append(b"")
    return after, b"\n".join(lines), records


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
    """Writes the records of ``crawl`` from ``stream`` to ``output`` (None: stdout).

    A file output keeps its offset beside it (``PATH.redis-offset``) unless
    ``keep_offset`` is False (``--workers``, whose crawl dies with its run):
    then, as for stdout, every record is written from the start of the stream.
    """

    def __init__(
        self,
        stream: RecordStream,
        crawl: str,
        output: str | Path | None,
        *,
        keep_offset: bool = True,
    ) -> None:
        self.stream = stream
        self.crawl = crawl
        self.written = 0
        """Records written by this exporter (not counting a run it continues)."""
        path = Path(output) if output is not None else None
        self.offset_path = (
            path.with_name(path.name + OFFSET_SUFFIX) if path is not None and keep_offset else None
        )
        self.after = "0"
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
        self.writer = JsonLinesWriter(path, append=offset is not None)
        if offset is None and self.offset_path is not None:
            self._save()  # the output is fresh: an old offset beside it would lie

    async def run(self, *, stop: asyncio.Event | None = None, until_now: bool = False) -> int:
        """Write records until the crawl has finished and the stream is drained.

        With ``until_now``, or once ``stop`` is set, write what the stream holds
        and return without waiting for the crawl. Returns the records written.
        """
        while True:
            ending = until_now or (stop is not None and stop.is_set())
            if not ending:
                ending = await self.stream.finished()
            after, lines, records = await read_lines(
                self.stream, self.after, BATCH, DRAIN_WAIT if ending else WAIT
            )
            if after != self.after:
                self._write(after, lines, records)
            elif ending:
                return self.written

    def close(self) -> None:
        """Close the output."""
        self.writer.close()

    def _write(self, after: str, lines: bytes, records: int) -> None:
        # No await between writing the lines and saving the offset: a task cancelled
        # here (a stop signal) never leaves lines the offset does not cover.
        self.writer.write_encoded(lines, records)
        self.written += records
        self.after = after
        if self.offset_path is not None:
            self._save()

    def _save(self) -> None:
        assert self.offset_path is not None
        ExportOffset(self.crawl, self.after, self.writer.size).save(self.offset_path)


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
