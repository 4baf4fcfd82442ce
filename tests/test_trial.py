"""``scraper try`` (scraper/trial.py): what a pattern does on one page, and why it fails.

Pages are written to ``tmp_path`` or served by a FixtureSite; the command runs in-process.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import regex

from scraper.cli import main
from scraper.trial import format_table, longest_matching_prefix
from tests.server import FixtureSite
from tests.test_cli import ROOT, film_page, write_spiders

FILM = r'<li class="film"><span class="name">(?P<title>[^<]*)</span>\s*<b>(?P<score>[\d.]+)</b>'
TIME = r"in \d+\.\d\d ms \(pattern, clean:, follow rules; not fetching or decoding\)"

# The board page, one film a line: line 1 is the doctype, the films are on lines 4 to 6.
BOARD_LINES = film_page(1).splitlines()


@pytest.fixture
def board(tmp_path: Path) -> Path:
    path = tmp_path / "board.html"
    path.write_text(film_page(1), encoding="utf-8")
    return path


def test_try_a_pattern_on_a_file(board: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["try", str(board), "--pattern", FILM.replace(r"\s*", ".*?"), "--flags", "DOTALL"])
        == 0
    )
    out = capsys.readouterr().out
    first, *table = out.splitlines()
    assert re.fullmatch(
        rf"3 matches \(0 dropped\) {TIME} on {re.escape(board.as_uri())} "
        rf"\({len(film_page(1))} characters, utf-8\)",
        first,
    ), first
    assert table == [
        "",
        "title     score",
        "--------  -----",
        "海镇来客  9.7",
        "星港谣    9.6",
        "风桥之约  9.5",
    ]


def test_try_names_positional_groups_with_fields(
    board: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern = r'<span class="name">([^<]*)</span>\s*<b>([\d.]+)</b>'
    assert (
        main(["try", str(board), "--pattern", pattern, "--fields", "title, score", "-n", "2"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "",
        "title     score",
        "--------  -----",
        "海镇来客  9.7",
        "星港谣    9.6",
        "... 1 more",
    ]


def test_try_numbers_unnamed_groups_without_fields(
    board: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", str(board), "--pattern", r"<b>(\d)\.(\d)</b>", "-n", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[2:5] == ["1  2", "-  -", "9  7"]


def test_try_fields_must_match_the_group_count(
    board: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", str(board), "--pattern", r"<b>(\d)\.(\d)</b>", "--fields", "score"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: --fields names 1 fields but the pattern has 2 groups.\n"
    )


def test_try_an_invalid_pattern_exits_2_showing_the_position(
    board: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", str(board), "--pattern", "<b>[0-9</b>"]) == 2
    err = capsys.readouterr().err
    first, pattern_line, caret_line = err.splitlines()
    found = re.fullmatch(
        r"scraper: error: the pattern is not a valid regular expression: .+ at position (\d+):",
        first,
    )
    assert found, first
    position = int(found.group(1))
    assert pattern_line == "    <b>[0-9</b>"
    assert caret_line == "    " + " " * position + "^"
    assert 3 <= position <= len("<b>[0-9</b>")


def test_try_an_unknown_flag_exits_2(board: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["try", str(board), "--pattern", "<b>", "--flags", "DOTAL"]) == 2
    assert capsys.readouterr().err.startswith("scraper: error: unknown flag 'DOTAL'; use any of ")


def test_no_match_names_the_longest_matching_start_of_the_pattern(
    board: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The page has <b>9.7</b> after the name, not <em>.
    pattern = r'<span class="name">([^<]*)</span>\s*<em>([\d.]+)</em>'
    assert main(["try", str(board), "--pattern", pattern]) == 1
    out = capsys.readouterr().out
    first_line = next(n for n, line in enumerate(BOARD_LINES, 1) if 'class="name"' in line)
    prefix = r'<span class="name">([^<]*)</span>\s*<'
    assert out.splitlines()[1:] == [
        f"Nothing matched. The longest start of the pattern that matches is {len(prefix)} of "
        f"{len(pattern)} characters (first at line {first_line}):",
        f"    {prefix}",
        "The page parts ways with the pattern at:",
        r"    em>([\d.]+)</em>",
    ]


def test_no_match_at_all_says_so(board: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["try", str(board), "--pattern", "zebra"]) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "Nothing matched, not even the start of the pattern."
    ]


def test_try_an_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["try", str(tmp_path / "nope.html"), "--pattern", "x"]) == 2
    assert capsys.readouterr().err == (
        f"scraper: error: cannot read {tmp_path / 'nope.html'}: No such file or directory. "
        "Give a URL (http:// or https://) or a file.\n"
    )


# -- seeing whole values: --width and --long -------------------------------------------------

PLOT = "A harbour town, a stranger and the storm that keeps him there\nfor one long winter."
FILM_PAGE = (
    f'<div class="film"><h2>海镇来客</h2><p>{PLOT}</p><i>drama, romance</i></div>\n'
    '<div class="film"><h2>星港谣</h2><p>Short.</p></div>\n'
)
FILM_SPIDER = r"""
spiders:
  films:
    start: https://example.com/films
    pattern: '<h2>(?P<title>[^<]*)</h2><p>(?P<plot>.*?)</p>(?:<i>(?P<tags>[^<]*)</i>)?'
    flags: [DOTALL]
    clean: {tags: {split: ','}}
