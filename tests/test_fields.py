"""The ``clean:`` processors of scraper/fields.py, through a spider and called directly."""

from __future__ import annotations

from collections.abc import Callable
from textwrap import dedent, indent
from typing import Any

import pytest

from scraper.errors import SpecError
from scraper.fields import PROCESSORS, DropRecord, ProcessorArgumentError
from tests.test_extract import make_page, make_spider, run

SCORE_LIST = r"""
pattern: '<li>(?P<title>[^<]*)(?:<em>(?P<score>[^<]*)</em>)?</li>'
clean:
  score: %s
"""


def cleaned(page: str, name: str) -> Callable[[str, str], list[Any]]:
    """``(clean, html) -> `` the ``name`` of every record of ``page`` (``%s`` -> ``clean``)."""

    def values(clean: str, html: str) -> list[Any]:
        result = run(page % clean, html)
        assert result.dropped == {}
        return [record[name] for record in result.records]

    return values


scores = cleaned(SCORE_LIST, "score")


def test_the_registry_holds_these_processors() -> None:
    # a processor added to the registry needs its tests in this file
    assert sorted(PROCESSORS) == [
        "default",
        "findall",
        "float",
        "int",
        "json",
        "json_string",
        "paragraphs",
        "required",
        "split",
        "strip",
        "sub",
        "text",
        "unescape",
        "urljoin",
    ]


# -- strip and raw --------------------------------------------------------------------------------


def test_every_field_is_stripped_by_default() -> None:
    assert scores("[]", "<li>A<em>\n   9.6 \t</em></li>") == ["9.6"]


def test_strip_named_explicitly_strips_too() -> None:
    strip = PROCESSORS["strip"](None)
    assert strip("\n  Léon  \t", make_page("")) == "Léon"


def test_raw_keeps_the_whitespace_the_group_captured() -> None:
    assert scores("raw", "<li>A<em>\n   9.6 \t</em></li>") == ["\n   9.6 \t"]


def test_raw_first_then_other_processors_see_the_unstripped_value() -> None:
    clean = r"""[raw, {sub: ['\s', '_']}]"""
    assert scores(clean, "<li>A<em> 9.6 </em></li>") == ["_9.6_"]


def test_raw_takes_no_argument() -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(SCORE_LIST % "{raw: yes}")
    # not "unknown processor 'raw' (known: raw, ...)", which contradicts itself
    assert str(caught.value) == (
        "test.yaml:7:20: spider 'films': clean: score: raw takes no argument; "
        "write it as a plain name."
    )


# -- int and float --------------------------------------------------------------------------------


def test_int_reads_whole_numbers_with_thousands_separators() -> None:
    html = "<li>A<em>1,234,567</em></li><li>B<em> 42 </em></li><li>C<em>12_000</em></li>"
    assert scores("int", html) == [1234567, 42, 12000]


def test_float_reads_decimals_with_thousands_separators() -> None:
    html = "<li>A<em>9.6</em></li><li>B<em>1,234.5</em></li><li>C<em>7</em></li>"
    assert scores("float", html) == [9.6, 1234.5, 7.0]


def test_a_value_int_cannot_read_drops_the_record_and_counts_why() -> None:
    html = "<li>A<em>1,024</em></li><li>B<em>n/a</em></li><li>C<em>9.6</em></li>"
    result = run(SCORE_LIST % "int", html)
    assert result.records == [{"title": "A", "score": 1024}]
    assert result.dropped == {"score: not int": 2}


def test_a_value_float_cannot_read_drops_the_record_and_counts_why() -> None:
    result = run(SCORE_LIST % "float", "<li>A<em>9.6</em></li><li>B<em>暂无评分</em></li>")
    assert result.records == [{"title": "A", "score": 9.6}]
    assert result.dropped == {"score: not float": 1}


def test_int_raises_drop_record_with_its_reason_when_called_directly() -> None:
    with pytest.raises(DropRecord) as caught:
        PROCESSORS["int"](None)("twelve", make_page(""))
    assert caught.value.reason == "not int"


