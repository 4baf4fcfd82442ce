"""scraper.learnjson: a JSON page kind proposed from one record's values.

The pages are written here in the shapes real sites use: ``window.__DATA__ = {...}``
with the escapes a JSON encoder writes (``\\u9738``, ``\\/``, ``\\"``), a Next.js
``__NEXT_DATA__`` script with the list deep inside, schema.org ``ld+json`` next to
it, a JSON API body, and a GBK page. Pages are fetched from a local server and
decoded as ``scraper run`` decodes them; every proposal is loaded as a spider and
run through ``scraper.extract``, as a crawl would.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import regex
import yaml

from scraper.extract import extract
from scraper.learnjson import json_path, learn_json, propose_json, string_pattern
from scraper.lint import backtracking_warnings
from scraper.models import Page
from scraper.spec import CrawlSettings, parse_spiders
from scraper.trial import load_page
from tests.server import FixtureSite
from tests.test_extract import make_page

# Three films; the second has no quote (an optional field), the cast is a list of
# objects, the title is \u-escaped, the link has \/ and the quote \" escapes.
DATA_PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Films</title>
<script>var analytics = {"id": "UA-1"};</script></head>
<body><div id="app"></div>
<script type="text/javascript">
  window.__DATA__ = {"total":3,"movies":[
    {"id":1,"title":"\u9738\u738b\u522b\u59ec","cast":[{"name":"\u5f20\u56fd\u8363"},
      {"name":"\u5f20\u4e30\u6bc5"},{"name":"\u5de9\u4fd0"}],"score":9.5,
      "url":"https:\/\/films.example\/1","quote":"\u98ce\u534e\u7edd\u4ee3 \"1993\""},
    {"id":2,"title":"Titanic","cast":[{"name":"Leonardo DiCaprio"}],"score":9.4,
      "url":"https:\/\/films.example\/2"},
    {"id":3,"title":"Up &amp; Away","cast":[],"score":8.9,"url":"https:\/\/films.example\/3",
      "quote":"fly"}
  ]};
  window.__CONFIG__ = {"locale": "zh-CN"};
</script>
</body></html>
"""

FIRST_FILM = {
    "title": "霸王别姬",
    "actor": "张国荣,张丰毅,巩俐",
    "score": "9.5",
    "link": "https://films.example/1",
    "quote": '风华绝代 "1993"',
}

NEXT_PAGE = """<html><head>
<script type="application/ld+json">{"@context":"https://schema.org","@type":"BreadcrumbList",
"itemListElement":[{"@type":"ListItem","position":1,"name":"Home"}]}</script>
<script type="application/ld+json">
{"@context":"https://schema.org","@type":"ItemList","itemListElement":[
 {"@type":"ListItem","position":1,"url":"https://shop.example/p/7","name":"Kettle"},
 {"@type":"ListItem","position":2,"url":"https://shop.example/p/8","name":"Teapot"}]}
</script></head><body>
<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"page":2,
"search":{"results":{"hits":[{"sku":"7","label":{"text":"Kettle"},"price":{"amount":"12.50"}},
{"sku":"8","label":{"text":"Teapot"},"price":{"amount":"30.00"}},
{"sku":"9","label":{"text":"Cup"},"price":{"amount":"4.00"}}]}}}}}</script>
</body></html>
"""

API_BODY = """{"data": {"count": 2, "items": [
  {"id": 11, "name": "Ada", "tags": ["math", "engines"], "city": null},
  {"id": 12, "name": "Grace", "tags": ["navy"], "city": "Arlington"}]},
 "next": "/api/people?page=2"}"""


def records_of(page: Page, kind: dict[str, Any]) -> list[dict[str, Any]]:
    """What the proposed page kind extracts from ``page``, loaded from YAML as a user pastes it."""
    text = yaml.safe_dump({"spiders": {"learnt": {"start": page.url, **kind}}}, allow_unicode=True)
    spider = parse_spiders(text).spiders["learnt"]
    return extract(page, spider.pages[spider.first_page], spider).records


