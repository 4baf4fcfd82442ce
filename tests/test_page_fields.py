"""Values stated once per page (``page_fields:``) and per page kind (``constants:``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scraper.cli import main
from scraper.errors import SpecError
from scraper.spec import parse_spiders
from tests.server import FixtureSite
from tests.test_cli import write_spiders
from tests.test_crawl import crawl, make_spider

# A council's meeting calendar: the place and the year are stated once, at the top;
# each row is one meeting.
CALENDAR = """<!DOCTYPE html>
<html><head><title>Meetings - Planning Committee</title></head><body>
<h1>Planning Committee</h1>
<p class="venue">Venue: <b>City Hall,  Room 2</b></p>
<h2>{year}</h2>
<table>
<tr><td class="date">03-01</td><td class="what">Budget</td></tr>
<tr><td class="date">03-15</td><td class="what">Housing</td></tr>
</table>
</body></html>
"""

CALENDAR_SPIDER = r"""
spiders:
  test:
    start: SITE/meetings
    constants: {source: council, kind: meeting}
    pages:
      calendar:
        pattern: '<td class="date">(?P<date>[^<]+)</td><td class="what">(?P<topic>[^<]+)</td>'
        page_fields:
          pattern: '<title>Meetings - (?P<committee>[^<]+)</title>.*?Venue:
            <b>(?P<venue>[^<]+)</b>.*?<h2>(?P<year>\d{4})</h2>'  # the line break reads as a space
          flags: [DOTALL]
          clean: {venue: text, year: int}
        constants: {kind: committee meeting}
"""


def test_values_stated_once_are_added_to_every_record_of_the_page(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/meetings", CALENDAR.format(year=2024))
    stats, records = crawl(make_spider(site, CALENDAR_SPIDER), tmp_path)
    assert records == [
        {
            "committee": "Planning Committee",
            "venue": "City Hall, Room 2",
            "year": 2024,
            "date": "03-01",
            "topic": "Budget",
            "source": "council",
            "kind": "committee meeting",  # the page kind's constant over the spider's
        },
        {
            "committee": "Planning Committee",
            "venue": "City Hall, Room 2",
            "year": 2024,
            "date": "03-15",
            "topic": "Housing",
            "source": "council",
            "kind": "committee meeting",
        },
    ]
    assert (stats.pages, stats.failures) == (1, 0)


def test_page_fields_that_do_not_match_are_null_and_said_at_v(
    site: FixtureSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site.add("/meetings", CALENDAR.format(year="to be announced"))
    write_spiders(tmp_path, site, CALENDAR_SPIDER)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "test", "-o", "out.jsonl", "-v"]) == 0
    err = capsys.readouterr().err
    assert (
        f"scraper: INFO: page_fields: no match on {site.url('/meetings')}, so its fields are null\n"
    ) in err
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == (
        '{"committee": null, "venue": null, "year": null, "date": "03-01", '
        '"topic": "Budget", "source": "council", "kind": "committee meeting"}'
    )


CLASH_SPIDER = r"""
spiders:
  test:
    start: SITE/list
    pages:
      list:
        pattern: '<li>(?P<title>[^<]+)</li>'
        follow:
          - {pattern: '<a href="(?P<url>[^"]+)">(?P<category>[^<]+)</a>', to: films}
      films:
        pattern: '<li(?: data-category="(?P<category>[^"]*)")?>(?P<title>[^<]+)</li>'
        page_fields:
          pattern: '<h1>(?P<category>[^<]+)</h1>(?:<p>(?P<title>[^<]+)</p>)?'
"""


def test_a_records_own_fields_win_and_page_fields_win_over_carried_ones(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/list", '<a href="/films">Carried</a>')
    site.add(
        "/films",
        '<h1>Drama</h1><p>Page title</p><li data-category="Own">Spring</li><li>Summer</li>',
    )
    _, records = crawl(make_spider(site, CLASH_SPIDER), tmp_path)
    assert records == [
        {"category": "Own", "title": "Spring"},
        # A group that did not take part gives null, and null is the record's own value.
        {"category": None, "title": "Summer"},
    ]


def test_a_page_field_that_is_required_drops_every_record_of_a_page_without_it(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/a", "<h2>2023</h2><li>x</li><li>y</li>")
    site.add("/b", "<h2>soon</h2><li>z</li>")
    spider = make_spider(
        site,
        r"""
        spiders:
          test:
            start: [SITE/a, SITE/b]
            pattern: '<li>(?P<item>[^<]+)</li>'
            page_fields: {pattern: '<h2>(?P<year>\d{4})</h2>', clean: {year: [required, int]}}
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert records == [{"year": 2023, "item": "x"}, {"year": 2023, "item": "y"}]
    assert dict(stats.dropped) == {"year: missing": 1}