def test_a_processor_without_argument_rejects_one() -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(SCORE_LIST % "{int: 10}")
    assert str(caught.value) == (
        "test.yaml:7:20: spider 'films': clean: score: int takes no argument; "
        "write it as a plain name."
    )


# -- unescape and text ----------------------------------------------------------------------------


def test_unescape_decodes_html_entities() -> None:
    html = "<li>A<em>Tom &amp; Jerry&#39;s&nbsp;Show &lt;3</em></li>"
    assert scores("unescape", html) == ["Tom & Jerry's\xa0Show <3"]


def test_text_removes_tags_scripts_styles_and_comments_and_collapses_whitespace() -> None:
    html = (
        "<li>A<em><p>Directed by <b>Chen\n  Kaige</b></p>"
        "<script>var rating = '<b>9.6</b>';</script><style>b { color: red }</style>"
        "<!-- cast -->\n\n   <span>Leslie&nbsp;Cheung &amp; Gong Li</span></em></li>"
    )
    # SCORE_LIST stops at the first "<"; this spider captures the whole <em> block
    result = run(
        r"""
        pattern: '<em>(?P<about>.*)</em>'
        flags: [DOTALL]
        clean:
          about: text
        """,
        html,
    )
    assert result.records == [{"about": "Directed by Chen Kaige Leslie Cheung & Gong Li"}]


# -- sub ------------------------------------------------------------------------------------------


def test_sub_replaces_every_match_with_group_references() -> None:
    clean = r"""{sub: ['(\d{4})-(\d{2})-\d{2}\(([^)]*)\)', '\3 \2/\1']}"""
    html = "<li>A<em>1993-01-01(中国香港)</em></li><li>B</li>"
    assert scores(clean, html) == ["中国香港 01/1993", None]


def test_sub_needs_a_pattern_and_a_replacement() -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(SCORE_LIST % "{sub: ['^Score: ']}")
    assert str(caught.value) == (
        "test.yaml:7:20: spider 'films': clean: score: sub needs [pattern, replacement], "
        "two strings."
    )
    with pytest.raises(ProcessorArgumentError) as direct:
        PROCESSORS["sub"](["^Score: ", 1])
    assert str(direct.value) == "needs [pattern, replacement], two strings"


def test_a_sub_pattern_that_does_not_compile_points_at_the_bad_character() -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(SCORE_LIST % "{sub: ['9\\.6)', '']}")
    # line 7 is "      score: {sub: ['9\.6)', '']}": the ")" is in column 26
    assert str(caught.value) == (
        "test.yaml:7:26: spider 'films': clean: score: sub pattern is not a valid regular "
        "expression: unbalanced parenthesis at position 4.\n"
        "    9\\.6)\n"
        "        ^\n"
        "Fix the pattern there (in single quotes YAML keeps backslashes as they are; "
        "double quotes need them doubled)."
    )


# -- urljoin --------------------------------------------------------------------------------------

LINKS = r"""
pattern: '<a href="(?P<link>[^"]*)">'
clean:
  link: urljoin
"""


def links(html: str, url: str = "https://movie.example.com/top250/list.html") -> list[Any]:
    return [record["link"] for record in run(LINKS, html, url=url).records]


def test_urljoin_makes_relative_links_absolute_and_keeps_absolute_ones() -> None:
    html = (
        '<a href="subject/1292052/"><a href="../chart"><a href="/tag/">'
        '<a href="https://img.example.net/p.jpg"><a href="//cdn.example.net/a.css">'
        '<a href="?start=25&amp;filter=unwatched">'
    )
    assert links(html) == [
        "https://movie.example.com/top250/subject/1292052/",
        "https://movie.example.com/chart",
        "https://movie.example.com/tag/",
        "https://img.example.net/p.jpg",
        "https://cdn.example.net/a.css",
        "https://movie.example.com/top250/list.html?start=25&filter=unwatched",
    ]


def test_urljoin_resolves_against_base_href() -> None:
    html = '<head><base href="/m/v2/"></head><a href="detail?id=7">'
    assert links(html) == ["https://movie.example.com/m/v2/detail?id=7"]


# -- default and required -------------------------------------------------------------------------

