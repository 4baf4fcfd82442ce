"""Page + page spec -> records and follow requests: the regex policy of scraper/extract.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from textwrap import dedent, indent
from typing import Any

import pytest

from scraper.extract import Extraction, ExtractTimeout, extract
from scraper.models import Page, Record, Request
from scraper.spec import SpiderSpec, parse_spiders

FILMS_URL = "https://example.com/films/"


def make_page(
    html: str,
    url: str = FILMS_URL,
    carry: Mapping[str, Any] | None = None,
    depth: int = 0,
) -> Page:
    """A fetched page as extraction sees it, built without any HTTP."""
    return Page(
        url=url,
        status=200,
        raw_headers=((b"Content-Type", b"text/html; charset=utf-8"),),
        content=html.encode("utf-8"),
        text=html,
        encoding="utf-8",
        request=Request(url, None, depth, dict(carry or {})),
    )


def make_spider(body: str) -> SpiderSpec:
    """The spider 'films' whose keys (below its start URL) are the YAML ``body``."""
    text = f"spiders:\n  films:\n    start: {FILMS_URL}\n" + indent(dedent(body), "    ")
    return parse_spiders(text, "test.yaml").get("films")


def run(
    body: str,
    html: str,
    url: str = FILMS_URL,
    carry: Mapping[str, Any] | None = None,
    callback: Callable[[Page], Any] | None = None,
) -> Extraction:
    """Extract ``html`` with the first page kind of the spider described by ``body``."""
    spider = make_spider(body)
    page = make_page(html, url, carry)
    return extract(page, spider.pages[spider.first_page], spider, callback)


FILM_LIST = """\
<ul>
  <li><a href="/subject/1292052/">The Shawshank Redemption</a> <em>9.7</em></li>
  <li><a href="/subject/1291546/">Farewell My Concubine</a> <em>9.6</em></li>
</ul>
"""


# -- named groups, positional groups, the whole match --------------------------------------------


def test_named_groups_become_fields_one_record_per_match() -> None:
    result = run(
        r"""
        pattern: '<a href="(?P<link>[^"]+)">(?P<title>[^<]+)</a> <em>(?P<score>[\d.]+)</em>'
        """,
        FILM_LIST,
    )
    assert result.records == [
        {"link": "/subject/1292052/", "title": "The Shawshank Redemption", "score": "9.7"},
        {"link": "/subject/1291546/", "title": "Farewell My Concubine", "score": "9.6"},
    ]
    assert result.requests == []
    assert result.dropped == {}


def test_unnamed_groups_are_only_grouping_when_named_groups_exist() -> None:
    result = run(
        r"""
        pattern: '<a href="[^"]+">(?P<title>[^<]+)</a>( <em>([\d.]+)</em>)'
        """,
        FILM_LIST,
    )
    assert result.records == [
        {"title": "The Shawshank Redemption"},
        {"title": "Farewell My Concubine"},
    ]


def test_positional_groups_are_named_by_fields_in_order() -> None:
    result = run(
        r"""
        pattern: '<a href="([^"]+)">([^<]+)</a> <em>([\d.]+)</em>'
        fields: [link, title, score]
        """,
        FILM_LIST,
    )
    assert result.records == [
        {"link": "/subject/1292052/", "title": "The Shawshank Redemption", "score": "9.7"},
        {"link": "/subject/1291546/", "title": "Farewell My Concubine", "score": "9.6"},
    ]


def test_a_pattern_without_groups_gives_the_whole_match_as_field_match() -> None:
    result = run(r"pattern: '\d\.\d'", FILM_LIST)
    assert result.records == [{"match": "9.7"}, {"match": "9.6"}]


def test_a_pattern_without_groups_can_name_its_one_field() -> None:
    result = run(
        r"""
        pattern: '\d\.\d'
        fields: [score]
        """,
        FILM_LIST,
    )
    assert result.records == [{"score": "9.7"}, {"score": "9.6"}]


def test_a_group_that_did_not_take_part_in_the_match_gives_none() -> None:
    result = run(
        r"""
        pattern: '<li>(?P<title>[^<]+?)(?: \((?P<year>\d{4})\))?</li>'
        """,
        "<li>Spirited Away (2001)</li><li>Untitled</li>",
    )
    assert result.records == [
        {"title": "Spirited Away", "year": "2001"},
        {"title": "Untitled", "year": None},
    ]


def test_values_are_stripped_of_surrounding_whitespace() -> None:
    result = run(
        "pattern: '<td>(?P<title>[^<]*)</td>'",
        "<td>\n   Léon   \n</td>",
    )
    assert result.records == [{"title": "Léon"}]


def test_fields_starting_with_underscore_are_not_written() -> None:
    result = run(
        r"""
        pattern: '<a href="(?P<_link>[^"]+)">(?P<title>[^<]+)</a>'
        """,
        FILM_LIST,
    )
    assert result.records == [
        {"title": "The Shawshank Redemption"},
        {"title": "Farewell My Concubine"},
    ]


# -- format: fields built from groups -------------------------------------------------------------

MAOYAN_SCORE = r"""
pattern: '<p class="name">(?P<title>[^<]+)</p>(?:<p class="score"><i class="integer">(?P<_int>\d+)\.</i><i class="fraction">(?P<_frac>\d+)</i></p>)?'
format:
  score: '{_int}.{_frac}'
