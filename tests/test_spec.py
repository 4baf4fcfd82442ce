"""spiders.yaml -> frozen, typed spider specs (scraper/spec.py), and the errors a user can make."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from textwrap import dedent, indent

import pytest
import regex

from scraper.errors import Location, ScraperError, SpecError, SpiderNotFound
from scraper.spec import (
    DEFAULT_USER_AGENT,
    CrawlSettings,
    PageSpec,
    SpiderFile,
    SpiderSpec,
    StartRequest,
    load_spiders,
    parse_spiders,
)

SPIDERS = r"""defaults:
  concurrency: 4
  timeout: 5
  headers:
    Accept-Language: zh-CN

spiders:
  maoyan:
    description: Maoyan TOP100
    start: https://maoyan.com/board/4?offset={offset}
    vars:
      offset: {range: [0, 30, 10]}
    pattern: '<p class="name"><a[^>]*>(?P<title>.*?)</a></p>'
    flags: [DOTALL, i]
    clean:
      title: [unescape, required]
    constants: {board: TOP100}
    url_field: page_url
    timeout: 2.5
    headers:
      User-Agent: Mozilla/5.0
      Cookie: uuid=1

  douban:
    start:
      - https://movie.douban.com/top250
      - {url: 'https://movie.douban.com/subject/1292052/', page: detail}
    pages:
      list:
        pattern: '<span class="title">([^<]*)</span>'
        fields: [title]
        follow:
          - {pattern: '<a href="(?P<url>[^"]+)"\s*>后页', to: list}
          - {pattern: '<a href="(https://movie\.douban\.com/subject/\d+/)"', to: detail}
      detail:
        pattern: '<h1>(?P<name>[^<]*)</h1>'
    concurrency: 2