MISSING_AND_EMPTY = "<li>A<em>9.6</em></li><li>B</li><li>C<em>  </em></li>"


def test_default_replaces_a_missing_or_empty_value() -> None:
    assert scores("{default: unrated}", MISSING_AND_EMPTY) == ["9.6", "unrated", "unrated"]


def test_default_then_float_reads_the_default() -> None:
    assert scores("[{default: '0'}, float]", MISSING_AND_EMPTY) == [9.6, 0.0, 0.0]


def test_required_drops_records_without_the_field_and_counts_them() -> None:
    result = run(SCORE_LIST % "required", MISSING_AND_EMPTY)
    assert result.records == [{"title": "A", "score": "9.6"}]
    assert result.dropped == {"score: missing": 2}


# -- order and None -------------------------------------------------------------------------------


def test_processors_run_in_the_order_listed() -> None:
    html = "<li>A<em>9.6 / 10</em></li>"
    assert scores(r"[{sub: ['\s*/.*', '']}, float]", html) == [9.6]
    assert scores("[{sub: ['6', '7']}, {sub: ['7', '8']}]", html) == ["9.8 / 10"]
    assert scores("[{sub: ['7', '8']}, {sub: ['6', '7']}]", html) == ["9.7 / 10"]


def test_strip_runs_before_the_list_so_an_unescaped_nbsp_needs_strip_after() -> None:
    html = "<li>A<em> Léon&nbsp;</em></li>"
    assert scores("unescape", html) == ["Léon\xa0"]
    assert scores("[unescape, strip]", html) == ["Léon"]


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("strip", None),
        ("unescape", None),
        ("text", None),
        ("int", None),
        ("float", None),
        ("urljoin", None),
        ("sub", ["x", "y"]),
        ("paragraphs", None),
        ("split", ","),
        ("split", None),
        ("findall", "x"),
        ("json", None),
        ("json_string", None),
    ],
)
def test_a_group_that_did_not_match_passes_through_as_none(name: str, argument: Any) -> None:
    processor = PROCESSORS[name](argument)
    assert processor(None, make_page("")) is None


def test_none_passes_through_a_whole_chain_in_a_spider() -> None:
    clean = r"[unescape, text, {sub: ['x', 'y']}, float]"
    assert scores(clean, "<li>A<em>9.6</em></li><li>B</li>") == [9.6, None]


@pytest.mark.parametrize(
    ("pattern", "needs_the_deadline"),
    [
        ("^主演：", False),  # no repeat: cannot run away, so it pays no timeout cost
        ("a?b|c", False),
        ("x+y", True),
        ("(ab)*", True),
        ("a{2,}", True),
        ("(a|b(?R))", True),  # recursion repeats too
    ],
)
def test_sub_runs_under_the_page_deadline_when_its_pattern_can_repeat(
    pattern: str, needs_the_deadline: bool
) -> None:
    import time

    from scraper.fields import PATTERN_DEADLINE

    sub = PROCESSORS["sub"]([pattern, ""])
    token = PATTERN_DEADLINE.set(time.monotonic() - 1)  # the page's time is already up
    try:
        if needs_the_deadline:
            with pytest.raises(TimeoutError):
                sub("主演：xxyab", None)
        else:
            assert isinstance(sub("主演：xxyab", None), str)
    finally:
        PATTERN_DEADLINE.reset(token)


# -- split and findall: lists ---------------------------------------------------------------------

TAGS = r"""
pattern: '<li>(?P<title>[^<]*)<em>(?P<tags>[^<]*)</em></li>'
clean:
  tags: %s
"""


tags = cleaned(TAGS, "tags")


def test_split_cuts_at_a_literal_separator_strips_items_and_drops_empty_ones() -> None:
    html = "<li>A<em> drama, crime ,,  , history, </em></li><li>B<em>a.b|c</em></li>"
    assert tags("{split: ','}", html) == [["drama", "crime", "history"], ["a.b|c"]]
    assert tags("{split: '.'}", "<li>A<em>a.b|c</em></li>") == [["a", "b|c"]]  # not a regex