clean:
  score: float
"""  # noqa: E501


def test_format_joins_groups_maoyan_score_read_as_a_float() -> None:
    html = (
        '<p class="name">霸王别姬</p>'
        '<p class="score"><i class="integer">9.</i><i class="fraction">5</i></p>'
    )
    assert run(MAOYAN_SCORE, html).records == [{"title": "霸王别姬", "score": 9.5}]


def test_a_format_whose_groups_all_missed_gives_none() -> None:
    html = '<p class="name">Not yet rated</p>'
    assert run(MAOYAN_SCORE, html).records == [{"title": "Not yet rated", "score": None}]


# -- constants, url_field and carried fields ------------------------------------------------------


def test_constants_and_url_field_are_added_to_every_record() -> None:
    result = run(
        r"""
        pattern: '<em>(?P<score>[\d.]+)</em>'
        constants:
          source: douban
          top: 250
        url_field: page_url
        """,
        FILM_LIST,
        url="https://example.com/films/?start=25",
    )
    assert result.records == [
        {"score": "9.7", "source": "douban", "top": 250, "page_url": FILMS_URL + "?start=25"},
        {"score": "9.6", "source": "douban", "top": 250, "page_url": FILMS_URL + "?start=25"},
    ]


def test_fields_carried_by_the_request_are_merged_into_each_record() -> None:
    result = run(
        r"""
        pattern: '<em>(?P<score>[\d.]+)</em>'
        """,
        FILM_LIST,
        carry={"category": "Drama"},
    )
    assert result.records == [
        {"category": "Drama", "score": "9.7"},
        {"category": "Drama", "score": "9.6"},
    ]


# -- follow rules ---------------------------------------------------------------------------------

FOLLOW_PAGES = """
pages:
  list:
    follow:
      - {pattern: '%s', to: detail}
  detail:
    pattern: '<h1>(?P<name>[^<]*)</h1>'
