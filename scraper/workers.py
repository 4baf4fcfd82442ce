"""``scraper run --workers N``: N processes share one crawl, one output file.

Each worker is ``scraper run`` itself, given a share (``--shard I/N``: every
N-th start URL from the I-th on) and the same output, opened for appending:
every page's records go out in one ``write()`` of whole lines to an
``O_APPEND`` file, so the workers' lines never mix. Links a worker finds are
followed by that worker, deduplicated within it: suited to spiders whose pages
are start URLs (templates) or hang below them, like list -> detail, where two
lists of different workers seldom share a detail page. The parent waits,
passes Ctrl-C, SIGTERM and SIGHUP on, adds up the workers' stats and prints them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from scraper.errors import OutputError
from scraper.stats import CrawlStats


def run_workers(count: int, argv: Sequence[str], output: Path) -> tuple[CrawlStats, list[int]]:
    """Run ``scraper run`` ``count`` times with ``argv`` and a share each; their stats, codes."""
    try:
        output.write_bytes(b"")  # the workers append to it
    except OSError as exc:
        raise OutputError(f"cannot write the output {output}: {exc.strerror}.") from None
    with tempfile.TemporaryDirectory(prefix="scraper-workers-") as folder:
        stats_files = [Path(folder) / f"{index}.json" for index in range(count)]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scraper",
                    "run",
                    *argv,
                    "--shard",
                    f"{index}/{count}",
                    "--stats-to",
                    str(stats_files[index]),
                ]
            )
            for index in range(count)
        ]
        previous = {
            signum: signal.signal(signum, lambda signum, frame: _forward(workers, signum))
            for signum in (signal.SIGTERM, signal.SIGHUP)
            if signal.getsignal(signum) is not signal.SIG_IGN  # under nohup, SIGHUP stays so
        }
        try:
            codes = _wait(workers)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        total = CrawlStats()
        for path in stats_files:
            if path.exists():
                total.merge(CrawlStats.from_json(path.read_text(encoding="utf-8")))
    return total, codes


def _wait(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    while True:
        try:
            return [worker.wait() for worker in workers]
        except KeyboardInterrupt:
            # A terminal's Ctrl-C reaches the workers too; this covers a SIGINT sent to us alone.
            _forward(workers, signal.SIGINT)


def _forward(workers: list[subprocess.Popen[bytes]], signum: int) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signum)