def test_split_alone_cuts_at_runs_of_whitespace_nbsp_and_full_width_spaces_included() -> None:
    split = PROCESSORS["split"](None)
    assert split(" 林晚舟\u3000苏一苇\xa0\xa0陆素衣\n沈听澜 ", make_page("")) == [
        "林晚舟",
        "苏一苇",
        "陆素衣",
        "沈听澜",
    ]


def test_processors_after_split_apply_to_each_item() -> None:
    html = "<li>A<em>1,024; 7 ;12_000</em></li>"
    assert tags("[{split: ';'}, int]", html) == [[1024, 7, 12000]]
    assert tags(r"[{split: ';'}, {sub: ['\D', '']}, int]", html) == [[1024, 7, 12000]]


def test_an_item_a_processor_cannot_read_drops_the_record() -> None:
    result = run(TAGS % "[{split: ','}, int]", "<li>A<em>1, 2</em></li><li>B<em>3, x</em></li>")
    assert result.records == [{"title": "A", "tags": [1, 2]}]
    assert result.dropped == {"tags: not int": 1}


def test_a_list_made_after_a_list_is_joined_into_it() -> None:
    html = "<li>A<em>a, b; c; d, e</em></li>"
    assert tags("[{split: ';'}, {split: ','}]", html) == [["a", "b", "c", "d", "e"]]
    assert tags(r"[{split: ';'}, {findall: '\w'}, unescape]", html) == [["a", "b", "c", "d", "e"]]


def test_required_on_a_list_means_not_empty() -> None:
    result = run(
        TAGS % "[{split: ','}, required]",
        "<li>A<em>a</em></li><li>B<em> , </em></li><li>C<em></em></li>",
    )
    assert result.records == [{"title": "A", "tags": ["a"]}]
    assert result.dropped == {"tags: missing": 2}


def test_default_replaces_an_empty_list_or_a_missing_value() -> None:
    result = run(
        r"""
        pattern: '<li>(?P<title>[^<]*)(?:<em>(?P<tags>[^<]*)</em>)?</li>'
        clean:
          tags: [{split: ','}, {default: [untagged]}]
        """,
        "<li>A<em>a,b</em></li><li>B<em>,</em></li><li>C</li>",
    )
    assert [record["tags"] for record in result.records] == [["a", "b"], ["untagged"], ["untagged"]]


def test_findall_keeps_the_only_group_the_named_group_or_the_whole_match() -> None:
    html = "<li>A<em>#drama #crime x#1</em></li>"
    assert tags(r"{findall: '#(\w+)'}", html) == [["drama", "crime", "1"]]
    assert tags(r"{findall: '(x)?#(?P<tag>\w+)'}", html) == [["drama", "crime", "1"]]
    assert tags(r"{findall: '#\w+'}", html) == [["#drama", "#crime", "#1"]]
    assert tags(r"{findall: 'none'}", html) == [[]]


def test_findall_items_are_stripped_and_a_group_that_took_no_part_is_null() -> None:
    findall = PROCESSORS["findall"](r"<td>(?:<b>(?P<cell>[^<]*)</b>)?</td>")
    assert findall("<td><b> 9.7 </b></td><td></td><td><b></b></td>", make_page("")) == [
        "9.7",
        None,
        "",
    ]


def test_processors_after_findall_apply_to_each_link() -> None:
    result = run(
        r"""
        pattern: '<nav>(?P<links>.*?)</nav>'
        clean:
          links: [{findall: 'href="([^"]+)"'}, urljoin]
        """,
        '<nav><a href="/a">A</a> <a href="b?x=1&amp;y=2">B</a></nav>',
        url="https://example.com/list/",
    )
    assert result.records == [
        {"links": ["https://example.com/a", "https://example.com/list/b?x=1&y=2"]}
    ]


def test_findall_with_several_groups_must_name_the_one_to_keep() -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(TAGS % r"{findall: '(\w+)=(\w+)'}")
    assert str(caught.value) == (
        "test.yaml:7:23: spider 'films': clean: tags: findall pattern '(\\w+)=(\\w+)' has 2 "
        "groups; keep the item in the only named group (?P<item>...), or write the others "
        "as (?:...)."
    )


