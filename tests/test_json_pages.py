"""JSON page kinds: records from a JSON body or from JSON in a page, over real HTTP.

The pages are written here in the shapes real sites use: a search page carrying its
results as ``window.__SEARCH_RESULT__ = {...}`` in a script (with ``\\uXXXX``, ``\\/``
and ``\\"`` escapes), and a JSON API paged by a ``next`` field.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from scraper.cli import main
from scraper.extract import extract
from scraper.jsonpath import JsonPathError, compile_path
from scraper.spec import parse_spiders
from tests.server import FixtureSite
from tests.test_cli import write_spiders
from tests.test_crawl import crawl, make_spider
from tests.test_extract import make_page
from tests.test_page_fields import spec_error

JSON = "application/json"

# What a job site's search page looks like: the results are JSON in a script, with
# the escapes a JSON encoder writes (\u4e0a\u6d77 is 上海; \/ is /; \" is ").
SEARCH_PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Search</title></head>
<body><div id="app"></div>
<script type="text/javascript">
window.__SEARCH_RESULT__ = {"total":"2","engine_jds":[
{"jobid":"101","job_name":"Python \u5de5\u7a0b\u5e08",
 "company_name":" \u4e0a\u6d77\u661f\u6e2f\u79d1\u6280 ",
 "job_href":"\/jobs\/101.html","attribute_text":["\u4e0a\u6d77","3-4\u5e74"],
 "address":{"city":"\u4e0a\u6d77"},"intro":"He said \"ship it\"","salary":15000},
{"jobid":"102","job_name":"Data Engineer","company_name":"Nanxing Data",
 "job_href":"\/jobs\/102.html","attribute_text":[],"salary":null}
]};
</script>
</body></html>
"""

SEARCH_SPIDER = r"""
spiders:
  test:
    start: SITE/search
    pages:
      search:
        from: 'window\.__SEARCH_RESULT__\s*=\s*(\{.*?\})\s*;?\s*</script>'
        flags: [DOTALL]
        items: engine_jds
        fields:
          id: jobid
          job: job_name
          company: company_name
          city: address.city
          tags: attribute_text
          intro: intro
          salary: salary
          link: job_href
        clean:
          id: int
          link: urljoin
        follow:
          - {field: link, to: job, carry: [company]}
      job:
        pattern: '<h1>(?P<title>[^<]+)</h1>\s*<p class="desc">(?P<desc>[^<]+)</p>'
"""


