"""Links, limits and callback output that cannot end, freeze or corrupt a crawl.

Each test crawls a real FixtureSite on 127.0.0.1, as ``scraper run`` does, and checks
what a user sees: the records written, the counts by reason, the exit status and the
warning. The cases: links that cannot be parsed into a URL, ``only``/``skip`` filters
that backtrack on every link, ``max_pages`` over ten million start URLs, a callback
yielding what JSON cannot store, and a resumed state naming a page kind that is gone.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from scraper.callbacks import Callback
from scraper.cli import main
from scraper.models import Page, Request
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats
from tests.server import FixtureSite
from tests.test_crawl import crawl as crawl_site
from tests.test_crawl import make_spider, read_records

BAD_LINKS = ("http://[oops/", "http://a\uff03b.example/", "http://127.0.0.1:99999/p", "//[::1")


def crawl(
    spider: SpiderSpec,
    tmp_path: Path,
    *,
    callbacks: Mapping[str, Callback] | None = None,
) -> tuple[CrawlStats, list[dict[str, Any]], float]:
    """Run ``spider`` to the end; its stats, the records written and the seconds taken."""
    started = time.monotonic()
    stats, records = crawl_site(spider, tmp_path, callbacks=callbacks)
    return stats, records, time.monotonic() - started


def item_pages(site: FixtureSite, count: int) -> list[dict[str, Any]]:
    """Serve /item/0 .. /item/COUNT-1, one record each; return the records."""
    for n in range(count):
        site.add(f"/item/{n}", f"<h1>Item {n}</h1>")
    return [{"title": f"Item {n}"} for n in range(count)]


# -- links that cannot be parsed into a URL ----------------------------------------------------


def test_bad_links_are_skipped_and_the_page_keeps_its_records(
    site: FixtureSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    links = "".join(f'<a href="{href}">x</a>' for href in (*BAD_LINKS, "/item/0", "/item/1"))
    site.add("/home", f"<h1>Home</h1>{links}")
    expected = [{"title": "Home"}, *item_pages(site, 2)]
    (tmp_path / "spiders.yaml").write_text(
        textwrap.dedent(
            f"""
            spiders:
              test:
                start: {site.url("/home")}
                pattern: '<h1>(?P<title>[^<]+)</h1>'
                follow: {{pattern: 'href="([^"]+)"', to: main}}
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    assert main(["run", "test", "-o", "out.jsonl"]) == 0

    err = capsys.readouterr().err
    assert sorted(read_records(tmp_path / "out.jsonl"), key=str) == sorted(expected, key=str)
    assert "pages failed:    0\n" in err
    assert f"links skipped:   {len(BAD_LINKS)} (bad url: {len(BAD_LINKS)})" in err