def test_a_findall_pattern_that_does_not_compile_points_at_the_bad_character() -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(TAGS % r"{findall: '#(\w+'}")
    # line 7 is "      tags: {findall: '#(\w+'}": the pattern starts in column 24
    assert str(caught.value) == (
        "test.yaml:7:29: spider 'films': clean: tags: findall pattern is not a valid regular "
        "expression: missing ) at position 5.\n"
        "    #(\\w+\n"
        "         ^\n"
        "Fix the pattern there (in single quotes YAML keeps backslashes as they are; "
        "double quotes need them doubled)."
    )


@pytest.mark.parametrize(
    ("clean", "message"),
    [
        (
            "{split: 1}",
            "split needs a separator, a string such as {split: ','} (alone, split "
            "cuts at whitespace).",
        ),
        (
            "{split: ''}",
            "split needs a separator, a string such as {split: ','} (alone, split "
            "cuts at whitespace).",
        ),
        ("findall", "findall needs a pattern, a string such as {findall: '#(\\w+)'}."),
        ("{findall: [a]}", "findall needs a pattern, a string such as {findall: '#(\\w+)'}."),
    ],
)
def test_split_and_findall_refuse_arguments_they_cannot_use(clean: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        make_spider(TAGS % clean)
    assert str(caught.value).split(": ", 1)[1] == f"spider 'films': clean: tags: {message}"


def test_findall_runs_under_the_page_deadline() -> None:
    import time

    from scraper.fields import PATTERN_DEADLINE

    findall = PROCESSORS["findall"](r"(x+x+)+y")
    token = PATTERN_DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(TimeoutError, match=r"\(x\+x\+\)\+y"):
            findall("x" * 30, make_page(""))
        assert PROCESSORS["findall"]("#")("a#b#", make_page("")) == ["#", "#"]  # cannot repeat
    finally:
        PATTERN_DEADLINE.reset(token)


def test_a_findall_that_backtracks_fails_the_page_as_an_extract_timeout() -> None:
    from scraper.extract import ExtractTimeout

    with pytest.raises(ExtractTimeout):
        run(
            r"""
            pattern: '<em>(?P<tags>[^<]*)</em>'
            clean:
              tags: {findall: '(x+x+)+y'}
            extract_timeout: 0.05
            """,
            f"<em>{'x' * 5000}</em>",
        )


def test_chain_folds_the_steps_after_a_list_into_one_per_item_step() -> None:
    from scraper.fields import chain

    def step(name: str, argument: Any = None) -> tuple[str, Any]:
        return name, PROCESSORS[name](argument)

    plain = chain([step("strip"), step("int")])
    assert plain == (plain[0], plain[1])  # nothing to fold: the steps themselves
    folded = chain(
        [step("strip"), step("split", ","), step("strip"), step("int"), step("required")]
    )
    assert len(folded) == 4  # strip, split, (strip, int) for each item, required
    page = make_page("")
    value: Any = " 1, 2 "
    for processor in folded:
        value = processor(value, page)
    assert value == [1, 2]


# -- json and json_string -------------------------------------------------------------------------

DATA = r"""
pattern: '<script>var data = (?P<data>.*?);</script>'
flags: [DOTALL]
clean:
  data: %s
"""


data = cleaned(DATA, "data")


def test_json_keeps_the_parsed_document_as_it_is() -> None:
    script = (
        '<script>var data = {"title": "海镇来客", "score": 9.7, "tags": ["drama"], '
        '"seen": true, "note": null, "n": 12};</script>'
        '<script>var data = [1, -2.5e3];</script><script>var data = "a\\u4e0a";</script>'
        "<script>var data = false;</script><script>var data = null;</script>"
    )
    assert data("json", script) == [
        {"title": "海镇来客", "score": 9.7, "tags": ["drama"], "seen": True, "note": None, "n": 12},
        [1, -2500.0],
        "a上",
        False,
        None,
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{'a': 1}", "not JSON"),
        ("[1, 2", "not JSON"),
        ("", "not JSON"),
        ("NaN", "not JSON"),  # Python's json reads it; JSON has no NaN
        ("[1, -Infinity]", "not JSON"),
        ("1" * 5000, "not JSON"),  # past the digits Python reads into an int
        ("[" * 100_000 + "]" * 100_000, "not JSON"),  # too deep to read
        ("1e999", "not finite"),
        ('{"a": [1.5, -1e400]}', "not finite"),
    ],
)
def test_a_value_that_json_cannot_read_drops_the_record(value: str, reason: str) -> None:
    result = run(
        DATA % "json", f"<script>var data = {value};</script><script>var data = 1;</script>"
    )
    assert result.records == [{"data": 1}]
    assert result.dropped == {f"data: {reason}": 1}