def test_records_come_from_json_in_a_script_with_its_escapes_decoded(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/search", SEARCH_PAGE)
    site.add("/jobs/101.html", '<h1>Python 工程师</h1>\n<p class="desc">Build crawlers</p>')
    site.add("/jobs/102.html", '<h1>Data Engineer</h1>\n<p class="desc">Pipelines</p>')
    stats, records = crawl(make_spider(site, SEARCH_SPIDER), tmp_path)
    assert records[:2] == [
        {
            "id": 101,
            "job": "Python 工程师",
            "company": "上海星港科技",  # stripped, as a pattern's capture would be
            "city": "上海",
            "tags": ["上海", "3-4年"],
            "intro": 'He said "ship it"',
            "salary": 15000,
            "link": site.url("/jobs/101.html"),
        },
        {
            "id": 102,
            "job": "Data Engineer",
            "company": "Nanxing Data",
            "city": None,  # no address: null
            "tags": [],
            "intro": None,  # no such key: null
            "salary": None,
            "link": site.url("/jobs/102.html"),
        },
    ]
    # The links came from the field `link`, each carrying its record's company.
    assert sorted(records[2:], key=lambda r: r["title"]) == [
        {"company": "Nanxing Data", "title": "Data Engineer", "desc": "Pipelines"},
        {"company": "上海星港科技", "title": "Python 工程师", "desc": "Build crawlers"},
    ]
    assert (stats.pages, stats.failures) == (3, 0)


def api_page(site: FixtureSite, n: int, last: int = 3) -> None:
    items = [
        {"id": n * 10 + i, "name": f"item {n}.{i}", "price": {"amount": 1.5 * i, "cur": "EUR"}}
        for i in (1, 2)
    ]
    if n == 2:
        del items[1]["price"]  # an item without the key: its fields are null
    following = f"/api/items?page={n + 1}" if n < last else None
    body = json.dumps({"data": {"items": items}, "next": following})
    site.add(f"/api/items?page={n}", body, content_type=JSON)


API_SPIDER = """
spiders:
  test:
    start: SITE/api/items?page=1
    pages:
      api:
        items: data.items
        fields: {id: id, name: name, price: price.amount, currency: price.cur}
        follow:
          - {path: next, to: api}
"""


def test_a_json_api_is_followed_page_by_page_through_its_next_field(
    site: FixtureSite, tmp_path: Path
) -> None:
    for n in (1, 2, 3):
        api_page(site, n)
    stats, records = crawl(make_spider(site, API_SPIDER), tmp_path)
    assert sorted(records, key=lambda r: r["id"]) == [
        {"id": 11, "name": "item 1.1", "price": 1.5, "currency": "EUR"},
        {"id": 12, "name": "item 1.2", "price": 3.0, "currency": "EUR"},
        {"id": 21, "name": "item 2.1", "price": 1.5, "currency": "EUR"},
        {"id": 22, "name": "item 2.2", "price": None, "currency": None},
        {"id": 31, "name": "item 3.1", "price": 1.5, "currency": "EUR"},
        {"id": 32, "name": "item 3.2", "price": 1.5 * 2, "currency": "EUR"},
    ]
    assert [r.full_path for r in site.requests if r.path != "/robots.txt"] == [
        "/api/items?page=1",
        "/api/items?page=2",
        "/api/items?page=3",
    ]
    assert (stats.pages, stats.failures, dict(stats.skipped)) == (3, 0, {})


def test_a_body_that_is_not_json_fails_its_page_with_the_position(
    site: FixtureSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_page(site, 1, last=2)
    site.add(
        "/api/items?page=2",
        '{"data": {"items": [\n  {"id": 1},\n  {"id": 2,}\n]}}',
        content_type=JSON,
    )
    write_spiders(tmp_path, site, API_SPIDER)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "test", "-o", "out.jsonl"]) == 1
    err = capsys.readouterr().err
    url = site.url("/api/items?page=2")
    assert (
        f"scraper: WARNING: failed {url}: not JSON: Expecting property name enclosed in "
        "double quotes at line 3, column 12 (char 45)\n"
    ) in err
    assert "pages failed:    1 (not JSON: 1)" in err
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def run_json(body: str, text: str, url: str = "https://api.example/v1") -> list[dict[str, object]]:
    """The records of the spider's first page kind (keys ``body``) on a JSON ``text``."""
    spider = parse_spiders(
        f"spiders:\n  test:\n    start: {url}\n"
        + "".join(f"    {line}\n" for line in body.splitlines()),
        "test.yaml",
    ).get("test")
    return extract(make_page(text, url), spider.pages[spider.first_page], spider).records


def test_an_object_where_the_items_are_is_one_record() -> None:
    text = '{"film": {"title": "Spring", "year": 1994}}'
    assert run_json("items: film\nfields: {title: title, year: year}", text) == [
        {"title": "Spring", "year": 1994}
    ]


def test_without_items_the_top_level_is_the_list_of_records() -> None:
    text = '[{"a": 1}, {"a": 2}, {"b": 3}]'
    assert run_json("fields: {a: a}", text) == [{"a": 1}, {"a": 2}, {"a": None}]
    assert run_json("items:\nfields: {a: a}", text) == [{"a": 1}, {"a": 2}, {"a": None}]


def test_items_that_lead_nowhere_give_no_records() -> None:
    assert run_json("items: data.items\nfields: {a: a}", '{"data": null}') == []


def test_paths_index_project_and_quote_keys() -> None:
    text = json.dumps(
        [
            {
                "og:title": "Spring",
                "cast": [{"name": "Lin"}, {"name": "Su"}, {"role": "extra"}],
                "scores": [7, 8, 9],
            }
        ]
    )
    body = (
        "fields:\n"
        "  title: '\"og:title\"'\n"
        "  lead: cast[0].name\n"
        "  last: scores[-1]\n"
        "  names: cast[*].name\n"
        "  whole: '@'\n"
        "  past: scores[5]\n"
    )
    (record,) = run_json(body, text)
    assert record["title"] == "Spring"
    assert record["lead"] == "Lin"
    assert record["last"] == 9
    assert record["names"] == ["Lin", "Su"]  # as JMESPath, the null left out
    assert record["whole"] == json.loads(text)[0]
    assert record["past"] is None


