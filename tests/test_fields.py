"""The ``clean:`` processors of scraper/fields.py, through a spider and called directly."""

from __future__ import annotations

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


def scores(clean: str, html: str) -> list[Any]:
    """The ``score`` of every record when ``score`` is cleaned with ``clean``."""
    result = run(SCORE_LIST % clean, html)
    assert result.dropped == {}
    return [record["score"] for record in result.records]


def test_the_registry_holds_these_processors() -> None:
    # a processor added to the registry needs its tests in this file
    assert sorted(PROCESSORS) == [
        "default",
        "float",
        "int",
        "required",
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