def test_why_a_value_is_not_json_is_logged_at_verbose_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="scraper"):
        run(DATA % "json", '<script>var data = {"a": 1,, "b": 2};</script>')
    assert caplog.messages == [
        "https://example.com/films/: a value is not JSON (Expecting property name enclosed in "
        'double quotes: line 1 column 9 (char 8)): \'{"a": 1,, "b": 2}\''
    ]


def test_json_turns_a_lone_surrogate_escape_into_a_replacement_character() -> None:
    value = r'{"a\ud800": ["\udc00x", "\ud83d\ude00"], "b": "\\ud800"}'
    assert PROCESSORS["json"](None)(value, make_page("")) == {
        "a\ufffd": ["\ufffdx", "😀"],
        "b": "\\ud800",
    }


def test_json_string_decodes_the_escapes_of_a_json_string_literal() -> None:
    decode = PROCESSORS["json_string"](None)
    page = make_page("")
    assert decode(r"\u4e0a\u6d77 \/jobs\/1 say \"hi\" C:\\dir", page) == (
        '上海 /jobs/1 say "hi" C:\\dir'
    )
    assert decode(r"a\nb\tc\rd\be\ff", page) == "a\nb\tc\rd\be\ff"
    assert decode(r"\ud83d\ude00 \uD83D\uDE00", page) == "😀 😀"  # a surrogate pair: one character
    assert decode("no escapes, kept as is: 上海", page) == "no escapes, kept as is: 上海"


def test_json_string_never_yields_a_lone_surrogate() -> None:
    decode = PROCESSORS["json_string"](None)
    page = make_page("")
    assert decode(r"\ud800", page) == "\ufffd"
    assert decode(r"x\udc00y", page) == "x\ufffdy"
    assert decode(r"\ud800\ud800", page) == "\ufffd\ufffd"
    assert decode(r"\u0041\udc00", page) == "A\ufffd"  # a low half after no high one
    assert decode(r"\ude00\ud83d", page) == "\ufffd\ufffd"  # the halves in the wrong order


@pytest.mark.parametrize("value", [r"\x41", r"\u12", r"\u12G4", "ends in \\", "\\\n", r"\'"])
def test_a_malformed_escape_drops_the_record_as_not_a_json_string(value: str) -> None:
    with pytest.raises(DropRecord) as caught:
        PROCESSORS["json_string"](None)(value, make_page(""))
    assert caught.value.reason == "not a JSON string"


def test_json_string_in_a_spider_counts_malformed_values() -> None:
    result = run(
        r"""
        pattern: '"city":"(?P<city>(?:[^"\\]|\\.)*)"'
        clean:
          city: json_string
        """,
        r'{"city":"\u4e0a\u6d77"} {"city":"\q"} {"city":"\"Bei\/jing\""}',
    )
    assert result.records == [{"city": "上海"}, {"city": '"Bei/jing"'}]
    assert result.dropped == {"city: not a JSON string": 1}


# -- paragraphs -----------------------------------------------------------------------------------

CHAPTER = r"""
pattern: '<div id="content">(?P<body>.*?)</div>\s*<!-- end -->'
flags: [DOTALL]
clean:
  body: paragraphs
"""


def paragraphs(html: str) -> Any:
    return PROCESSORS["paragraphs"](None)(html, make_page(""))