def assert_safe(kind: dict[str, Any], text: str, examples: list[dict[str, str]]) -> None:
    """No backtracking warning, no example value in the pattern, fast on mutated pages."""
    if "from" not in kind:
        return
    pattern = kind["from"]
    assert backtracking_warnings(pattern, regex.DOTALL) == []
    for record in examples:
        for value in record.values():
            assert value not in pattern
    compiled = regex.compile(pattern)
    for mutated in (text.replace("</script>", ""), text.replace("}", "") * 20, text * 20):
        started = time.perf_counter()
        list(compiled.finditer(mutated))
        assert time.perf_counter() - started < 0.05


@pytest.fixture
def site() -> Any:
    with FixtureSite() as served:
        yield served


def test_a_script_assignment_with_escapes_gives_every_record(site: FixtureSite) -> None:
    site.add("/films", DATA_PAGE)
    page = load_page(site.url("/films"), CrawlSettings())
    kind = learn_json(page.text, [FIRST_FILM])
    assert kind == {
        "from": r"(?s)\bwindow\.__DATA__\s*=\s*(\{.*?\})\s*;",
        "items": "movies",
        "fields": {
            "title": "title",
            "actor": "cast[*].name",
            "score": "score",
            "link": "url",
            "quote": "quote",
        },
    }
    records = records_of(page, kind)
    assert [r["title"] for r in records] == ["霸王别姬", "Titanic", "Up &amp; Away"]
    assert records[0]["actor"] == ["张国荣", "张丰毅", "巩俐"]
    assert records[0]["quote"] == '风华绝代 "1993"'
    assert [r["quote"] for r in records[1:]] == [None, "fly"]  # optional: null where missing
    assert records[2]["score"] == 8.9
    assert_safe(kind, page.text, [FIRST_FILM])


def test_any_record_may_be_the_example_and_entities_are_read_as_a_person_reads_them() -> None:
    last = {"title": "Up & Away", "link": "https://films.example/3"}
    proposal = propose_json(DATA_PAGE, [last])
    assert proposal is not None
    assert proposal.kind["fields"] == {"title": "title", "link": "url"}
    assert len(proposal.records) == 3


def test_two_examples_must_both_be_records_of_the_proposal() -> None:
    both = [{"title": "Titanic", "score": "9.4"}, {"title": "Up & Away", "score": "8.9"}]
    kind = learn_json(DATA_PAGE, both)
    assert kind is not None and kind["items"] == "movies"
    # Values that are never one record's: no list holds them together.
    assert learn_json(DATA_PAGE, [{"title": "Titanic", "score": "9.5"}]) is None


def test_next_data_deep_list_is_chosen_over_ld_json_with_fewer_fields() -> None:
    examples = [{"name": "Kettle", "price": "12.50"}]
    kind = learn_json(NEXT_PAGE, examples)
    assert kind == {
        "from": r"""(?s)<script[^>]*\bid=["']__NEXT_DATA__["'][^>]*>\s*(\{.*?\})\s*</script>""",
        "items": "props.pageProps.search.results.hits",
        "fields": {"name": "label.text", "price": "price.amount"},
    }
    page = make_page(NEXT_PAGE)
    assert [r["name"] for r in records_of(page, kind)] == ["Kettle", "Teapot", "Cup"]
    assert_safe(kind, NEXT_PAGE, examples)


def test_ld_json_among_several_ld_json_scripts() -> None:
    examples = [{"link": "https://shop.example/p/8", "position": "2"}]
    kind = learn_json(NEXT_PAGE, examples)
    assert kind is not None
    assert kind["items"] == "itemListElement"
    assert kind["fields"] == {"link": "url", "position": "position"}
    # The breadcrumb's script is alike up to its @type: the blob's first keys tell them apart.
    assert kind["from"] == (
        r"""(?s)<script[^>]*\btype=["']application/ld\+json["'][^>]*>\s*"""
        r"""(\{"@context":"https://schema\.org","@type":"ItemList",.*?\})\s*</script>"""
    )
    records = records_of(make_page(NEXT_PAGE), kind)
    assert [r["link"] for r in records] == ["https://shop.example/p/7", "https://shop.example/p/8"]
    assert_safe(kind, NEXT_PAGE, examples)


def test_a_json_api_body_needs_no_from(site: FixtureSite) -> None:
    site.add("/api/people", API_BODY, content_type="application/json")
    page = load_page(site.url("/api/people"), CrawlSettings())
    kind = learn_json(page.text, [{"name": "Ada", "tags": "math, engines", "id": "11"}])
    assert kind == {"items": "data.items", "fields": {"name": "name", "tags": "tags", "id": "id"}}
    assert records_of(page, kind) == [
        {"name": "Ada", "tags": ["math", "engines"], "id": 11},
        {"name": "Grace", "tags": ["navy"], "id": 12},
    ]