"""


@pytest.fixture
def film_spider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spider file in the current folder, and its page as ``films.html``."""
    (tmp_path / "spiders.yaml").write_text(FILM_SPIDER.lstrip(), encoding="utf-8")
    (tmp_path / "films.html").write_text(FILM_PAGE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_table_cuts_values_at_40_columns_by_default(
    film_spider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--url", "films.html"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "title     plot                                      tags",
        "--------  ----------------------------------------  --------------------",
        '海镇来客  A harbour town, a stranger and the stor…  ["drama", "romance"]',
        "星港谣    Short.                                    null",
    ]


def test_width_0_shows_values_whole_in_the_table(
    film_spider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--url", "films.html", "--width", "0", "-n", "1"]) == 0
    whole = " ".join(PLOT.split())  # a table row is one line
    assert capsys.readouterr().out.splitlines()[4] == (f'海镇来客  {whole}  ["drama", "romance"]')


def test_width_n_cuts_values_at_n_display_columns(
    film_spider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--url", "films.html", "--width", "7"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "title    plot     tags",
        "-------  -------  -------",
        '海镇来…  A harb…  ["dram…',
        "星港谣   Short.   null",
    ]


def test_long_shows_each_record_as_a_block_of_whole_json_values(
    film_spider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--url", "films.html", "--long"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(
        rf"2 matches \(0 dropped\) {TIME} on {re.escape((film_spider / 'films.html').as_uri())} "
        rf"\({len(FILM_PAGE)} characters, utf-8\)",
        out.splitlines()[0],
    )
    assert out.splitlines()[1:] == [
        "",
        "record 1:",
        '  title:  "海镇来客"',
        '  plot:   "A harbour town, a stranger and the storm that keeps him there\\nfor one '
        'long winter."',
        '  tags:   ["drama", "romance"]',
        "",
        "record 2:",
        '  title:  "星港谣"',
        '  plot:   "Short."',
        "  tags:   null",
    ]


def test_long_with_width_cuts_and_says_how_many_more(
    film_spider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--url", "films.html", "--long", "--width", "12", "-n", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "",
        "record 1:",
        '  title:  "海镇来客"',
        '  plot:   "A harbour …',
        '  tags:   ["drama", "…',
        "... 1 more",
    ]


@pytest.mark.parametrize("width", ["-1", "wide"])
def test_a_width_that_is_not_a_count_exits_2(
    film_spider: Path, width: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["try", "films", "--url", "films.html", f"--width={width}"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"scraper try: error: argument --width: {width!r} is not a number of columns (0: no cut)"
    )


def test_the_help_says_what_the_time_covers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["try", "--help"])
    assert (
        "The time is one run of the pattern, the clean: processors and the follow rules on "
        "the decoded page; fetching and decoding the page are not counted."
    ) in " ".join(capsys.readouterr().out.split())


# -- with a spider NAME ---------------------------------------------------------------------

SPIDER = r"""
spiders:
  films:
    start: SITE/board?page=1
    pages:
      board:
        pattern: '<span class="name">(?P<title>[^<]*)</span>'
        follow:
          - {pattern: '<a class="film" href="(?P<url>[^"]+)"', to: film}
      film:
        pattern: '<h1>(?P<title>[^<]*)</h1>\s*<p class="year">(?P<year>\d+)</p>'
        clean: {year: int}
"""


@pytest.fixture
def spider_folder(tmp_path: Path, site: FixtureSite, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_spiders(tmp_path, site, SPIDER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_try_a_spiders_page_kind_on_a_file(
    spider_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    film = spider_folder / "film.html"
    film.write_text('<h1>海镇来客</h1>\n<p class="year">1950</p>', encoding="utf-8")
    assert main(["try", "films", "--page", "film", "--url", str(film)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 matches (0 dropped) ")
    assert lines[2:] == ["title     year", "--------  ----", "海镇来客  1950"]


def test_try_a_spider_on_its_start_url_shows_the_links_it_follows(
    spider_folder: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    links = '<a class="film" href="/film/1">1</a> <a class="film" href="/film/2">2</a>'
    site.add("/board?page=1", film_page(1).replace("</ul>", f"</ul>{links}"))
    assert main(["try", "films"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 matches (0 dropped) ")
    assert f"on {site.url('/board?page=1')} " in out
    assert out.endswith(f"follow -> film: 2 links, e.g. {site.url('/film/1')}\n")


def test_matches_whose_records_are_all_dropped_are_not_reported_as_no_match(
    spider_folder: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spiders(spider_folder, site, SPIDER.replace("clean: {year: int}", "clean: {title: int}"))
    film = spider_folder / "film.html"
    film.write_text('<h1>海镇来客</h1>\n<p class="year">1950</p>', encoding="utf-8")
    assert main(["try", "films", "--page", "film", "--url", str(film)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 matches (1 dropped) ")
    # The pattern matched: the advice on where it parts ways with the page is wrong here.
    assert lines[1:] == ["  dropped 1: title: not int"]


def test_try_an_unknown_page_kind_exits_2(
    spider_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--page", "detail"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: spider 'films' has no page kind 'detail' (pages: board, film).\n"
    )


def test_try_a_page_kind_no_start_url_goes_to_needs_url(
    spider_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", "films", "--page", "film"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: no start URL of 'films' goes to page kind 'film'; "
        "say which page to try with --url URL_OR_FILE.\n"
    )


def test_try_offline_takes_the_page_from_the_cassette(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spiders = str(ROOT / "spiders.yaml")
    assert main(["try", "maoyan", "--offline", "-f", spiders, "-n", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        rf"10 matches \(0 dropped\) {TIME} on https://maoyan\.com/board/4\?offset=0 "
        r"\([\d,]+ characters, utf-8\)",
        lines[0],
    ), lines[0]
    assert lines[2].split() == ["index", "title", "actor", "time", "score"]
    assert lines[4].split() == [
        "1",
        "海镇来客",
        "林晚舟,苏一苇,陆素衣",
        "1950-01-01(中国香港)",
        "9.7",
    ]
    assert lines[5] == "... 9 more"


def test_try_a_url_over_http(site: FixtureSite, capsys: pytest.CaptureFixture[str]) -> None:
    site.add("/board", film_page(1))
    assert main(["try", site.url("/board"), "--pattern", FILM]) == 0
    out = capsys.readouterr().out
    assert re.match(rf"3 matches \(0 dropped\) {TIME} on {re.escape(site.url('/board'))} ", out)
    assert "海镇来客  9.7" in out
    assert site.paths() == ["/board"]


def test_try_a_url_that_fails_exits_2(
    site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["try", site.url("/gone"), "--pattern", FILM]) == 2
    assert capsys.readouterr().err == (
        f"scraper: error: cannot fetch {site.url('/gone')}: http 404: answered 404.\n"
    )


# -- the helpers, directly ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "prefix"),
    [
        (r"<dd>(\d+)</dd>", "<dd>12</dt>", r"<dd>(\d+)</d"),
        # a group left open by the cut is closed: <dd>(\d+ is tried as <dd>(\d+)
        (r"<dd>(\d+x)</dd>", "<dd>12</dd>", r"<dd>(\d+"),
        (r'<p class="name">(?P<title>[^<]*)</p>', '<p class="title-name">A</p>', '<p class="'),
        (r"abc", "abc", "abc"),
    ],
)
def test_longest_matching_prefix(pattern: str, text: str, prefix: str) -> None:
    length, where = longest_matching_prefix(regex.compile(pattern), text)
    assert pattern[:length] == prefix
    assert where == 0


def test_longest_matching_prefix_gives_where_the_start_matches() -> None:
    text = "<p>a</p>\n<dd>x</dd>\n<dd>12</dt>"
    length, where = longest_matching_prefix(regex.compile(r"<dd>(\d+)</dd>"), text)
    assert (length, where) == (len(r"<dd>(\d+)</d"), text.index("<dd>12"))


def test_longest_matching_prefix_when_nothing_matches() -> None:
    assert longest_matching_prefix(regex.compile("zebra"), "horse") == (0, None)


def test_longest_matching_prefix_keeps_the_patterns_flags() -> None:
    pattern = regex.compile("<DD>.*?</dd>x", regex.IGNORECASE | regex.DOTALL)
    length, _ = longest_matching_prefix(pattern, "<dd>\n1</dd>")
    assert pattern.pattern[:length] == "<DD>.*?</dd>"


def test_format_table_aligns_wide_characters() -> None:
    records: list[dict[str, object]] = [
        {"title": "海镇来客", "score": 9.7},
        {"title": "Up", "score": None, "year": 2009},
    ]
    assert format_table(records) == textwrap.dedent(
        """\
        title     score  year
        --------  -----  ----
        海镇来客  9.7    null
        Up        null   2009"""
    )


def test_format_table_cuts_long_values_by_display_width() -> None:
    table = format_table([{"t": "海镇来客海镇来客"}, {"t": "abcdefghij"}], width=5)
    assert table.splitlines() == ["t", "-----", "海镇…", "abcd…"]


def test_format_table_puts_a_value_on_one_line() -> None:
    assert format_table([{"actor": "林晚舟,\n  苏一苇"}]).splitlines()[2] == "林晚舟, 苏一苇"