def test_page_fields_and_constants_on_a_json_page_kind(site: FixtureSite, tmp_path: Path) -> None:
    site.add(
        "/api",
        '{"updated": "2024-05-01", "rows": [{"n": 1}, {"n": 2}]}',
        content_type="application/json",
    )
    spider = make_spider(
        site,
        r"""
        spiders:
          test:
            start: SITE/api
            url_field: url
            pages:
              api:
                items: rows
                fields: {n: n}
                page_fields: {pattern: '"updated": "(?P<updated>[^"]+)"'}
                constants: {source: api}
        """,
    )
    _, records = crawl(spider, tmp_path)
    url = site.url("/api")
    assert records == [
        {"updated": "2024-05-01", "n": 1, "source": "api", "url": url},
        {"updated": "2024-05-01", "n": 2, "source": "api", "url": url},
    ]


def test_constants_of_one_page_kind_stay_on_it(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/a", '<li>x</li><a href="/b">b</a>')
    site.add("/b", "<li>y</li>")
    spider = make_spider(
        site,
        r"""
        spiders:
          test:
            start: SITE/a
            constants: {site: demo}
            pages:
              index:
                pattern: '<li>(?P<item>[^<]+)</li>'
                constants: {level: index, site: overridden}
                follow: [{pattern: 'href="([^"]+)"', to: detail}]
              detail:
                pattern: '<li>(?P<item>[^<]+)</li>'
        """,
    )
    _, records = crawl(spider, tmp_path)
    assert records == [
        {"item": "x", "site": "overridden", "level": "index"},
        {"item": "y", "site": "demo"},
    ]


def spec_error(page: str) -> str:
    """The error loading a spider whose one page kind ``main`` has the keys ``page``."""
    text = "spiders:\n  test:\n    start: https://a.example/\n    pages:\n      main:\n" + "".join(
        f"        {line}\n" for line in page.splitlines()
    )
    with pytest.raises(SpecError) as error:
        parse_spiders(text, "spiders.yaml")
    return str(error.value)


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (
            "pattern: '<li>(?P<a>.*?)</li>'\npage_fields: {clean: {y: int}}",
            "spiders.yaml:7:22: spider 'test', page 'main': page_fields needs 'pattern:', run "
            "once on the page, whose named groups are the fields: "
            "{pattern: '<h2>(?P<year>\\d{4})</h2>'}.",
        ),
        (
            "pattern: '<li>(?P<a>.*?)</li>'\npage_fields: {patern: '<h2>'}",
            "spiders.yaml:7:23: unknown key 'patern' in spider 'test', page 'main': "
            "page_fields; did you mean 'pattern'?",
        ),
        (
            "pattern: '<li>(?P<a>.*?)</li>'\npage_fields: {pattern: '<h2>(\\d+)</h2>'}",
            "spiders.yaml:7:32: spider 'test', page 'main': page_fields: the pattern has no named "
            "group; name each value it adds to the records: (?P<name>...).",
        ),
        (
            "pattern: '<li>(?P<a>.*?)</li>'\n"
            "page_fields: {pattern: '<h2>(?P<year>\\d+)</h2>', clean: {yaer: int}}",
            "spiders.yaml:7:66: spider 'test', page 'main': page_fields: clean names 'yaer', "
            "which the pattern does not capture (it captures: year) (did you mean 'year'?).",
        ),
        (
            "pattern: '<li>(?P<a>.*?)</li>'\npage_fields: {pattern: '<h2>(?P<y>[0-9+</h2>'}",
            "spiders.yaml:7:53: spider 'test', page 'main': page_fields: pattern is not a valid "
            "regular expression: unterminated character set at position 20.\n"
            "    <h2>(?P<y>[0-9+</h2>\n"
            "                        ^\n"
            "Fix the pattern there (in single quotes YAML keeps backslashes as they are; double "
            "quotes need them doubled).",
        ),
        (
            "pattern: '<li>(?P<a>.*?)</li>'\nconstants: {raw: !!binary aGk=}",
            "spiders.yaml:7:26: spider 'test', page 'main': constants: raw: a !!binary value "
            "cannot be written into a JSON record; remove the tag to keep it as text.",
        ),
        (
            "pattern: '<li>(?P<a>.*?)</li>'\nconstans: {a: 1}",
            "spiders.yaml:7:9: unknown key 'constans' in spider 'test', page 'main'; did you "
            "mean 'constants'?",
        ),
    ],
    ids=[
        "no-pattern",
        "unknown-key",
        "no-named-group",
        "clean-unknown-name",
        "bad-pattern",
        "binary-constant",
        "constants-typo",
    ],
)
def test_spider_file_errors(page: str, message: str) -> None:
    assert spec_error(page) == message