def test_values_keep_their_json_types_and_processors_pass_non_text_through() -> None:
    text = '[{"n": 3, "f": 2.5, "ok": true, "s": "  7 ", "tags": ["a"], "o": {"k": 1}}]'
    body = (
        "fields: {n: n, f: f, ok: ok, s: s, tags: tags, o: o}\n"
        "clean: {n: [strip, int], f: float, ok: text, s: int, tags: unescape, o: strip}\n"
    )
    assert run_json(body, text) == [
        {"n": 3, "f": 2.5, "ok": True, "s": 7, "tags": ["a"], "o": {"k": 1}}
    ]


def test_format_builds_fields_from_json_values() -> None:
    text = '[{"id": 7, "slug": "spring"}, {"slug": "none"}]'
    body = "fields: {_id: id, slug: slug}\nformat: {link: '/films/{_id}-{slug}'}\n"
    assert run_json(body, text) == [
        {"slug": "spring", "link": "/films/7-spring"},
        {"slug": "none", "link": "/films/-none"},
    ]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "not JSON: Expecting value at line 1, column 1 (char 0)"),
        ('{"a": NaN}', "not JSON: NaN is not JSON"),
        ("[1, -Infinity]", "not JSON: -Infinity is not JSON"),
        ("[1e999]", "not JSON: 1e999 is too large for a number"),
        ("[" * 100_000 + "]" * 100_000, "not JSON: nested too deep to read"),
        ("<html>oops</html>", "not JSON: Expecting value at line 1, column 1 (char 0)"),
        ('{"a": 1}\n{"a": 2}', "not JSON: Extra data at line 2, column 1 (char 9)"),
    ],
    ids=["empty", "nan", "infinity", "too-large", "deep", "html", "two-documents"],
)
def test_what_is_not_json_fails_the_page_saying_why(text: str, detail: str) -> None:
    from scraper.jsonpage import PageFailed

    with pytest.raises(PageFailed) as failed:
        run_json("fields: {a: a}", text)
    assert (failed.value.reason, failed.value.detail) == ("not JSON", detail)


def test_from_positions_a_fault_in_the_page_not_in_the_capture() -> None:
    from scraper.jsonpage import PageFailed

    page = '<html>\n<script>var DATA = {"a": [1, 2,]};</script>\n</html>'
    with pytest.raises(PageFailed) as failed:
        run_json(r"from: 'DATA = (\{.*?\});'" + "\nfields: {a: a}", page)
    assert failed.value.detail == (
        "not JSON: Expecting value at line 2, column 32 (char 38), in what from: captured"
    )


def test_from_that_does_not_match_gives_no_records_and_each_match_is_a_document() -> None:
    assert run_json(r"from: 'DATA = (\{.*?\});'" + "\nfields: {a: a}", "<p>nothing</p>") == []
    page = (
        '<script type="application/ld+json">{"@type": "Movie", "name": "Spring"}</script>'
        '<script type="application/ld+json">{"@type": "Person", "name": "Lin"}</script>'
    )
    body = (
        r"""from: '<script type="application/ld\+json">(?P<json>.*?)</script>'"""
        "\nfields: {kind: '\"@type\"', name: name}"
    )
    assert run_json(body, page) == [
        {"kind": "Movie", "name": "Spring"},
        {"kind": "Person", "name": "Lin"},
    ]


def test_path_follow_takes_every_link_of_a_list_and_skips_what_is_not_a_link() -> None:
    spider = parse_spiders(
        "spiders:\n  test:\n    start: https://api.example/v1/\n"
        "    fields: {a: a}\n    items: rows\n"
        "    follow: [{path: 'links[*]', to: main}]\n",
        "test.yaml",
    ).get("test")
    text = '{"rows": [], "links": ["a?x=1&copy=2", "/b", 3, "", null, "http://[oops/"]}'
    result = extract(make_page(text, "https://api.example/v1/"), spider.pages["main"], spider)
    # JSON links are taken as written: no HTML entity (&copy) is decoded in them.
    assert [r.url for r in result.requests] == [
        "https://api.example/v1/a?x=1&copy=2",
        "https://api.example/b",
    ]
    assert dict(result.skipped) == {"bad url": 2}