"""


@pytest.fixture
def spider_file() -> SpiderFile:
    return parse_spiders(SPIDERS, "spiders.yaml")


def films(body: str) -> str:
    """A spider file with one spider, 'films', whose keys after ``start:`` are ``body``.

    ``body`` starts on line 4, indented by 4: its first key is in column 5.
    """
    return "spiders:\n  films:\n    start: https://example.com/films/\n" + indent(body, "    ")


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spiders(text, "spiders.yaml")
    return caught.value


# -- a valid file ---------------------------------------------------------------------------------


def test_spiders_load_in_file_order_as_frozen_typed_objects(spider_file: SpiderFile) -> None:
    assert spider_file.path == Path("spiders.yaml")
    assert list(spider_file.spiders) == ["maoyan", "douban"]
    maoyan = spider_file.get("maoyan")
    assert isinstance(maoyan, SpiderSpec)
    assert isinstance(maoyan.settings, CrawlSettings)
    assert isinstance(maoyan.pages["main"], PageSpec)
    assert maoyan.location == Location("spiders.yaml", 8, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        maoyan.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        maoyan.settings.concurrency = 100  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        maoyan.pages["main"].pattern = None  # type: ignore[misc]


def test_defaults_apply_to_every_spider_and_each_spider_overrides_them(
    spider_file: SpiderFile,
) -> None:
    assert spider_file.get("maoyan").settings == CrawlSettings(
        concurrency=4,
        timeout=2.5,
        headers={"User-Agent": "Mozilla/5.0", "Accept-Language": "zh-CN", "Cookie": "uuid=1"},
    )
    assert spider_file.get("douban").settings == CrawlSettings(
        concurrency=2,
        timeout=5.0,
        headers={"User-Agent": DEFAULT_USER_AGENT, "Accept-Language": "zh-CN"},
    )


def test_without_defaults_a_spider_gets_the_documented_settings() -> None:
    spider = parse_spiders(films("pattern: x\n")).get("films")
    assert spider.settings == CrawlSettings()
    assert spider.settings.concurrency == 16
    assert spider.settings.headers == {"User-Agent": DEFAULT_USER_AGENT}


def test_inline_page_keys_make_one_page_kind_called_main(spider_file: SpiderFile) -> None:
    maoyan = spider_file.get("maoyan")
    assert list(maoyan.pages) == ["main"]
    assert maoyan.first_page == "main"
    page = maoyan.pages["main"]
    assert page.pattern is not None
    assert page.pattern.pattern == '<p class="name"><a[^>]*>(?P<title>.*?)</a></p>'
    assert page.pattern.flags & (regex.DOTALL | regex.IGNORECASE) == (
        regex.DOTALL | regex.IGNORECASE
    )
    assert (page.fields, page.group_index) == (("title",), ("title",))
    assert list(page.clean) == ["title"]
    assert len(page.clean["title"]) == 2
    assert (maoyan.description, maoyan.constants, maoyan.url_field) == (
        "Maoyan TOP100",
        {"board": "TOP100"},
        "page_url",
    )


def test_pages_keep_file_order_and_start_urls_go_to_the_first(spider_file: SpiderFile) -> None:
    douban = spider_file.get("douban")
    assert list(douban.pages) == ["list", "detail"]
    assert douban.first_page == "list"
    listing = douban.pages["list"]
    assert (listing.fields, listing.group_index) == (("title",), (1,))
    assert [(rule.to, rule.url_group, rule.carry) for rule in listing.follow] == [
        ("list", "url", ()),
        ("detail", 1, ()),
    ]


def test_a_pattern_without_groups_has_the_field_match() -> None:
    page = parse_spiders(films(r"pattern: '\d+\.\d'" + "\n")).get("films").pages["main"]
    assert (page.fields, page.group_index) == (("match",), (0,))


# -- start URLs and vars --------------------------------------------------------------------------


def test_start_as_a_list_of_urls_and_url_page_entries(spider_file: SpiderFile) -> None:
    assert tuple(spider_file.get("douban").start) == (
        StartRequest("https://movie.douban.com/top250"),
        StartRequest("https://movie.douban.com/subject/1292052/", "detail"),
    )


def test_a_range_var_expands_one_start_url_into_many(spider_file: SpiderFile) -> None:
    assert tuple(spider_file.get("maoyan").start) == (
        StartRequest("https://maoyan.com/board/4?offset=0"),
        StartRequest("https://maoyan.com/board/4?offset=10"),
        StartRequest("https://maoyan.com/board/4?offset=20"),
    )


def start_urls(start: str, variables: str) -> list[str]:
    text = f"spiders:\n  films:\n    start: {start}\n    vars:\n" + indent(variables, "      ")
    spider = parse_spiders(text + "    pattern: x\n").get("films")
    return [request.url for request in spider.start]


@pytest.mark.parametrize(
    ("bounds", "pages"),
    [
        ("[3]", [0, 1, 2]),
        ("[1, 4]", [1, 2, 3]),
        ("[0, 75, 25]", [0, 25, 50]),
        ("[3, 0, -1]", [3, 2, 1]),
    ],
)
def test_range_is_stop_or_start_stop_or_start_stop_step(bounds: str, pages: list[int]) -> None:
    urls = start_urls("https://example.com/?p={p}", f"p: {{range: {bounds}}}\n")
    assert urls == [f"https://example.com/?p={p}" for p in pages]


def test_a_list_var_gives_its_values_in_order() -> None:
    urls = start_urls("https://example.com/tag/{tag}", "tag: [剧情, comedy]\n")
    assert urls == ["https://example.com/tag/剧情", "https://example.com/tag/comedy"]


def test_two_vars_give_every_combination_the_first_in_the_url_varying_slowest() -> None:
    urls = start_urls(
        "https://example.com/{city}/list?page={page}",
        "page: {range: [1, 3]}\ncity: [bj, sh]\n",
    )
    assert urls == [
        "https://example.com/bj/list?page=1",
        "https://example.com/bj/list?page=2",
        "https://example.com/sh/list?page=1",
        "https://example.com/sh/list?page=2",
    ]


# -- errors: each says where (file:line:col) and what to change -----------------------------------

ERRORS = [
    pytest.param(
        "spiders:\n  films:\n\tstart: https://example.com/\n",
        "spiders.yaml:3:1: this is not valid YAML: a tab character; YAML indents with spaces "
        "only. Replace the tab with spaces.",
        id="yaml-tab",
    ),
    pytest.param(
        "spiders:\n  films:\n    start: https://example.com/\n   pattern: x\n",
        "spiders.yaml:4:4: this is not valid YAML: the indentation is off here: entries of one "
        "mapping must start in the same column, and a value that holds ': ' needs quotes.",
        id="yaml-indentation",
    ),
    pytest.param(
        "",
        "spiders.yaml: the file is empty; it needs a 'spiders:' mapping "
        "(see README.md, 'Spider format').",
        id="empty",
    ),
    pytest.param(
        "# spiders to come\n",
        "spiders.yaml: the file is empty; it needs a 'spiders:' mapping "
        "(see README.md, 'Spider format').",
        id="only-comments",
    ),
    pytest.param(
        "defaults:\n  concurrency: 2\n",
        "spiders.yaml:1:1: the file has no 'spiders:' mapping; add 'spiders:' with one entry "
        "per spider (see README.md, 'Spider format').",
        id="no-spiders",
    ),
    pytest.param(
        "spider:\n  films: {}\n",
        "spiders.yaml:1:1: unknown key 'spider' in the file; did you mean 'spiders'?",
        id="top-key-close-match",
    ),
    pytest.param(
        films("pattern: x\n") + "output: films.jsonl\n",
        "spiders.yaml:5:1: unknown key 'output' in the file; allowed keys are: defaults, spiders.",
        id="top-key-no-match",
    ),
    pytest.param(
        films("pattren: x\n"),
        "spiders.yaml:4:5: unknown key 'pattren' in spider 'films'; did you mean 'pattern'?",
        id="spider-key-close-match",
    ),
    pytest.param(
        "spiders:\n  films:\n    start:\n      - {url: 'https://example.com/', kind: detail}\n"
        "    pattern: x\n",
        "spiders.yaml:4:39: unknown key 'kind' in spider 'films': start entry; "
        "allowed keys are: url, page.",
        id="start-key-no-match",
    ),
    pytest.param(
        "spiders:\n  films:\n    pattern: x\n",
        "spiders.yaml:2:3: spider 'films' has no 'start:'; give it a URL to begin at.",
        id="no-start",
    ),
    pytest.param(
        films("pattern: x\nconcurrency: lots\n"),
        "spiders.yaml:5:18: spider 'films': concurrency must be a whole number, not 'lots'.",
        id="concurrency-lots",
    ),
    pytest.param(
        films("pattern: x\nconcurrency: 0\n"),
        "spiders.yaml:5:18: spider 'films': concurrency must be at least 1, not 0.",
        id="concurrency-0",
    ),
    pytest.param(
        "defaults:\n  timeout: [5]\n" + films("pattern: x\n"),
        "spiders.yaml:2:12: defaults: timeout must be a number, not a list.",
        id="timeout-list-in-defaults",
    ),
    pytest.param(
        films("pattern: '<td>(.*?)</td><td>(.*?)</td>'\nfields: [title]\n"),
        "spiders.yaml:5:13: spider 'films': fields names 1 field(s) but the pattern has "
        "2 groups; give exactly 2 name(s), one per group in order.",
        id="fields-count",
    ),
    pytest.param(
        films("pattern: '<td>(?P<title>.*?)</td>'\nfields: [title]\n"),
        "spiders.yaml:5:13: spider 'films': the pattern has named groups (title), so "
        "'fields:' is not needed; remove it, or use only unnamed groups.",
        id="fields-with-named-groups",
    ),
    pytest.param(
        films("pattern: '<td>(.*?)</td><td>(.*?)</td>'\n"),
        "spiders.yaml:4:14: spider 'films': the pattern has 2 unnamed group(s) but no "
        "'fields:' list to name them; add fields: [name, ...] or use (?P<name>...) groups "
        "(write (?:...) for a group that should not capture).",
        id="positional-without-fields",
    ),
    pytest.param(
        films("pattern: '<td>(?P<title>.*?)</td>'\nclean:\n  titel: unescape\n"),
        "spiders.yaml:6:7: spider 'films': clean names field 'titel', which the pattern does "
        "not produce (it produces: title) (did you mean 'title'?).",
        id="clean-unknown-field",
    ),
    pytest.param(
        films("pattern: '<td>(?P<title>.*?)</td>'\nclean:\n  title: unscape\n"),
        "spiders.yaml:6:14: spider 'films': clean: title: unknown processor 'unscape' "
        "(did you mean 'unescape'?) (known: raw, strip, unescape, text, paragraphs, int, float, "
        "urljoin, required, sub, default, split, findall, json, json_string).",
        id="unknown-processor",
    ),
    pytest.param(
        films("pattern: '<td>(?P<title>.*?)</td>'\nclean:\n  title: {sub: ['^Title: ']}\n"),
        "spiders.yaml:6:20: spider 'films': clean: title: sub needs [pattern, replacement], "
        "two strings.",
        id="sub-one-string",
    ),
    pytest.param(
        films("pattern: x\nflags: [DOTALL, multline]\n"),
        "spiders.yaml:5:21: spider 'films': unknown flag 'multline' (did you mean "
        "'MULTILINE'?); use any of DOTALL, IGNORECASE, MULTILINE, VERBOSE, ASCII.",
        id="unknown-flag",
    ),
    pytest.param(
        "spiders:\n  films:\n    start: https://example.com/top250?start={start}\n    pattern: x\n",
        "spiders.yaml:3:12: spider 'films': start uses {start} but 'vars:' defines no "
        "'start'; add it under vars (a list, or {range: [start, stop, step]}).",
        id="undefined-var",
    ),
    pytest.param(
        films("vars:\n  page: [1, 2]\npattern: x\n"),
        "spiders.yaml:5:7: spider 'films': vars defines 'page' but no start URL uses {page}; "
        "remove it, or use {page} in a start URL.",
        id="unused-var",
    ),
    pytest.param(
        "spiders:\n  films:\n    start: https://example.com/?p={page}\n"
        "    vars:\n      page: {range: [1, 10, 0]}\n    pattern: x\n",
        "spiders.yaml:5:21: spider 'films': vars: page: range must be [stop], [start, stop] "
        "or [start, stop, step] in whole numbers, step not 0 (stop is excluded, as in Python).",
        id="bad-range",
    ),
    pytest.param(
        "spiders:\n  films:\n    start: ftp://example.com/films/\n    pattern: x\n",
        "spiders.yaml:3:12: spider 'films': start URL 'ftp://example.com/films/' must begin "
        "with http:// or https://.",
        id="start-not-http",
    ),
    pytest.param(
        films("pattern: x\npattern: y\n"),
        "spiders.yaml:5:5: 'pattern' appears twice in spider 'films'; keep one.",
        id="duplicate-key",
    ),
    pytest.param(
        films("callback: spiders.films.parse\n"),
        "spiders.yaml:4:15: spider 'films': callback 'spiders.films.parse' must be "
        "'module:function', for example 'spiders.maoyan:parse' for def parse(page) in "
        "spiders/maoyan.py.",
        id="callback-not-module-function",
    ),
    pytest.param(
        films(
            dedent(r"""
                pages:
                  list:
                    pattern: x
                    follow:
                      - pattern: '<a href="(?P<url>/subject/\d+/)">'
                        to: detial
                  detail:
                    pattern: y
                """)
        ),
        "spiders.yaml:10:17: spider 'films': there is no page kind 'detial' "
        "(pages: list, detail) (did you mean 'detail'?).",
        id="follow-to-unknown-page",
    ),
    pytest.param(
        films('pattern: x\nfollow:\n  - {pattern: \'<a href="([^"]+)">([^<]+)</a>\', to: main}\n'),
        "spiders.yaml:6:19: spider 'films': follow: the pattern has 2 groups; name the one "
        "holding the link (?P<url>...).",
        id="follow-two-groups",
    ),
    pytest.param(
        films("pattern: x\npages:\n  list:\n    pattern: y\n"),
        "spiders.yaml:4:5: spider 'films' has both 'pages:' and page keys (pattern) at its "
        "top; move them into one of its pages.",
        id="pages-and-inline-keys",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_spec_error_message(text: str, message: str) -> None:
    assert str(spec_error(text)) == message


def test_an_unclosed_quote_is_reported_where_the_quote_opens() -> None:
    error = spec_error(films("pattern: '<h1>(?P<title>[^<]*)</h1>\n"))
    # not 5:1, the end of the file, which is past the last line
    assert str(error) == (
        "spiders.yaml:4:14: this is not valid YAML: a quoted string opens here and is never "
        "closed. Close the quote (in single quotes, write a quote inside the text as two: '')."
    )


@pytest.mark.parametrize(
    ("body", "where", "escape"),
    [
        # the backslash of \d is column 19: 'pattern: "<b>(' takes columns 5 to 18
        pytest.param('pattern: "<b>(\\d+)</b>"\n', "4:19", "d", id="pattern"),
        pytest.param(
            "pattern: x\nclean:\n  x: {sub: ['a', \"b\"]}\n  y: {sub: [\"\\s+\", ' ']}\n",
            "7:18",
            "s",
            id="in-a-flow-list",
        ),
    ],
)
def test_an_unknown_escape_in_double_quotes_is_named_at_its_backslash(
    body: str, where: str, escape: str
) -> None:
    # PyYAML reports it while scanning the quoted string; it is not an unclosed quote
    assert str(spec_error(films(body))) == (
        f"spiders.yaml:{where}: this is not valid YAML: \\{escape} is not an escape YAML "
        "knows in a double-quoted string (there a backslash starts an escape such as \\n). "
        f"Put the text in single quotes, which keep every backslash as written ('\\{escape}'), "
        f"or double the backslash (\\\\{escape})."
    )


def test_yes_for_a_number_is_named_as_written() -> None:
    error = spec_error(films("pattern: x\ntimeout: yes\n"))
    # YAML reads yes as true; the message must not call it "empty"
    assert str(error) == "spiders.yaml:5:14: spider 'films': timeout must be a number, not 'yes'."


def test_a_bad_regex_shows_the_error_the_position_and_a_caret() -> None:
    error = spec_error(films(r"pattern: '<b>(?P<price>\d+))</b>'" + "\n"))
    # the pattern's first character is column 15; position 17 is column 32
    assert str(error) == (
        "spiders.yaml:4:32: spider 'films': pattern is not a valid regular expression: "
        "unbalanced parenthesis at position 17.\n"
        "    <b>(?P<price>\\d+))</b>\n"
        "                     ^\n"
        "Fix the pattern there (in single quotes YAML keeps backslashes as they are; "
        "double quotes need them doubled)."
    )
    assert error.location == Location("spiders.yaml", 4, 32)


@pytest.mark.parametrize(
    ("scalar", "column"),
    [
        # '' is one quote in the pattern but two characters in the file
        pytest.param(r"'it''s (?P<word>\w+))'", 34, id="single-quoted-with-quote"),
        # \\ is one backslash in the pattern but two characters in the file
        pytest.param(r'"(?P<n>\\d+))"', 26, id="double-quoted-with-backslash"),
    ],
)
def test_the_regex_error_column_counts_yaml_escapes(scalar: str, column: int) -> None:
    error = spec_error(films(f"pattern: {scalar}\n"))
    assert error.location == Location("spiders.yaml", 4, column)


@pytest.mark.parametrize(
    ("body", "where", "tag"),
    [
        pytest.param(
            "pattern: x\nconstants:\n  cmd: !!python/object:os.system 'ls'\n",
            "6:12",
            "object",
            id="on-a-constant",
        ),
        pytest.param(
            "pattern: !!python/object/apply:os.system ['ls']\n",
            "4:14",
            "object/apply",
            id="on-a-list-read-as-text",
        ),
        pytest.param(
            "pattern: x\nfollow: !!python/object/apply:os.system ['ls']\n",
            "5:13",
            "object/apply",
            id="on-a-list-read-item-by-item",
        ),
        pytest.param(
            "pattern: x\nconstants: !!python/object:os.system {cmd: ls}\n",
            "5:16",
            "object",
            id="on-a-mapping-read-key-by-key",
        ),
    ],
)
def test_python_tags_are_refused_and_never_run(
    body: str, where: str, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(os, "system", calls.append)
    error = spec_error(films(body))
    assert str(error) == (
        f"spiders.yaml:{where}: the tag !!python/{tag}:os.system is not allowed: spider files "
        "are plain YAML (strings, numbers, lists, mappings) and never build Python objects. "
        "Remove the tag."
    )
    assert calls == []


def test_a_spec_error_carries_its_location_and_message_apart() -> None:
    error = spec_error(films("pattren: x\n"))
    assert error.location == Location("spiders.yaml", 4, 5)
    assert error.message == "unknown key 'pattren' in spider 'films'; did you mean 'pattern'?"


def test_spec_errors_exit_with_code_2() -> None:
    error = spec_error(films("pattren: x\n"))
    assert isinstance(error, ScraperError)
    assert error.exit_code == 2
    assert SpiderNotFound("no spider").exit_code == 2


# -- load_spiders and SpiderFile.get --------------------------------------------------------------


def test_load_spiders_reads_the_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "spiders.yaml"
    path.write_text(SPIDERS, encoding="utf-8")
    assert list(load_spiders(path).spiders) == ["maoyan", "douban"]
    path.write_text(films("pattren: x\n"), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spiders(str(path))
    assert str(caught.value) == (
        f"{path}:4:5: unknown key 'pattren' in spider 'films'; did you mean 'pattern'?"
    )


def test_load_spiders_on_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "spiders.yaml"
    with pytest.raises(SpecError) as caught:
        load_spiders(path)
    assert str(caught.value) == (
        f"{path}: no such file. Create it (see README.md, 'Spider format') "
        "or point to another with --file PATH."
    )


def test_get_an_unknown_spider_suggests_the_close_one(spider_file: SpiderFile) -> None:
    with pytest.raises(SpiderNotFound) as caught:
        spider_file.get("maoyn")
    assert str(caught.value) == (
        "no spider named 'maoyn' in spiders.yaml (it defines: maoyan, douban); "
        "did you mean 'maoyan'?"
    )


def test_get_an_unknown_spider_lists_the_spiders(spider_file: SpiderFile) -> None:
    with pytest.raises(SpiderNotFound) as caught:
        spider_file.get("imdb")
    assert (
        str(caught.value) == "no spider named 'imdb' in spiders.yaml (it defines: maoyan, douban)."
    )


def test_a_format_with_a_format_spec_is_refused_at_load_time() -> None:
    # Values are joined as text: {n:.1f} would fail on every page, so it fails here.
    error = spec_error(films("pattern: '<b>(?P<n>[0-9.]+)</b>'\nformat: {m: '{n:.1f}'}\n"))
    assert str(error) == (
        "spiders.yaml:5:17: spider 'films': format 'm': '{n:.1f}' has {n:.1f}; "
        "fields are written {name}, with no format or conversion."
    )


# -- the regex engine's extras (README, 'Regex engine') -------------------------------------

REGEX_EXTRAS = [
    pytest.param(
        r"(?<=<p>(?:Venue|Location): )(?P<place>[^<]+)",
        "<p>Venue: Town Hall</p><p>Location: Room 4</p><p>Host: Ann</p>",
        [{"place": "Town Hall"}, {"place": "Room 4"}],
        id="variable-length-lookbehind",
    ),
    pytest.param(
        r'<td class="price">(?P<price>[\d.,]++)</td>',
        '<td class="price">1,299.00</td><td class="price">n/a</td>',
        [{"price": "1,299.00"}],
        id="possessive-quantifier",
    ),
    pytest.param(
        r"<td>(?P<cell>(?>[^<]+|<(?!/td>))*)</td>",
        "<td>A <b>bold</b> cell</td><td>two</td>",
        [{"cell": "A <b>bold</b> cell"}, {"cell": "two"}],
        id="atomic-group",
    ),
    pytest.param(
        r"<li>(?P<city>\p{Han}+)市",
        "<li>上海市 浦东</li><li>Paris</li><li>杭州市</li>",
        [{"city": "上海"}, {"city": "杭州"}],
        id="unicode-script",
    ),
]


@pytest.mark.parametrize(("pattern", "text", "records"), REGEX_EXTRAS)
def test_the_regex_extras_the_readme_shows_work_in_a_spider(
    pattern: str, text: str, records: list[dict[str, str]]
) -> None:
    from scraper.extract import extract
    from scraper.lint import pattern_warnings
    from scraper.models import Page, Request

    spider = parse_spiders(films(f"pattern: '{pattern}'\n"), "spiders.yaml").get("films")
    url = "https://example.com/films/"
    page = Page(url, 200, (), text.encode(), text, "utf-8", Request(url))
    assert extract(page, spider.pages["main"], spider).records == records
    assert pattern_warnings(spider) == []  # scraper check has nothing to say about them
