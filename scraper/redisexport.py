"""A shared crawl's records out of Redis into one JSON Lines file, each exactly once.

Every process of a Redis crawl commits its pages' records to the crawl's record
stream (``scraper.redisfrontier``); the exporter reads that stream in order and
writes it to ``-o PATH``, whichever process fetched the pages. Beside the output
it keeps ``PATH.redis-offset``: the crawl, the id of the last stream entry
written, and the size of the output after it, replaced (write, then rename)
after every batch. An exporter that is killed anywhere and started again cuts
the output back to that size (dropping a batch written after the offset was
saved) and reads on after that id, so no line is lost or written twice.

The exporter ends when the crawl is finished and the stream is drained (or, with
``until_now``, once it has written what the stream holds). Records stay in Redis
until ``scraper reset``; exporting again from the start only takes a new path
(or removing the offset file and the output).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from scraper.errors import OutputError, ScraperError
from scraper.export import JsonLinesWriter

if TYPE_CHECKING:
    from scraper.models import Record

log = logging.getLogger("scraper")

OFFSET_SUFFIX = ".redis-offset"
BATCH = 1000
"""Stream entries read (and written in one go) at a time."""
WAIT = 0.5
"""Seconds a read blocks on an empty stream before the exporter asks whether the crawl ended."""
DRAIN_WAIT = 0.05
"""Seconds a read blocks once the crawl has ended: only what is already there is left."""


class RecordStream(Protocol):
    """What the exporter needs of a ``RedisFrontier``: the record stream and the crawl's end."""

    async def read_records(
        self, after: str, count: int, block_seconds: float
    ) -> list[tuple[str, Record]]: ...

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
            batch = await self.stream.read_records(
                self.after, BATCH, DRAIN_WAIT if ending else WAIT
            )
            if batch:
                self._write(batch)
            elif ending:
                return self.written

    def close(self) -> None:
        """Close the output."""
        self.writer.close()

    def _write(self, batch: list[tuple[str, Record]]) -> None:
        # No await between writing the lines and saving the offset: a task cancelled
        # here (a stop signal) never leaves lines the offset does not cover.
        rejected = self.writer.write(record for _, record in batch)
        if rejected:  # a record the crawl committed is JSON: this would be a fault of ours
            log.warning("not exporting %d records JSON cannot hold", sum(rejected.values()))
        self.written += len(batch) - sum(rejected.values())
        self.after = batch[-1][0]
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
