"""--resume: a crawl killed at random moments and resumed ends with every record exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server import FixtureSite

LISTS, DETAILS_PER_LIST = 6, 12


def serve_catalogue(site: FixtureSite) -> None:
    """6 list pages, each linking the next and 12 detail pages: 78 pages, 72 records."""
    for n in range(1, LISTS + 1):
        links = "".join(
            f'<li><a class="item" href="/item/{n}-{i}">item {n}-{i}</a> rank {i}</li>'
            for i in range(1, DETAILS_PER_LIST + 1)
        )
        next_link = f'<a class="next" href="/list/{n + 1}">next</a>' if n < LISTS else ""
        site.add(f"/list/{n}", f"<html><body><ul>{links}</ul>{next_link}</body></html>")
        for i in range(1, DETAILS_PER_LIST + 1):
            site.add(
                f"/item/{n}-{i}",
                f"<html><h1>Item {n}-{i}</h1><p class='price'>{n * 100 + i}.50</p></html>",
            )


SPIDER = """
spiders:
  catalogue:
    start: {base}/list/1
    concurrency: 4
    robots: false
    pages:
      list:
        follow:
          - {{pattern: '<a class="item" href="(?P<url>[^"]+)">[^<]*</a> rank (?P<rank>\\d+)',
              to: item, clean: {{rank: int}}}}
          - {{pattern: '<a class="next" href="(?P<url>[^"]+)"', to: list}}
      item:
        pattern: '<h1>(?P<name>[^<]+)</h1><p class=.price.>(?P<price>[\\d.]+)</p>'
        clean: {{price: float}}
"""


def scraper(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "catalogue", "-q", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_new_records(run: subprocess.Popen[bytes], out: Path, before: int) -> None:
    """Until ``run`` has written past ``before`` bytes of ``out`` (or has ended)."""
    deadline = time.monotonic() + 20
    while run.poll() is None and not (out.exists() and out.stat().st_size > before):
        assert time.monotonic() < deadline, "the run wrote nothing in 20 s"
        time.sleep(0.01)


def records(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        json.loads(line)  # every line parses
    return sorted(lines)


def test_killed_and_resumed_runs_give_every_record_exactly_once(
    site: FixtureSite, tmp_path: Path
) -> None:
    serve_catalogue(site)
    site.hold = 0.03  # about 0.6 s of crawling at concurrency 4
    (tmp_path / "spiders.yaml").write_text(SPIDER.format(base=site.base), encoding="utf-8")

    whole = scraper(tmp_path, "-o", "whole.jsonl")
    assert whole.wait(timeout=60) == 0, whole.stderr.read() if whole.stderr else ""
    expected = records(tmp_path / "whole.jsonl")
    assert len(expected) == LISTS * DETAILS_PER_LIST
    assert json.loads(expected[0]) == {"rank": 1, "name": "Item 1-1", "price": 101.5}

    chance = random.Random(20261126)
    kills = 0
    partial: list[int] = []
    for _ in range(4):
        out = tmp_path / "out.jsonl"
        before = out.stat().st_size if out.exists() else 0
        run = scraper(tmp_path, "-o", "out.jsonl", "--resume")
        wait_for_new_records(run, out, before)
        time.sleep(chance.uniform(0.0, 0.3))  # a random moment once this run is writing
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            kills += 1
        run.wait(timeout=30)
        partial.append(len(records(tmp_path / "out.jsonl")))  # whole lines only, after a kill
    assert kills >= 2, "the crawl finished before it could be killed; slow the site down"
    assert any(0 < n < len(expected) for n in partial), partial  # killed mid-crawl

    final = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert final.wait(timeout=60) == 0, final.stderr.read() if final.stderr else ""
    assert records(tmp_path / "out.jsonl") == expected


def test_resume_after_a_finished_crawl_fetches_nothing_again(
    site: FixtureSite, tmp_path: Path
) -> None:
    serve_catalogue(site)
    (tmp_path / "spiders.yaml").write_text(SPIDER.format(base=site.base), encoding="utf-8")
    first = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert first.wait(timeout=60) == 0
    fetched = len(site.requests)
    again = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert again.wait(timeout=60) == 0
    assert len(site.requests) == fetched
    assert len(records(tmp_path / "out.jsonl")) == LISTS * DETAILS_PER_LIST


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume"], "scraper: error: --resume needs an output file: add -o PATH.\n"),
        (["-o", "x.jsonl", "--state", "s"], "scraper: error: --state goes with --resume.\n"),
    ],
)
def test_resume_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9"), encoding="utf-8"
    )
    run = scraper(tmp_path, *args)
    assert run.wait(timeout=30) == 2
    assert run.stderr is not None
    assert run.stderr.read().decode() == message