def test_a_large_json_page_is_parsed_in_a_thread_not_in_the_short_inline_try() -> None:
    from scraper.extract import ExtractTimeout
    from scraper.jsonpage import INLINE_JSON_CHARS

    spider = parse_spiders(
        "spiders:\n  test:\n    start: https://api.example/\n    fields: {a: a}\n", "t.yaml"
    ).get("test")
    text = json.dumps([{"a": i} for i in range(INLINE_JSON_CHARS // 8)])
    page = make_page(text, "https://api.example/")
    with pytest.raises(ExtractTimeout):
        extract(page, spider.pages["main"], spider, timeout=0.05)
    assert len(extract(page, spider.pages["main"], spider).records) == INLINE_JSON_CHARS // 8


def test_try_shows_a_json_page_kinds_records(
    site: FixtureSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site.add("/search", SEARCH_PAGE)
    write_spiders(tmp_path, site, SEARCH_SPIDER)
    monkeypatch.chdir(tmp_path)
    assert main(["try", "test", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 items (0 dropped) in ")
    assert '101  Python 工程师  上海星港科技  上海  ["上海", "3-4年"]' in out
    assert f"follow -> job: 2 links, e.g. {site.url('/jobs/101.html')}" in out


def test_try_on_a_page_that_is_not_json_exits_1_saying_where(
    site: FixtureSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site.add("/api/items?page=1", "<html>Service Unavailable</html>")
    write_spiders(tmp_path, site, API_SPIDER)
    monkeypatch.chdir(tmp_path)
    assert main(["try", "test"]) == 1
    assert capsys.readouterr().err == (
        f"scraper: error: {site.url('/api/items?page=1')}: not JSON: Expecting value at "
        "line 1, column 1 (char 0).\n"
    )


# -- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("", ()),
        ("@", ()),
        (".", ()),
        ("a", ("a",)),
        ("props.pageProps.items", ("props", "pageProps", "items")),
        (".props.items", ("props", "items")),  # jq's spelling
        ("a[0].b", ("a", 0, "b")),
        ("a[-1]", ("a", -1)),
        ("[2]", (2,)),
        ("a[*].b", ("a", ("*",), "b")),
        ("a[].b", ("a", ("*",), "b")),
        ('"og:title"', ("og:title",)),
        ('a."b.c"[0]', ("a", "b.c", 0)),
        ("城市.名称", ("城市", "名称")),
        ("job-name", ("job-name",)),
    ],
)
def test_paths_compile_to_steps(path: str, steps: tuple[object, ...]) -> None:
    assert compile_path(path).steps == steps


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a..b", "a key is missing after '.' at position 2"),
        ("a.", "a key is missing after '.' at position 2"),
        (
            "a[x]",
            "[x] is not an index: write [0], [-1] or [*] (a key goes after a '.') at position 1",
        ),
        ("a[1", "'[' is never closed with ']' at position 1"),
        ('"a', "a quoted key is never closed with '\"' at position 0"),
        (
            "a.0",
            "'0' is a number: write [0] for an element of a list, or \"0\" for a key at position 2",
        ),
        (
            "a b",
            "a space where '.' or '[' should be (write a key with it in double quotes) "
            "at position 1",
        ),
        ("a.@", "'@' stands only alone, for the whole value at position 2"),
    ],
)
def test_malformed_paths_say_what_and_where(path: str, message: str) -> None:
    with pytest.raises(JsonPathError) as error:
        compile_path(path)
    assert str(error.value) == message


# -- spider file errors ---------------------------------------------------------------------


def test_a_bad_path_is_reported_at_its_character() -> None:
    assert spec_error("fields: {city: 'address..city'}") == (
        "spiders.yaml:6:33: spider 'test', page 'main': fields: city: 'address..city' is not a "
        "valid path: a key is missing after '.'.\n"
        "    address..city\n"
        "            ^\n"
        "A path is keys joined by '.', with [N] for a list element, [*] for every element and "
        '"quoted keys" for keys with dots or spaces: props.pageProps.items[0].name.'
    )


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (
            "itmes: data\nfields: {a: a}",
            "spiders.yaml:6:9: unknown key 'itmes' in spider 'test', page 'main'; "
            "did you mean 'items'?",
        ),
        (
            "from: 'DATA = \\{.*?\\};'\nfields: {a: a}",
            "spiders.yaml:6:15: spider 'test', page 'main': from has no group; put the JSON in "
            "one group, e.g. '__DATA__\\s*=\\s*(\\{.*?\\});' (or name it (?P<json>...) among "
            "others).",
        ),
        (
            "from: '(a)(b)'\nfields: {a: a}",
            "spiders.yaml:6:15: spider 'test', page 'main': from has 2 groups; put the JSON in "
            "one group, e.g. '__DATA__\\s*=\\s*(\\{.*?\\});' (or name it (?P<json>...) among "
            "others).",
        ),
        (
            "pattern: '<b>(?P<a>.*?)</b>'\nitems: data",
            "spiders.yaml:7:9: spider 'test', page 'main' has both 'pattern:' and 'items:' (a "
            "JSON page kind's list of records); a page kind takes its records from a pattern "
            "or from JSON: remove one (with a pattern, 'fields:' is a list naming its groups).",
        ),
        (
            "pattern: '<b>(.*?)</b>'\nfields: {a: a}",
            "spiders.yaml:7:9: spider 'test', page 'main' has both 'pattern:' and 'fields:' as "
            "a mapping (JSON paths, for a JSON page kind); a page kind takes its records from "
            "a pattern or from JSON: remove one (with a pattern, 'fields:' is a list naming "
            "its groups).",
        ),
        (
            "items: data\nfields: [a, b]",
            "spiders.yaml:7:17: spider 'test', page 'main': fields of a JSON page kind map each "
            "field to a path in an item, e.g. {company: company_name, city: address.city}.",
        ),
        (
            "fields: {a: a}\nfollow: [{field: b, to: main}]",
            "spiders.yaml:7:26: spider 'test', page 'main': follow: field: 'b' is not a field "
            "written by this page kind (its fields: a).",
        ),
        (
            "fields: {link: l}\nfollow: [{field: lnk, to: main}]",
            "spiders.yaml:7:26: spider 'test', page 'main': follow: field: 'lnk' is not a field "
            "written by this page kind (its fields: link) (did you mean 'link'?).",
        ),
        (
            "fields: {a: a}\nfollow: [{path: next, pattern: x, to: main}]",
            "spiders.yaml:7:31: spider 'test', page 'main': follow: each rule takes its links "
            "from one of 'pattern:' (a regex on the page), 'path:' (a path in a JSON page) or "
            "'field:' (a field of each record).",
        ),
        (
            "fields: {a: a}\nfollow: [{path: next, to: main, carry: [a]}]",
            "spiders.yaml:7:41: spider 'test', page 'main': follow: 'carry:' goes with "
            "'field:' rules only.",
        ),
        (
            "fields: {a: a}\nfollow: [{path: next, to: mian}]",
            "spiders.yaml:7:35: spider 'test': there is no page kind 'mian' (pages: main) "
            "(did you mean 'main'?).",
        ),
        (
            "fields: {a: a}\nfollow: [{path: 'next[', to: main}]",
            "spiders.yaml:7:30: spider 'test', page 'main': follow: path: 'next[' is not a valid "
            "path: '[' is never closed with ']'.\n"
            "    next[\n"
            "        ^\n"
            "A path is keys joined by '.', with [N] for a list element, [*] for every element "
            'and "quoted keys" for keys with dots or spaces: props.pageProps.items[0].name.',
        ),
    ],
    ids=[
        "unknown-key",
        "from-without-group",
        "from-with-two-groups",
        "items-on-a-pattern-page",
        "fields-mapping-on-a-pattern-page",
        "fields-list-on-a-json-page",
        "follow-unknown-field",
        "follow-field-did-you-mean",
        "follow-two-sources",
        "carry-on-a-path-rule",
        "follow-path-unknown-page",
        "follow-bad-path",
    ],
)
def test_spider_file_errors(page: str, message: str) -> None:
    assert spec_error(page) == message


def test_inline_json_spider_loads_with_spider_constants(caplog: pytest.LogCaptureFixture) -> None:
    spider = parse_spiders(
        "spiders:\n  test:\n    start: https://a.example/\n    items: rows\n"
        "    fields: {a: a}\n    constants: {src: a}\n",
        "t.yaml",
    ).get("test")
    page = make_page('{"rows": [{"a": 1}]}', "https://a.example/")
    with caplog.at_level(logging.INFO, logger="scraper"):
        assert extract(page, spider.pages["main"], spider).records == [{"a": 1, "src": "a"}]


def test_a_lone_surrogate_escape_is_read_as_a_replacement_character() -> None:
    # JSON allows "\ud800" alone; no UTF-8 output can hold it, so the record keeps U+FFFD.
    assert run_json("fields: {a: a}", r'[{"a": "x\ud800y"}, {"a": "\ud83d\ude00"}]') == [
        {"a": "x\ufffdy"},
        {"a": "😀"},
    ]


def test_a_json_page_with_no_items_is_counted_as_no_match(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/api", json.dumps({"items": []}), content_type=JSON)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: SITE/api
            items: items
            fields: {name: name}
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert records == []
    assert dict(stats.empty_pages) == {"main": 1}
