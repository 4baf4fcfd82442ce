"""What every client extracts: the patterns, the record shapes, and the spider file for ours.

One pattern string serves all clients: ``scraper`` compiles it from the spider file
this module writes; the Scrapy spider and the aiohttp loop compile it with ``re`` and
build records with ``board_record``/``tiny_record``, which do by hand what the spider
file's ``format:`` and ``clean:`` do. Imported by the driver (``run.py``) and by the
clients, which run in the bench virtualenv; so: standard library only.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

Record = dict[str, Any]

BOARD_PATTERN = (
    r'<dd>\s*<i class="board-index[^"]*">(?P<index>\d+)</i>.*?<p class="name"><a[^>]*>'
    r'(?P<title>.*?)</a></p>\s*<p class="star">(?P<actor>.*?)</p>\s*'
    r'<p class="releasetime">(?P<time>.*?)</p>(?:(?:(?!</dd>).)*?<i class="integer">'
    r'(?P<_score_int>\d+)\.</i><i class="fraction">(?P<_score_frac>\d+)</i>)?'
)
NEXT_PATTERN = r'<a class="page_\d+" href="(?P<url>[^"]+)">下一页</a>'
TINY_PATTERN = r'<p class="path">(?P<path>[^<]+)</p>'
TINY_BODY = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>tiny</title></head>'
    '<body><p class="path">$uri</p></body></html>'
)
"""The scale scenario's page for any path (an nginx ``return``; ``$uri`` is the path)."""

BOARD_RE = re.compile(BOARD_PATTERN, re.DOTALL)
TINY_RE = re.compile(TINY_PATTERN)
_ACTOR_PREFIX = re.compile("^主演：")
_TIME_PREFIX = re.compile("^上映时间：")


def board_record(match: re.Match[str]) -> Record:
    """A board entry's record, cleaned as the spider file's ``clean:`` says."""
    whole, fraction = match["_score_int"], match["_score_frac"]
    return {
        "index": int(match["index"]),
        "title": html.unescape(match["title"].strip()),
        "actor": _ACTOR_PREFIX.sub("", match["actor"].strip()).strip(),
        "time": _TIME_PREFIX.sub("", match["time"].strip()),
        "score": float(f"{whole}.{fraction}") if whole is not None else None,
    }


def tiny_record(match: re.Match[str]) -> Record:
    """A tiny page's record: the path it was served for."""
    return {"path": match["path"]}


def board_url(base: str, page: int) -> str:
    """The URL of board page ``page`` (1-based) on the site served at ``base``."""
    return f"{base}/board/{page}.html"


def tiny_url(base: str, number: int) -> str:
    """The URL of tiny page ``number`` (any path gives a tiny page)."""
    return f"{base}/tiny/{number}"


_SETTINGS = """# Written by bench/run.py for one benchmark run.
defaults:
  concurrency: {concurrency}
  per_host: {concurrency}
  timeout: 30
  retries: 2
  robots: false   # as Scrapy is told (ROBOTSTXT_OBEY = False); the aiohttp loop never asks

spiders:
"""


def write_board_spiders(path: Path, base: str, pages: int, concurrency: int) -> None:
    """Write the spider file for the board site served at ``base``.

    Spiders: ``board`` (all pages from a ``{page}`` template, queued at start, like the
    Scrapy spider), ``board_follow`` (page 1, then each ``下一页`` link, so one page
    at a time) and ``board_aiohttp`` (``board`` on the aiohttp wire).
    """
    board_page = f"""    pattern: {_quote(BOARD_PATTERN)}
    flags: [DOTALL]
    format:
      score: '{{_score_int}}.{{_score_frac}}'
    clean:
      index: int
      title: unescape
      actor: [{{sub: ['^主演：', '']}}, strip]
      time: {{sub: ['^上映时间：', '']}}
      score: float
"""
    spiders = f"""  board:
    description: {pages} board pages, all queued at start from a template
    start: {_quote(f"{base}/board/{{page}}.html")}
    vars:
      page: {{range: [1, {pages + 1}]}}
{board_page}
  board_follow:
    description: board page 1, then each next-page link
    start: {_quote(board_url(base, 1))}
{board_page}    follow:
      - {{pattern: {_quote(NEXT_PATTERN)}, to: main}}
  board_aiohttp:
    description: the board spider on the aiohttp wire (the default is curl, issue 15)
    start: {_quote(f"{base}/board/{{page}}.html")}
    vars:
      page: {{range: [1, {pages + 1}]}}
    wire: aiohttp
{board_page}"""
    path.write_text(_SETTINGS.format(concurrency=concurrency) + spiders, encoding="utf-8")


def write_board_parts(path: Path, base: str, pages: int, concurrency: int, parts: int) -> None:
    """Write spiders ``board_part0`` ... ``board_part{parts - 1}``: the ``board`` spider's
    pages cut into ``parts`` ranges, one spider each (independent crawls of one site)."""
    write_board_spiders(path, base, pages, concurrency)
    text = path.read_text(encoding="utf-8")
    board = text[text.index("  board:\n") : text.index("  board_follow:\n")]
    blocks = []
    for part in range(parts):
        first, end = 1 + pages * part // parts, 1 + pages * (part + 1) // parts
        blocks.append(
            board.replace("  board:\n", f"  board_part{part}:\n", 1).replace(
                f"{{range: [1, {pages + 1}]}}", f"{{range: [{first}, {end}]}}", 1
            )
        )
    path.write_text(text[: text.index("  board:\n")] + "".join(blocks), encoding="utf-8")


def write_tiny_spider(path: Path, base: str, count: int, concurrency: int) -> None:
    """Write the spider file with ``tiny``: tiny pages ``0 .. count - 1`` from a template."""
    spiders = f"""  tiny:
    description: {count} tiny pages from a template
    start: {_quote(f"{base}/tiny/{{n}}")}
    vars:
      n: {{range: [0, {count}]}}
    pattern: {_quote(TINY_PATTERN)}
"""
    path.write_text(_SETTINGS.format(concurrency=concurrency) + spiders, encoding="utf-8")


def _quote(text: str) -> str:
    """``text`` as a single-quoted YAML scalar (backslashes stay as they are)."""
    return "'" + text.replace("'", "''") + "'"