def test_paragraphs_keeps_br_lines_and_makes_runs_of_blank_lines_one() -> None:
    html = (
        '<div id="content">&nbsp;&nbsp;&nbsp;&nbsp;第一章　风起\n<br />\n<br />\n'
        "&nbsp;&nbsp;&nbsp;&nbsp;他推开门，\n  雨还在下。<br /><br /><br /><br />"
        "\u3000\u3000第二段。<br/>第三段。<br><br></div>\n<!-- end -->"
    )
    result = run(CHAPTER, html)
    assert result.records == [
        {"body": "第一章 风起\n\n他推开门， 雨还在下。\n\n第二段。\n第三段。"}
    ]


def test_each_block_element_ends_a_line_without_making_blank_ones() -> None:
    html = (
        "<h1>Title</h1><p>One <b>bold</b>\n   word.</p><p>Two</p>"
        "<ul><li>a</li><li>b</li></ul><table><tr><td>x</td><td>y</td></tr><tr><td>z</td></tr>"
        "</table><blockquote>q</blockquote><section><article><header>h</header>"
        "<footer>f</footer></article></section><dl><dt>t</dt><dd>d</dd></dl>tail"
    )
    assert paragraphs(html) == "Title\nOne bold word.\nTwo\na\nb\nx y\nz\nq\nh\nf\nt\nd\ntail"


def test_paragraphs_drops_scripts_styles_and_comments_and_decodes_entities() -> None:
    html = (
        "<p>Tom &amp; Jerry<script>var x = '<p>no</p>';</script></p>"
        "<style>p { color: red }</style><!-- <p>hidden</p> --><p>&lt;3&#x4e0a;</p>"
    )
    assert paragraphs(html) == "Tom & Jerry\n<3上"


def test_paragraphs_keeps_the_lines_of_pre_and_strips_each() -> None:
    assert paragraphs("<p>code:</p><pre>a = 1\n    b = 2\r\n</pre> after") == (
        "code:\na = 1\nb = 2\nafter"
    )


def test_paragraphs_without_tags_is_text() -> None:
    assert paragraphs("  one\n two\x00 three\u3000 ") == "one two three"
    assert paragraphs("<p>\xa0\u3000</p><br><br><p> </p>") == ""
    assert paragraphs("a<br>\x01b&#1;c") == "a\nb c"  # controls are spaces, as in text


# -- one processor for several fields -------------------------------------------------------------

JOB = r"""
pattern: '(?P<job_name>[^|]*)\|(?P<company_name>[^|]*)\|(?P<city>[^|]*)\|(?P<_salary>[^|]*);'
format:
  salary: '{_salary} / month'
clean:
%s
"""


def job_spider(clean: str) -> Any:
    return make_spider(JOB % indent(dedent(clean), "  "))


def test_a_key_may_name_several_fields() -> None:
    result = run(
        JOB % "  job_name, company_name: json_string",
        r"\u524d\u7aef|A\/B|\u4e0a\u6d77|1;",
    )
    assert result.records == [
        {"job_name": "前端", "company_name": "A/B", "city": "\\u4e0a\\u6d77", "salary": "1 / month"}
    ]


def test_star_cleans_every_written_field_first_then_each_fields_own_processors() -> None:
    result = run(
        JOB
        % """\
  city: {sub: ['^(.*)$', '<\\1>']}
  '*': [json_string, {sub: ['^(.*)$', '[\\1]']}]
  job_name, city: {sub: ['^(.*)$', '(\\1)']}
""",
        r"\u524d|c|\u4e0a|\u0031;",
    )
    # '*' cleans what format made (salary), not the helper it read (_salary)
    assert result.records == [
        {
            "job_name": "([前])",
            "company_name": "[c]",
            "city": "(<[上]>)",
            "salary": "[1 / month]",
        }
    ]


def test_raw_under_star_keeps_every_fields_whitespace() -> None:
    result = run(JOB % "  '*': raw", " a |b | c|1;")
    assert result.records == [
        {"job_name": " a ", "company_name": "b ", "city": " c", "salary": "1 / month"}
    ]


def test_an_unknown_field_in_a_multi_field_key_is_pointed_at() -> None:
    with pytest.raises(SpecError) as caught:
        job_spider("job_name, compny_name, city: json_string")
    # line 9 is "      job_name, compny_name, city: json_string"
    assert str(caught.value) == (
        "test.yaml:9:17: spider 'films': clean names field 'compny_name', which the pattern "
        "does not produce (it produces: job_name, company_name, city, _salary, salary) "
        "(did you mean 'company_name'?)."
    )