def test_a_gbk_page_is_read_as_decoded(site: FixtureSite) -> None:
    html = (
        '<html><head><meta charset="gbk"></head><body><script>\n'
        'var list = [{"t":"霸王别姬","y":"1993"},{"t":"活着","y":"1994"}]\n'
        "render(list);\n</script></body></html>"
    )
    site.add("/gbk", html.encode("gbk"), content_type="text/html; charset=gbk")
    page = load_page(site.url("/gbk"), CrawlSettings())
    kind = learn_json(page.text, [{"title": "活着", "year": "1994"}])
    assert kind is not None
    assert kind["items"] == ""
    assert kind["from"] == r"(?s)\blist\s*=\s*(\[.*?\])[ \t]*\r?\n"
    assert records_of(page, kind) == [
        {"title": "霸王别姬", "year": "1993"},
        {"title": "活着", "year": "1994"},
    ]


def test_values_not_in_any_json_give_none() -> None:
    html = '<ul><li>霸王别姬</li><li>活着</li></ul><script>var x = {"a": 1};</script>'
    assert learn_json(html, [{"title": "霸王别姬"}]) is None
    assert learn_json(DATA_PAGE, []) is None
    # "1" is a whole value only: it is not found inside "101" or "UA-1".
    assert learn_json('{"items": [{"id": 101}, {"id": "UA-1"}]}', [{"id": "1"}]) is None


def test_paths_quote_keys_the_path_syntax_cannot_write_bare() -> None:
    assert json_path(("props", "og:title")) == "props.og:title"
    assert json_path(("a.b", 0, "x y", "7", "@type")) == '"a.b"[0]."x y"."7"."@type"'
    document = {"@graph": [{"schema:name": "A"}, {"schema:name": "B"}]}
    kind = learn_json(__import__("json").dumps(document), [{"name": "B"}])
    assert kind == {"items": '"@graph"', "fields": {"name": "schema:name"}}


def pattern_records(text: str, block: dict[str, Any]) -> list[dict[str, Any]]:
    return records_of(make_page(text), block)


def test_a_json_string_pattern_reads_the_records_the_page_kind_reads() -> None:
    examples = [{"title": "Up & Away", "score": "8.9", "quote": "fly"}]
    proposal = propose_json(DATA_PAGE, examples)
    assert proposal is not None
    block = string_pattern(DATA_PAGE, proposal)
    assert block is not None
    strings = ["json_string"]
    assert block["clean"] == {"title": strings, "score": ["float"], "quote": strings}
    assert '"title"\\s*:\\s*"(?P<title>' in block["pattern"]
    records = pattern_records(DATA_PAGE, block)
    assert records == proposal.records
    assert records[0]["title"] == "霸王别姬"  # \u9738... decoded by json_string
    assert records[0]["quote"] == '风华绝代 "1993"'
    assert records[1]["quote"] is None  # Titanic has none: the next film's is not taken
    assert_safe({"from": block["pattern"]}, DATA_PAGE, examples)


def test_a_json_string_pattern_whose_first_field_starts_the_item() -> None:
    proposal = propose_json(API_BODY, [{"name": "Ada", "id": "11"}])
    assert proposal is not None
    block = string_pattern(API_BODY, proposal)
    assert block is not None
    assert pattern_records(API_BODY, block) == [
        {"id": 11, "name": "Ada"},
        {"id": 12, "name": "Grace"},
    ]


def test_no_json_string_pattern_for_a_list_or_where_it_would_read_more() -> None:
    proposal = propose_json(DATA_PAGE, [FIRST_FILM])  # the cast is a list of objects
    assert proposal is not None and string_pattern(DATA_PAGE, proposal) is None
    # Another blob's items have the same keys: a pattern would read them too.
    text = (
        '<script>window.A = {"items": [{"id": 1, "t": "x"}, {"id": 2, "t": "y"}]};\n'
        'window.B = {"items": [{"id": 3, "t": "z"}]};</script>'
    )
    proposal = propose_json(text, [{"title": "x"}])
    assert proposal is not None and len(proposal.records) == 2
    assert string_pattern(text, proposal) is None