"""


def follow(pattern: str, html: str, url: str = FILMS_URL, **kwargs: Any) -> list[Request]:
    """The requests that one follow rule with ``pattern`` makes from ``html``."""
    return run(FOLLOW_PAGES % pattern, html, url, **kwargs).requests


def test_follow_takes_the_url_group_and_carries_the_other_named_groups() -> None:
    requests = follow(
        r'<a href="(?P<url>[^"]+)">(?P<title>[^<]+)</a> <em>(?P<score>[\d.]+)</em>',
        FILM_LIST,
        carry={"list": "top250"},
    )
    assert requests == [
        Request(
            "https://example.com/subject/1292052/",
            "detail",
            1,
            {"list": "top250", "title": "The Shawshank Redemption", "score": "9.7"},
        ),
        Request(
            "https://example.com/subject/1291546/",
            "detail",
            1,
            {"list": "top250", "title": "Farewell My Concubine", "score": "9.6"},
        ),
    ]


def test_follow_takes_the_only_group_when_it_is_not_named() -> None:
    requests = follow(r'<a href="([^"]+)">', FILM_LIST)
    assert [(r.url, r.page, r.depth, dict(r.carry)) for r in requests] == [
        ("https://example.com/subject/1292052/", "detail", 1, {}),
        ("https://example.com/subject/1291546/", "detail", 1, {}),
    ]


def test_follow_takes_the_whole_match_without_groups() -> None:
    requests = follow(r"/subject/\d+/", FILM_LIST)
    assert [r.url for r in requests] == [
        "https://example.com/subject/1292052/",
        "https://example.com/subject/1291546/",
    ]


def test_follow_links_are_made_absolute_against_the_page() -> None:
    html = dedent("""\
        <a class="next" href="?start=25&amp;filter=">next</a>
        <a class="next" href="../top250?start=50">later</a>
        <a class="next" href="https://movie.douban.com/top250?start=75">abs</a>
        <a class="next" href="//movie.douban.com/top250?start=100">scheme-relative</a>
        <a class="next" href="/top250?start=125#comments">fragment dropped</a>
        <a class="next" href="">empty, skipped</a>
    """)
    requests = follow(r'<a class="next" href="([^"]*)">', html, url="https://e.com/a/top250")
    assert [r.url for r in requests] == [
        "https://e.com/a/top250?start=25&filter=",
        "https://e.com/top250?start=50",
        "https://movie.douban.com/top250?start=75",
        "https://movie.douban.com/top250?start=100",
        "https://e.com/top250?start=125",
    ]


def test_follow_clean_runs_on_carried_groups_and_can_drop_the_link() -> None:
    result = run(
        r"""
        pages:
          list:
            follow:
              - pattern: '<a href="(?P<url>[^"]+)">[^<]+</a> <em>(?P<score>[^<]*)</em>'
                to: detail
                clean:
                  score: float
          detail:
            pattern: '<h1>(?P<name>[^<]*)</h1>'
        """,
        FILM_LIST.replace("9.6", "n/a"),
    )
    assert result.requests == [
        Request("https://example.com/subject/1292052/", "detail", 1, {"score": 9.7})
    ]
    assert result.dropped == {"link score: not float": 1}


def test_follow_links_resolve_against_base_href() -> None:
    html = '<head><base href="https://cdn.example.net/m/"></head><a href="detail/7.html">x</a>'
    requests = follow(r'<a href="([^"]+)">', html)
    assert [r.url for r in requests] == ["https://cdn.example.net/m/detail/7.html"]


# -- callbacks ------------------------------------------------------------------------------------


def test_a_callback_gets_the_pattern_records_and_yields_records_and_requests() -> None:
    seen: list[tuple[Record, ...]] = []

    def parse(page: Page) -> Iterator[Record | Request]:
        seen.append(page.records)
        for record in page.records:
            yield {"title": record["title"].upper(), "score": float(record["score"])}
        yield Request("?start=25#top")

    result = run(
        r"""
        pattern: '<a href="[^"]+">(?P<title>[^<]+)</a> <em>(?P<score>[\d.]+)</em>'
        callback: spiders.films:parse
        constants: {source: douban}
        """,
        FILM_LIST,
        callback=parse,
    )
    assert seen == [
        (
            {"title": "The Shawshank Redemption", "score": "9.7"},
            {"title": "Farewell My Concubine", "score": "9.6"},
        )
    ]
    assert result.records == [
        {"title": "THE SHAWSHANK REDEMPTION", "score": 9.7, "source": "douban"},
        {"title": "FAREWELL MY CONCUBINE", "score": 9.6, "source": "douban"},
    ]
    # relative, fragment dropped, to this page's kind, one level deeper
    assert result.requests == [Request("https://example.com/films/?start=25", "main", 1)]


def test_a_callback_without_a_pattern_gets_no_records() -> None:
    def parse(page: Page) -> Iterator[Record]:
        yield {"records": len(page.records), "length": len(page.text)}

    result = run("callback: spiders.films:parse", "<p>hello</p>", callback=parse)
    assert result.records == [{"records": 0, "length": 12}]


def test_a_callback_yielding_something_else_is_a_type_error() -> None:
    def parse(page: Page) -> Iterator[Any]:
        yield "The Shawshank Redemption"

    with pytest.raises(TypeError) as caught:
        run("callback: spiders.films:parse", FILM_LIST, callback=parse)
    assert str(caught.value) == (
        "callback spiders.films:parse yielded str; yield dicts (records) or scraper.Request objects"
    )


# -- extract_timeout ------------------------------------------------------------------------------


def test_a_catastrophic_pattern_raises_extract_timeout_instead_of_stalling() -> None:
    started = time.monotonic()
    with pytest.raises(ExtractTimeout):
        run(
            """
            pattern: '(x+x+)+y'
            fields: [xs]
            extract_timeout: 0.2
            """,
            "x" * 5000,
        )
    assert time.monotonic() - started < 1.0


def test_field_names_that_are_not_identifiers_are_only_names() -> None:
    # Records are built by a function generated per page kind: names from the YAML
    # must stay data in it, never code.
    result = run(
        """
        pattern: '<b>(\\d+)</b><i>([^<]*)</i>'
        fields: ["a b", "x'); raise SystemExit('no"]
        format: {total: "{a b}/{x'); raise SystemExit('no}"}
        clean: {"a b": int}
        """,
        "<b>7</b><i>seven</i>",
    )
    assert result.records == [{"a b": 7, "x'); raise SystemExit('no": "seven", "total": "7/seven"}]


# -- links that go nowhere: skipped, never a failed page ------------------------------------------


def test_links_that_cannot_be_parsed_are_skipped_and_the_records_kept() -> None:
    html = FILM_LIST + "".join(
        f'<a href="{href}">bad</a> <em>0</em>'
        for href in ("http://[oops/", "http://a\uff03b.example/", "http://e.com:99999/", "/ok")
    )
    result = run(
        r"""
        pattern: '<em>(?P<score>[\d.]+)</em>'
        follow: {pattern: '<a href="([^"]+)">', to: main}
        """,
        html,
    )
    assert [r["score"] for r in result.records] == ["9.7", "9.6", "0", "0", "0", "0"]
    assert [r.url for r in result.requests] == [
        "https://example.com/subject/1292052/",
        "https://example.com/subject/1291546/",
        "https://example.com/ok",
    ]
    assert result.skipped == {"bad url": 3}


def test_a_base_href_that_is_no_url_leaves_links_relative_to_the_page() -> None:
    html = '<head><base href="http://[oops/"></head><a href="detail/7.html">x</a>'
    requests = follow(r'<a href="([^"]+)">', html)
    assert [r.url for r in requests] == ["https://example.com/films/detail/7.html"]


# -- only/skip: decided here, one budget for all the links of a page ----------------------------


LINKS = "".join(f'<a href="/{path}">x</a>' for path in ("keep/1", "drop/2", "other/3", "keep/4"))


def test_only_and_skip_decide_the_links_of_a_page() -> None:
    result = run(
        """
        only: ['/(keep|drop)/']
        skip: ['/drop/']
        follow: {pattern: '<a href="([^"]+)">', to: main}
        """,
        LINKS,
    )
    assert [r.url for r in result.requests] == [
        "https://example.com/keep/1",
        "https://example.com/keep/4",
    ]
    assert result.skipped == {"not in only": 1, "skip": 1}


HANGING_LINKS = "".join(f'<a href="/{n}{"x" * 3000}">x</a>' for n in range(30))
HANGING_SPIDER = """
    extract_timeout: 0.3
    skip: ['(x+x+)+y']
    follow: {pattern: '<a href="([^"]+)">', to: main}
