"""The frontier: canonical URLs (what dedup counts as the same page), links that cannot be
parsed, the pending queue (bounded in memory, order kept), resuming and max_pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from scraper.frontier import PENDING_IN_MEMORY, SPILL_BATCH, Frontier, PendingQueue, canonical_url
from scraper.models import Request
from scraper.spec import parse_spiders
from scraper.state import CrawlState
from scraper.stats import CrawlStats


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://a.com/p?b=2&a=1", "https://a.com/p?a=1&b=2"),
        ("https://a.com/p#top", "https://a.com/p"),
        ("HTTPS://A.COM/p", "https://a.com/p"),
        ("http://a.com:80/p", "http://a.com/p"),
        ("https://a.com:443/p", "https://a.com/p"),
        ("https://a.com", "https://a.com/"),
        ("https://a.com/top250?start=25&filter=", "https://a.com/top250?filter=&start=25"),
    ],
)
def test_the_same_page_written_two_ways(first: str, second: str) -> None:
    assert canonical_url(first) == canonical_url(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://a.com/P", "https://a.com/p"),  # paths are case-sensitive
        ("https://a.com/p?a=1", "https://a.com/p?a=2"),
        ("https://a.com/p?a", "https://a.com/p"),
        ("http://a.com/p", "https://a.com/p"),
        ("http://a.com:8080/p", "http://a.com/p"),
    ],
)
def test_different_pages_stay_different(first: str, second: str) -> None:
    assert canonical_url(first) != canonical_url(second)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://a.com/p/1.html", "https://a.com/p/1.html"),  # already canonical: as it is
        ("http://127.0.0.1:8080/board/4", "http://127.0.0.1:8080/board/4"),
        ("http://a.com:80/p", "http://a.com/p"),
        ("https://a.com:443/", "https://a.com/"),
        ("https://A.com/p", "https://a.com/p"),
        ("Https://a.com/p", "https://a.com/p"),
        ("https://a.com", "https://a.com/"),
        ("https://a.com/p?b=1&a=", "https://a.com/p?a=&b=1"),
        ("https://a.com/p#x", "https://a.com/p"),
        ("https://a.com/a b\t", "https://a.com/a b"),
        ("https://user@a.com/p", "https://user@a.com/p"),
    ],
)
def test_canonical_form(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical
    assert canonical_url(canonical) == canonical


def test_a_url_that_cannot_be_parsed_is_compared_as_written() -> None:
    assert canonical_url("http://[oops/") == "http://[oops/"
    assert Request("http://[oops/").host == ""
    assert Request("http://A.com:8080/p").host == "a.com:8080"


# -- the pending queue: bounded memory, order kept --------------------------------------------

SPIDER = """
spiders:
  s:
    start: http://a.example/
    max_depth: 3
    pattern: x
