"""scraper check warns about patterns that can backtrack catastrophically."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scraper.cli import main
from scraper.lint import backtracking_warnings


@pytest.mark.parametrize(
    ("pattern", "part"),
    [
        (r"(x+x+)+y", "nested unbounded repeats in '(x+x+)+'"),
        (r"<p>(?P<words>(\w+\s?)+)</p>", r"nested unbounded repeats in '(\w+\s?)+'"),
        (r"(?:<li>.*?</li>)+<end>", "nested unbounded repeats in '(?:<li>.*?</li>)+'"),
        (r"(a|aa)*b", "the repeated group '(a|aa)*' has alternatives"),
        (r"^(a|a?)+$", "the repeated group '(a|a?)+' has alternatives"),
        (r"<b>\d+\d*</b>", r"adjacent unbounded repeats in '\d+\d*'"),
        (r"id=.*.*;", "adjacent unbounded repeats in '.*.*'"),
        (r"\w+\s*\w+", r"adjacent unbounded repeats in '\w+\s*\w+'"),
        # they look like the version-number shape, but something inside can take the
        # character that starts an iteration, so the iterations can be split many ways
        (r"v(?:\.[\d.]+)+;", r"nested unbounded repeats in '(?:\.[\d.]+)+'"),
        (r"(?:-[\w-]+)+;", r"nested unbounded repeats in '(?:-[\w-]+)+'"),
        (r"(?:,\d*,?)+;", r"nested unbounded repeats in '(?:,\d*,?)+'"),
        (r"(?:\.\d+(?:\.\d+)?)+;", r"nested unbounded repeats in '(?:\.\d+(?:\.\d+)?)+'"),
        (r"(?:\s?\w+)+;", r"nested unbounded repeats in '(?:\s?\w+)+'"),
        (r"(?:a(?i:A+))+;", "nested unbounded repeats in '(?:a(?i:A+))+'"),
        (r"(?:(a)\1+)+;", r"nested unbounded repeats in '(?:(a)\1+)+'"),
        (r"(?:\.\d+|\.\w+)+;", r"the repeated group '(?:\.\d+|\.\w+)+' has alternatives"),
        (r"(?:\.\d+\d*)+;", r"adjacent unbounded repeats in '\d+\d*'"),
        (r"\p{Han}+\p{Han}*", r"adjacent unbounded repeats in '\p{Han}+\p{Han}*'"),
        (r"(?>x)(\w+\s?)+", r"nested unbounded repeats in '(\w+\s?)+'"),
    ],
)
def test_risky_parts_are_named(pattern: str, part: str) -> None:
    warnings = backtracking_warnings(pattern, re.DOTALL)
    assert len(warnings) == 1
    assert warnings[0].startswith(part)


@pytest.mark.parametrize(
    "pattern",
    [
        r'<dd>.*?board-index.*?>(\d+)</i>.*?title="(.*?)"',
        r"[^<]*<",
        r"\w+\s+\w+",
        r"(?:ab|cd)*",
        r'<a href="(?P<url>[^"]+)"\s*>(?P<title>[^<]+)</a>',
        r"(\d{1,3},)*\d+",
        r"a{2,5}a+",
        r"(?:\w++\s?)+",  # possessive: never gives back
        r"price: \{[^}]*\}",
        # an atomic group is never split another way once matched
        r"<td>(?P<cell>(?>[^<]+|<(?!/td>))*)</td>",
        r"((?>\w+)\s?)+;",
        r"(?>a|aa)*b",
        r"(?:,\p{Han}+)+",  # \p{Han} is one atom, and ',' is not Han
    ],
)
def test_ordinary_patterns_get_no_warning(pattern: str) -> None:
    assert backtracking_warnings(pattern, re.DOTALL) == []


# Every iteration starts with a character nothing repeated inside can take, so the
# text splits into iterations one way only. Each with what a near miss starts with
# and one iteration of it.
ITERATIONS_START_APART = [
    (r"v\d+(?:\.\d+)+", "v1", ".1"),  # the usual version number
    (r"(?:,\d+)*", "", ",1"),
    (r"(?:-\w+)+", "", "-a"),
    (r"(?:\.\d+\.\d+)+", "", ".1.2"),  # the second '.' is required, not optional
    (r"(?:<li>\w+</li>)+", "", "<li>a</li>"),
    (r"(?:\.|,\d+)+", "", ".,1"),
    (r"(?:\n.*)+", "", "\nab"),  # '.' does not take a line break without DOTALL
]


@pytest.mark.parametrize(("pattern", "start", "iteration"), ITERATIONS_START_APART)
def test_repeats_whose_iterations_start_apart_get_no_warning(
    pattern: str, start: str, iteration: str
) -> None:
    assert backtracking_warnings(pattern) == []


@pytest.mark.parametrize(("pattern", "start", "iteration"), ITERATIONS_START_APART)
def test_repeats_whose_iterations_start_apart_are_linear_on_a_near_miss(
    pattern: str, start: str, iteration: str
) -> None:
    # re has no backtracking guards of its own: a near miss of 3,000 iterations
    # that could be split in many ways would never end here
    started = time.perf_counter()
    assert re.match(pattern + "!", start + iteration * 3000) is None
    assert time.perf_counter() - started < 0.5


def test_the_same_shape_under_dotall_is_warned_about() -> None:
    assert backtracking_warnings(r"(?:\n.*)+", re.DOTALL)[0].startswith(
        r"nested unbounded repeats in '(?:\n.*)+'"
    )


PATTERN_PARTS = [
    *"()|.+*?[]{},-\\a",
    *["(?>", "(?:", "(?i:", "(?i)", "(?P<x>", "(?<=", "(?=", "\\p{Han}", "\\x{41}", "\\d"],
    *["\\.", "\\1", "++", "{2,}", "[^<]"],
]


@settings(max_examples=2000, deadline=None, database=None, derandomize=True)
@given(st.lists(st.sampled_from(PATTERN_PARTS), max_size=12).map("".join))
def test_any_pattern_gets_warnings_or_none_never_an_exception(pattern: str) -> None:
    for flags in (0, re.DOTALL, re.IGNORECASE):
        assert isinstance(backtracking_warnings(pattern, flags), list)


def test_scraper_check_prints_the_warning_with_file_line_and_spider(tmp_path: Path) -> None:
    (tmp_path / "spiders.yaml").write_text(
        "spiders:\n"
        "  words:\n"
        "    start: https://example.com/\n"
        "    pattern: '<p>(?P<words>(\\w+\\s?)+)</p>'\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "scraper", "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0  # a warning, not an error
    assert done.stderr.splitlines()[0] == (
        "scraper: warning: spiders.yaml:4:14: spider 'words', page 'main': pattern: nested "
        "unbounded repeats in '(\\w+\\s?)+': the inner and outer repeat can split the same text "
        "in exponentially many ways. Repeat something that cannot match what surrounds it, "
        "or bound the repeat ({1,20})."
    )


def test_scraper_check_warns_about_a_backtracking_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spiders.yaml").write_text(
        "spiders:\n"
        "  words:\n"
        "    start: https://example.com/\n"
        "    pattern: '<p>(?P<words>[^<]+)</p>'\n"
        "    skip: ['/(a+)+$']\n",
        encoding="utf-8",
    )
    assert main(["check", "-f", str(tmp_path / "spiders.yaml")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"scraper: warning: {tmp_path / 'spiders.yaml'}:2:3: spider 'words', skip filter: "
        "nested unbounded repeats in '(a+)+': the inner and outer repeat can split the same "
        "text in exponentially many ways. Repeat something that cannot match what surrounds "
        "it, or bound the repeat ({1,20})."
    )


def test_the_shipped_spiders_have_no_warnings() -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "scraper", "check"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0
    assert "warning" not in done.stderr


def test_scraper_check_warns_about_from_and_page_fields_patterns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spiders.yaml").write_text(
        "spiders:\n"
        "  jobs:\n"
        "    start: https://example.com/\n"
        "    pages:\n"
        "      search:\n"
        "        from: 'data = ((?:\\w+\\s?)+);'\n"
        "        page_fields: {pattern: '<h1>(?P<title>(a|aa)*)</h1>'}\n",
        encoding="utf-8",
    )
    assert main(["check", "-f", str(tmp_path / "spiders.yaml")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    where = f"scraper: warning: {tmp_path / 'spiders.yaml'}"
    assert [line.split(": nested")[0].split(": the repeated")[0] for line in warnings] == [
        f"{where}:6:15: spider 'jobs', page 'search': from",
        f"{where}:7:32: spider 'jobs', page 'search': page_fields",
    ]