"""


def test_filters_share_the_page_budget_and_undecided_links_are_skipped() -> None:
    started = time.monotonic()
    result = run(HANGING_SPIDER, '<a href="/fine">f</a>' + HANGING_LINKS)
    assert time.monotonic() - started < 1.0  # not 30 x 0.3 s
    assert [r.url for r in result.requests] == ["https://example.com/fine"]
    assert result.skipped == {"filter timeout": 30}


def test_a_shorter_try_that_runs_out_in_the_filters_asks_for_the_whole_budget() -> None:
    spider = make_spider(HANGING_SPIDER)
    page = make_page(HANGING_LINKS)
    with pytest.raises(ExtractTimeout):
        extract(page, spider.pages[spider.first_page], spider, timeout=0.05)


# -- what a callback yields: checked before it is written ---------------------------------------


def circular() -> dict[str, Any]:
    loop: dict[str, Any] = {"n": 1}
    loop["again"] = [loop]
    return loop


def nested(depth: int) -> list[Any]:
    return [nested(depth - 1)] if depth else []


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({("a", "b"): 1}, "record not JSON (tuple key)"),
        ({None: 1}, "record not JSON (NoneType key)"),
        ({"k\udc80": 1}, "record not JSON (lone surrogate in a key)"),
        ({"tags": {"a"}}, "tags: not JSON (set)"),
        ({"tags": frozenset()}, "tags: not JSON (frozenset)"),
        ({"raw": b"x"}, "raw: not JSON (bytes)"),
        ({"when": Request("http://e.com/")}, "when: not JSON (Request)"),
        ({"score": float("nan")}, "score: not finite"),
        ({"score": {"max": -float("inf")}}, "score: not finite"),
        ({"text": "\ud83d half an emoji"}, "text: not JSON (lone surrogate)"),
        ({"tree": circular()}, "tree: not JSON (circular)"),
        ({"deep": {"k": [{1: 2}]}}, "deep: not JSON (int key)"),
        ({"n": 10**5000}, "n: not JSON (int too long)"),
        ({"deep": nested(200)}, "deep: not JSON (nested over 100 deep)"),
    ],
)
def test_a_callback_record_json_cannot_store_is_dropped_with_its_reason(
    record: dict[Any, Any], reason: str
) -> None:
    def parse(page: Page) -> Iterator[Record]:
        yield {"fine": [1, (2, 3.5), {"a": None, "b": True}], "text": "中文 ok"}
        yield record

    result = run("callback: spiders.films:parse", FILM_LIST, callback=parse)
    assert result.records == [{"fine": [1, (2, 3.5), {"a": None, "b": True}], "text": "中文 ok"}]
    assert result.dropped == {reason: 1}


def test_a_callback_request_with_a_bad_url_or_carry_is_a_skipped_link() -> None:
    def parse(page: Page) -> Iterator[Request]:
        yield Request("http://[oops/")
        yield Request("/a", carry={"when": object()})
        yield Request("/b", carry={"tags": {"x"}})
        yield Request("/c", carry={"n": 1})

    result = run("callback: spiders.films:parse", FILM_LIST, callback=parse)
    assert result.requests == [Request("https://example.com/c", "main", 1, {"n": 1})]
    assert result.skipped == {"bad url": 1, "link not JSON": 2}