"""


START = Request("http://a.example/", "main")


def frontier(text: str = SPIDER, state: CrawlState | None = None) -> Frontier:
    return Frontier(parse_spiders(text, "test.yaml").get("s"), CrawlStats(), state)


def test_links_that_cannot_be_parsed_are_skipped_not_raised() -> None:
    queue = frontier()
    for url in ("http://[oops/", "http://a\uff03b.example/", "http://a.example/ok"):
        queue.follow(Request(url, depth=1))
    assert queue.stats.skipped == {"bad url": 2}
    assert not queue.allows("http://[oops/")
    assert queue.next() == Request("http://a.example/ok", depth=1)


def test_200000_links_come_out_once_in_order_with_a_bounded_memory() -> None:
    queue = frontier()
    links = [Request(f"http://a.example/p/{n}", depth=1, carry={"n": n}) for n in range(200_000)]
    peak = 0
    for link in links:
        queue.follow(link)
        peak = max(peak, queue.in_memory)
    assert len(queue) == 200_000
    assert peak <= PENDING_IN_MEMORY + SPILL_BATCH
    out = []
    while (request := queue.next()) is not None:
        out.append(request)
        peak = max(peak, queue.in_memory)
    assert peak <= PENDING_IN_MEMORY + SPILL_BATCH
    assert out == [*links, START]  # links found on pages come before the next start URL


def test_links_followed_while_others_are_taken_keep_their_order() -> None:
    # A crawl takes a page, then follows its links: the queue is read and written in turn.
    queue = frontier()
    queue.follow(Request("http://a.example/0", depth=1))
    expected, out, n = [Request("http://a.example/0", depth=1)], [], 1
    while (request := queue.next()) is not None:
        out.append(request)
        for _ in range(3 if n < 40_000 else 0):
            link = Request(f"http://a.example/{n}", depth=1)
            queue.follow(link)
            expected.append(link)
            n += 1
        assert queue.in_memory <= PENDING_IN_MEMORY + SPILL_BATCH
    assert out == [*expected, START]
    assert len(out) == len({r.url for r in out}) == 40_001


def test_the_queue_spills_to_disk_and_reads_back_in_batches() -> None:
    queue = PendingQueue(limit=3, batch=2)
    requests = [Request(f"http://a.example/{n}", carry={"when": (n, "x")}) for n in range(9)]
    for request in requests[:6]:
        queue.append(request)
    assert (len(queue), queue.in_memory) == (6, 4)  # 3 in memory, 2 on disk, 1 to make a batch
    taken = [queue.popleft() for _ in range(4)]
    for request in requests[6:]:
        queue.append(request)
    taken += [queue.popleft() for _ in range(len(queue))]
    assert taken == requests
    with pytest.raises(IndexError):
        queue.popleft()
    queue.close()


def test_a_resumed_state_is_streamed_not_loaded(tmp_path: Path) -> None:
    state = CrawlState(tmp_path / "s.state", "s")
    requests = [Request(f"http://a.example/r/{n}", None, 1, {"n": n}) for n in range(30_000)]
    for request in requests:
        state.add(canonical_url(request.url), request)
    state.add("http://a.example/gone", Request("http://a.example/gone", "gone", 1))
    state.commit(0)
    try:
        queue = frontier(state=state)
        assert queue.in_memory <= PENDING_IN_MEMORY + SPILL_BATCH
        out = []
        while (request := queue.next()) is not None:
            out.append(request)
    finally:
        state.close()
    assert out == [*requests, START]
    assert queue.stats.failed == {"unknown page kind": 1}


def test_no_start_url_is_drawn_once_max_pages_is_reached() -> None:
    queue = frontier(
        """
spiders:
  s:
    start: 'http://a.example/{n}'
    vars: {n: {range: [0, 100000000]}}
    max_pages: 3
    pattern: x
"""
    )
    drawn = [queue.next() for _ in range(4)]
    assert [r.url if r else None for r in drawn] == [
        "http://a.example/0",
        "http://a.example/1",
        "http://a.example/2",
        None,
    ]
    assert queue.stats.skipped == {"max_pages": 100_000_000 - 3}
    assert queue.next() is None
    assert queue.stats.skipped == {"max_pages": 100_000_000 - 3}


TWO_KINDS = """
spiders:
  s:
    start: ['http://a.example/', {url: 'http://a.example/', page: other}]
    pages:
      main: {pattern: x}
      other: {pattern: y}
"""


def test_a_url_is_admitted_once_per_page_kind_and_again_is_already_seen() -> None:
    queue = frontier(TWO_KINDS)
    for page in ("main", "other", "main", None, "other"):
        queue.follow(Request("http://a.example/x?b=2&a=1", page, depth=1))
    queue.follow(Request("http://a.example/x?a=1&b=2#top", "other", depth=1))
    out = []
    while (request := queue.next()) is not None:
        out.append((request.url, request.page))
    assert out == [
        ("http://a.example/x?b=2&a=1", "main"),
        ("http://a.example/x?b=2&a=1", "other"),
        ("http://a.example/", "main"),
        ("http://a.example/", "other"),
    ]
    assert queue.stats.skipped == {"already seen": 4}  # None is the first kind, main


def test_a_resumed_state_keeps_each_url_s_page_kinds_and_its_start_urls_are_not_counted(
    tmp_path: Path,
) -> None:
    state = CrawlState(tmp_path / "s.state", "s")
    try:
        state.add("http://a.example/", Request("http://a.example/", None))  # format 1: main
        state.add("http://a.example/x", Request("http://a.example/x", "other", 1))
        state.commit(0)
        state.finish("http://a.example/", None)
        state.commit(0)
        queue = frontier(TWO_KINDS, state)
        queue.follow(Request("http://a.example/", "main", 1))
        queue.follow(Request("http://a.example/x", "other", 1))
        queue.follow(Request("http://a.example/x", "main", 1))
        out = []
        while (request := queue.next()) is not None:
            out.append((request.url, request.page))
    finally:
        state.close()
    assert out == [
        ("http://a.example/x", "other"),  # pending in the state
        ("http://a.example/x", "main"),
        ("http://a.example/", "other"),
    ]
    assert queue.stats.skipped == {"already seen": 2}  # the start URL is not counted again