def test_a_quoted_multi_field_key_is_pointed_at_too() -> None:
    with pytest.raises(SpecError) as caught:
        job_spider("'job_name,citty': text")
    assert str(caught.value).startswith(
        "test.yaml:9:17: spider 'films': clean names field 'citty', which the pattern"
    )


def test_a_field_named_twice_in_one_key_is_an_error() -> None:
    with pytest.raises(SpecError) as caught:
        job_spider("city, job_name, city: text")
    assert str(caught.value) == (
        "test.yaml:9:23: spider 'films': clean: 'city, job_name, city' names 'city' twice; "
        "name it once."
    )


def test_a_field_named_by_two_keys_gets_both_in_the_order_written() -> None:
    spec = job_spider(
        """\
        city: {sub: ['a', 'b']}
        city, job_name: {sub: ['b', 'c']}
        """
    ).pages["main"]
    assert len(spec.clean["city"]) == 2
    result = run(
        JOB % "  city: {sub: ['a', 'b']}\n  city, job_name: {sub: ['b', 'c']}",
        "ab|x|ab|1;",
    )
    assert result.records[0]["city"] == "cc"
    assert result.records[0]["job_name"] == "ac"


def test_a_follow_rule_may_clean_several_carried_fields_in_one_key() -> None:
    result = run(
        r"""
        pattern: '<h1>(?P<title>[^<]*)</h1>'
        follow:
          - pattern: '<a href="(?P<url>[^"]+)" data-rank="(?P<rank>[^"]*)" data-n="(?P<n>[^"]*)">'
            to: main
            clean:
              rank, n: int
        """,
        '<h1>T</h1><a href="/f/1" data-rank="1,024" data-n="7">',
    )
    assert [request.carry for request in result.requests] == [{"rank": 1024, "n": 7}]


@pytest.mark.parametrize("name", ["sub", "findall"])
def test_a_pattern_nested_too_deeply_to_compile_is_refused_at_load(name: str) -> None:
    deep = "(" * 50_000 + ")" * 50_000
    argument = f"['{deep}', '']" if name == "sub" else f"'{deep}'"
    with pytest.raises(SpecError) as caught:
        make_spider(TAGS % f"{{{name}: {argument}}}")
    assert str(caught.value).endswith(
        f"clean: tags: {name} pattern nests groups too deeply to compile; simplify it."
    )


def test_load_json_reads_strict_json_into_what_a_record_can_hold() -> None:
    from scraper.jsonvalues import NotFiniteError, load_json

    assert load_json(' {"a": [1, 2.5, "\\u4e0a\\ud800"]} ') == {"a": [1, 2.5, "上\ufffd"]}
    with pytest.raises(NotFiniteError):
        load_json("[1e400]")
    for text in ("NaN", "Infinity", "-Infinity", "[1,]", "1" * 5000, "[" * 5000 + "]" * 5000):
        with pytest.raises(ValueError):
            load_json(text)
    # nested as deep as Python reads, with a lone surrogate to replace at the bottom
    deep = "[" * 900 + '"\\ud800"' + "]" * 900
    try:
        value = load_json(deep)
    except ValueError as exc:  # too deep for the replacing walk: refused, never a crash
        assert str(exc) == "nested too deep to read"
    else:
        for _ in range(900):
            value = value[0]
        assert value == "\ufffd"


def test_page_fields_clean_takes_several_fields_in_one_key_too() -> None:
    result = run(
        r"""
        pattern: '<td>(?P<topic>[^<]*)</td>'
        page_fields:
          pattern: '<h2>(?P<year>[^<]*)/(?P<month>[^<]*)</h2>'
          clean:
            year, month: int
        """,
        "<h2> 2024 / 05 </h2><td>Budget</td><td>Roads</td>",
    )
    assert result.records == [
        {"topic": "Budget", "year": 2024, "month": 5},
        {"topic": "Roads", "year": 2024, "month": 5},
    ]