def test_a_bad_base_href_leaves_links_relative_to_the_page(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/dir/home", '<base href="http://[oops/"><a href="item">x</a>')
    site.add("/dir/item", "<h1>Item</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/dir/home'
            pattern: '<h1>(?P<title>[^<]+)</h1>'
            follow: {pattern: 'href="([^"]+)"', to: main}
        """,
    )
    stats, records, _ = crawl(spider, tmp_path)
    assert records == [{"title": "Item"}]
    assert stats.failed == {}


def bad_requests(page: Page) -> Iterator[dict[str, Any] | Request]:
    """A callback that links to every bad URL, one unstorable carry, and one good page."""
    yield {"url": page.url}
    if page.url.endswith("/home"):
        yield from (Request(href) for href in BAD_LINKS)
        yield Request("/item/0", carry={"when": object()})
        yield Request("/item/1", carry={"n": 1})


def test_a_callbacks_bad_requests_are_skipped_links(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/home", "<h1>Home</h1>")
    item_pages(site, 2)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/home'
            callback: 'spiders.test:bad_requests'
        """,
    )
    stats, records, _ = crawl(spider, tmp_path, callbacks={"main": bad_requests})
    assert sorted(records, key=str) == sorted(
        [{"url": site.url("/home")}, {"n": 1, "url": site.url("/item/1")}], key=str
    )
    assert stats.failed == {}
    assert stats.skipped == {"bad url": len(BAD_LINKS), "link not JSON": 1}
    assert site.count("/item/0") == 0


# -- only/skip filters: one budget per page ----------------------------------------------------


def test_filters_that_backtrack_on_every_link_cost_one_budget_per_page(
    site: FixtureSite, tmp_path: Path
) -> None:
    # Each link makes '(x+x+)+y' backtrack for ever. Given extract_timeout per link, the
    # 40 links held the crawl (and the event loop) for 40 x 0.5 s.
    links = "".join(f'<a href="/{n}{"x" * 3000}">x</a>' for n in range(40))
    site.add("/home", f"<h1>Home</h1><a href='/item/0'>0</a>{links}")
    item_pages(site, 1)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/home'
            extract_timeout: 0.5
            skip: ['(x+x+)+y']
            pattern: '<h1>(?P<title>[^<]+)</h1>'
            follow: {pattern: 'href=.(/[^"'']+)', to: main}
        """,
    )
    stats, records, elapsed = crawl(spider, tmp_path)
    assert elapsed < 3.0
    assert sorted(records, key=str) == [{"title": "Home"}, {"title": "Item 0"}]
    assert stats.skipped == {"filter timeout": 40}
    assert stats.failed == {}


# -- max_pages over many start URLs ------------------------------------------------------------


def test_max_pages_stops_drawing_start_urls(site: FixtureSite, tmp_path: Path) -> None:
    expected = item_pages(site, 5)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/item/{n}'
            vars: {n: {range: [0, 10000000]}}
            max_pages: 5
            concurrency: 1
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    stats, records, elapsed = crawl(spider, tmp_path)
    assert elapsed < 3.0  # drawing the ten million took 48 s
    assert records == expected
    assert stats.skipped == {"max_pages": 10_000_000 - 5}


# -- what a callback yields --------------------------------------------------------------------


def circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


UNSTORABLE: list[tuple[dict[Any, Any], str]] = [
    ({("a", "b"): 1}, "record not JSON (tuple key)"),
    ({1: "one"}, "record not JSON (int key)"),
    ({"tags": {"a", "b"}}, "tags: not JSON (set)"),
    ({"raw": b"\x00"}, "raw: not JSON (bytes)"),
    ({"score": float("nan")}, "score: not finite"),
    ({"score": [1.0, float("inf")]}, "score: not finite"),
    ({"thing": object()}, "thing: not JSON (object)"),
    ({"text": "broken \ud800 half"}, "text: not JSON (lone surrogate)"),
    ({"tree": circular()}, "tree: not JSON (circular)"),
    ({"deep": {("k",): 1}}, "deep: not JSON (tuple key)"),
]


def unstorable(page: Page) -> Iterator[dict[Any, Any]]:
    """Yield one good record per page, and every unstorable one on page 3."""
    yield {"url": page.url, "tags": ["a", "b"], "nested": {"n": (1, 2)}}
    if page.url.endswith("/3"):
        yield from (record for record, _ in UNSTORABLE)


def test_records_json_cannot_store_are_dropped_and_the_rest_written(
    site: FixtureSite, tmp_path: Path
) -> None:
    item_pages(site, 6)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/item/{n}'
            vars: {n: {range: [0, 6]}}
            callback: 'spiders.test:unstorable'
        """,
    )
    stats, records, _ = crawl(spider, tmp_path, callbacks={"main": unstorable})
    assert sorted(records, key=str) == [
        {"url": site.url(f"/item/{n}"), "tags": ["a", "b"], "nested": {"n": [1, 2]}}
        for n in range(6)
    ]
    reasons = [reason for _, reason in UNSTORABLE]
    assert stats.dropped == {reason: reasons.count(reason) for reason in reasons}
    assert stats.failed == {}
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").count("\n") == 6


# -- a resumed state naming a page kind the spider no longer has -------------------------------


def test_a_page_kind_gone_since_the_state_was_written_is_a_named_failure(
    site: FixtureSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # The first run leaves two 'detail' pages failed in the state (the site answered 404);
    # then 'detail' is renamed 'info', and the user resumes.
    site.add("/home", '<h1>Home</h1><a href="/d/1">1</a><a href="/d/2">2</a>')
    spiders = """
        spiders:
          test:
            start: SITE/home
            pages:
              main:
                pattern: '<h1>(?P<title>[^<]+)</h1>'
                follow: {pattern: 'href="([^"]+)"', to: KIND}
              KIND:
                pattern: '<h2>(?P<title>[^<]+)</h2>'
        """
    spider_file = tmp_path / "spiders.yaml"
    spider_file.write_text(
        textwrap.dedent(spiders).replace("SITE", site.base).replace("KIND", "detail")
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", "test", "-o", "out.jsonl", "--resume"]) == 1
    assert "pages failed:    2 (http 404: 2)" in capsys.readouterr().err

    spider_file.write_text(
        textwrap.dedent(spiders).replace("SITE", site.base).replace("KIND", "info")
    )
    assert main(["run", "test", "-o", "out.jsonl", "--resume"]) == 1

    err = capsys.readouterr().err
    assert read_records(tmp_path / "out.jsonl") == [{"title": "Home"}]
    assert "pages failed:    2 (unknown page kind: 2)" in err
    assert (
        "scraper: WARNING: out.jsonl.state holds 2 requests for page kind 'detail', which "
        "spider 'test' no longer has; they are counted as failed. Restore page kind 'detail' "
        "in the spider, or remove out.jsonl.state to start over.\n"
    ) in err
    assert site.count("/d/1") == site.count("/d/2") == 1
