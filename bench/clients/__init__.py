"""The clients ours is compared with, each run as its own process in the bench virtualenv.

``python -m clients.aiohttp_loop`` and ``python -m clients.scrapy_spider`` take the same
arguments (see ``parse_job``): which pages to fetch, how many at once, where to write
the records as JSON Lines.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from workload import BOARD_RE, TINY_RE, Record, board_record, board_url, tiny_record, tiny_url


@dataclass(frozen=True)
class Job:
    """What a client run does: fetch ``urls``, ``concurrency`` at once; records to ``output``."""

    urls: list[str]
    concurrency: int
    output: Path
    pattern: re.Pattern[str]
    record: Callable[[re.Match[str]], Record]

    def write_records(self, text: str, out: TextIO) -> None:
        """The records ``pattern`` finds in a page's ``text``, appended to ``out`` as JSON
        Lines (one write a page)."""
        lines = [
            json.dumps(self.record(m), ensure_ascii=False) for m in self.pattern.finditer(text)
        ]
        if lines:
            out.write("\n".join(lines) + "\n")


def parse_job(description: str) -> Job:
    """The ``Job`` given on the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--site", choices=("board", "tiny"), required=True)
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--pages", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if args.site == "board":
        urls = [board_url(args.base, n) for n in range(1, args.pages + 1)]
        return Job(urls, args.concurrency, args.output, BOARD_RE, board_record)
    urls = [tiny_url(args.base, n) for n in range(args.pages)]
    return Job(urls, args.concurrency, args.output, TINY_RE, tiny_record)
