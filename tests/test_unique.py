"""Duplicates: ``unique:`` drops records written before; one URL may be two page kinds.

Against the local test server, as a user runs it: ``scraper.cli.main`` for what the
summary says and the exit status, ``Crawler`` for exact stats. ``SITE`` in the YAML
stands for the server's base URL.
"""

from __future__ import annotations

import json
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scraper.cli import main
from scraper.errors import SpecError
from scraper.frontier import record_key
from scraper.models import Page
from scraper.spec import parse_spiders
from tests.server import FixtureSite
from tests.test_crawl import crawl, make_spider, page_requests, read_records
from tests.test_crawl_hostile import write_project

# A meeting calendar: the 3 March meeting is listed twice (agenda and minutes rows).
CALENDAR = """<table>
<tr><td>2024-03-01</td><td>Budget committee</td><td>Room 4</td></tr>
<tr><td>2024-03-03</td><td>Council</td><td>Hall</td></tr>
<tr><td>2024-03-03</td><td>Council</td><td>Hall</td></tr>
<tr><td>2024-03-07</td><td>Planning</td><td>Room 2</td></tr>
</table>"""
ROW = r"'<tr><td>(?P<date>[^<]+)</td><td>(?P<title>[^<]+)</td><td>(?P<room>[^<]+)</td></tr>'"


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, Any]], str]:
    """``scraper run calendar -o out.jsonl ARGS``: exit status, records, stderr."""
    status = main(["run", "calendar", "-o", "out.jsonl", *args])
    return status, read_records(tmp_path / "out.jsonl"), capsys.readouterr().err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- unique: ---------------------------------------------------------------------------------


def test_a_repeated_calendar_row_is_written_once_and_counted_as_duplicate(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/calendar", CALENDAR)
    write_project(
        project,
        site,
        f"""
        spiders:
          calendar:
            start: SITE/calendar
            pattern: {ROW}
            unique: [date, title]
        """,
    )
    status, records, err = run(project, capsys)
    assert status == 0
    assert records == [
        {"date": "2024-03-01", "title": "Budget committee", "room": "Room 4"},
        {"date": "2024-03-03", "title": "Council", "room": "Hall"},
        {"date": "2024-03-07", "title": "Planning", "room": "Room 2"},
    ]
    assert "records written: 3\n" in err
    assert "records dropped: 1 (duplicate: 1)\n" in err


def test_unique_holds_across_pages_and_page_kinds_and_a_page_kind_s_own_wins(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/march", CALENDAR + '<a href="/april">next</a> <a href="/agenda">agenda</a>')
    site.add("/april", CALENDAR.replace("2024-03-01", "2024-04-01"))
    site.add("/agenda", "<li>2024-03-07 Planning</li><li>2024-03-08 Planning</li>")
    spider = make_spider(
        site,
        f"""
        spiders:
          test:
            start: SITE/march
            unique: [date, title]
            pages:
              month:
                pattern: {ROW}
                follow:
                  - {{pattern: 'href="(/april)"', to: month}}
                  - {{pattern: 'href="(/agenda)"', to: agenda}}
              agenda:
                pattern: '<li>(?P<date>\\S+) (?P<title>[^<]+)</li>'
              rooms:
                pattern: {ROW}
                unique: room
        """,
    )
    stats, records = crawl(spider, tmp_path)
    # April repeats March but for its first row; the agenda's 7 March meeting was written
    # by a page of another kind, with the same values of the same fields.
    assert sorted((r["date"], r["title"]) for r in records) == [
        ("2024-03-01", "Budget committee"),
        ("2024-03-03", "Council"),
        ("2024-03-07", "Planning"),
        ("2024-03-08", "Planning"),
        ("2024-04-01", "Budget committee"),
    ]
    assert stats.dropped == {"duplicate": 1 + 3 + 1}
    assert (stats.pages, stats.records) == (3, 5)


def test_unique_compares_values_as_json_and_null_is_a_value(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/", "<p>any</p>")

    def values(page: Page) -> Iterator[dict[str, Any]]:
        yield from [
            {"id": 1, "n": 0},
            {"id": "1", "n": 1},  # a string is not the number
            {"id": 1.0, "n": 2},  # written 1.0, not 1
            {"id": 1, "n": 3},  # duplicate
            {"id": [1, {"a": 1, "b": 2}], "n": 4},
            {"id": [1, {"b": 2, "a": 1}], "n": 5},  # the same object: duplicate
            {"id": None, "n": 6},
            {"n": 7},  # no id: null, a duplicate of the one before
            {"id": "\udc80", "n": 8},  # dropped before, as not JSON
        ]

    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: SITE/
            callback: 'spiders.test:values'
            unique: id
        """,
    )
    stats, records = crawl(spider, tmp_path, callbacks={"main": values})
    assert [r["n"] for r in records] == [0, 1, 2, 4, 6]
    assert stats.dropped == {"duplicate": 3, "id: not JSON (lone surrogate)": 1}
    assert record_key({"id": 1}, ("id",)) != record_key({"id": 1}, ("key",))  # names count


def test_unique_is_kept_across_resumed_runs(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/march", CALENDAR + '<a href="/march-2">more</a>')
    site.add_fault("/march-2", "status", status=500)
    write_project(
        project,
        site,
        f"""
        spiders:
          calendar:
            start: SITE/march
            retries: 0
            unique: [date, title]
            pages:
              month:
                pattern: {ROW}
                follow: [{{pattern: 'href="(/march-\\d)"', to: month}}]
        """,
    )
    status, records, err = run(project, capsys, "--resume")
    assert status == 1  # /march-2 failed
    assert len(records) == 3
    assert "records dropped: 1 (duplicate: 1)\n" in err

    # The site is mended; the resumed run fetches /march-2 again, which repeats March.
    site.add("/march-2", CALENDAR.replace("2024-03-01", "2024-03-02"))
    status, records, err = run(project, capsys, "--resume")
    assert status == 0
    assert [r["date"] for r in records] == ["2024-03-01", "2024-03-03", "2024-03-07", "2024-03-02"]
    assert "records written: 1\n" in err
    assert "records dropped: 3 (duplicate: 3)\n" in err
    assert site.count("/march") == 1 and site.count("/march-2") == 2


def test_a_kept_key_costs_under_100_bytes_of_memory() -> None:
    from scraper.frontier import UniqueRecords
    from scraper.stats import CrawlStats

    spider = parse_spiders(
        "spiders:\n  s:\n    start: http://a.example/\n    pattern: (?P<id>x)\n    unique: id\n"
    ).get("s")
    unique = UniqueRecords(spider, CrawlStats())
    records = [{"id": n} for n in range(200_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = unique.keep(records, "main")
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == 200_000
    per_key = (after - before - kept.__sizeof__()) / 200_000
    assert per_key < 100, per_key


# -- check: unique fields a page kind does not produce ---------------------------------------


def check_error(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spiders(textwrap.dedent(text).lstrip(), "spiders.yaml")
    return str(caught.value)


def test_a_unique_field_a_page_kind_does_not_produce_is_an_error_at_its_place() -> None:
    assert check_error(
        f"""
        spiders:
          calendar:
            start: http://a.example/
            pattern: {ROW}
            unique: [date, titel]
        """
    ) == (
        "spiders.yaml:5:20: spider 'calendar': unique names field 'titel', which its records "
        "do not have (they have: date, title, room) (did you mean 'title'?)."
    )
    assert check_error(
        f"""
        spiders:
          calendar:
            start: http://a.example/
            unique: [date]
            pages:
              month:
                pattern: {ROW}
                follow: [{{pattern: 'href="(?P<url>[^"]+)"', to: day}}]
              day:
                pattern: '<h1>(?P<title>[^<]+)</h1>'
        """
    ) == (
        "spiders.yaml:4:14: spider 'calendar': unique names field 'date', which the records "
        "of page kind 'day' do not have (they have: title)."
    )
    assert check_error(
        f"""
        spiders:
          calendar:
            start: http://a.example/
            pages:
              month:
                pattern: {ROW}
                unique: [date, rooms]
        """
    ) == (
        "spiders.yaml:7:24: spider 'calendar', page 'month': unique names field 'rooms', "
        "which its records do not have (they have: date, title, room) (did you mean 'room'?)."
    )
    assert check_error(
        """
        spiders:
          calendar:
            start: http://a.example/
            pages:
              month:
                follow: [{pattern: 'href="(?P<url>[^"]+)"', to: month}]
                unique: date
        """
    ) == (
        "spiders.yaml:7:17: spider 'calendar', page 'month': unique: the page kind writes no "
        "records (it has no pattern and no JSON fields); remove unique here."
    )
    assert (
        check_error(
            f"""
        spiders:
          calendar:
            start: http://a.example/
            pattern: {ROW}
            unique: [date, date]
        """
        )
        == "spiders.yaml:5:20: spider 'calendar': unique names 'date' twice; keep one."
    )
    assert check_error(
        f"""
        spiders:
          calendar:
            start: http://a.example/
            pattern: {ROW}
            unique: {{date: 1}}
        """
    ) == (
        "spiders.yaml:5:13: each entry of spider 'calendar': unique must be a string, "
        "not a mapping."
    )


def test_unique_may_name_carried_fields_constants_and_the_url_field() -> None:
    spider = parse_spiders(
        textwrap.dedent(
            """
            spiders:
              calendar:
                start: http://a.example/
                constants: {source: city}
                url_field: url
                unique: [source, url, title]
                pages:
                  month:
                    follow: [{pattern: 'href="(?P<url>[^"]+)" title="(?P<title>[^"]+)"', to: day}]
                    unique: []
                  day:
                    follow: [{pattern: 'href="(?P<url>[^"]+)"', to: minutes}]
                    pattern: '<h1>(?P<date>[^<]+)</h1>'
                  minutes:
                    pattern: '<h1>(?P<_date>[^<]+)</h1>'
            """
        )
    ).get("calendar")
    assert spider.unique == ("source", "url", "title")
    assert [spider.pages[k].unique for k in spider.pages] == [(), None, None]


# -- one URL as two page kinds -----------------------------------------------------------------


def test_one_url_sent_to_two_page_kinds_is_fetched_for_each(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/calendar", CALENDAR + '<p class="count">4 meetings</p><a href="/calendar">me</a>')
    write_project(
        project,
        site,
        f"""
        spiders:
          calendar:
            start:
              - SITE/calendar
              - {{url: SITE/calendar, page: summary}}
            robots: false
            pages:
              meetings:
                pattern: {ROW}
                follow: [{{pattern: 'href="([^"]+)">me<', to: summary}}]
              summary:
                pattern: '<p class="count">(?P<meetings>\\d+) meetings</p>'
                follow: [{{pattern: 'href="([^"]+)">me<', to: meetings}}]
        """,
    )
    status, records, err = run(project, capsys)
    assert status == 0
    assert sorted(map(json.dumps, records)) == sorted(
        map(
            json.dumps,
            [
                {"date": "2024-03-01", "title": "Budget committee", "room": "Room 4"},
                {"date": "2024-03-03", "title": "Council", "room": "Hall"},
                {"date": "2024-03-03", "title": "Council", "room": "Hall"},
                {"date": "2024-03-07", "title": "Planning", "room": "Room 2"},
                {"meetings": "4"},
            ],
        )
    )
    assert len(page_requests(site)) == 2  # once per page kind
    assert "pages fetched:   2\n" in err
    # Each page links to itself as the other kind: admitted already.
    assert "links skipped:   2 (already seen: 2)\n" in err


def test_links_already_seen_are_counted_but_not_a_resumed_run_s_start_urls(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    links = "".join(f'<a href="/day/{d}">{d}</a>' for d in (1, 2, 1, 3, 2, 1))
    site.add("/calendar", links)
    for day in (1, 2, 3):
        site.add(f"/day/{day}", f'<h1>Day {day}</h1><a href="/calendar">back</a>')
    write_project(
        project,
        site,
        """
        spiders:
          calendar:
            start: [SITE/calendar, SITE/calendar]
            robots: false
            pages:
              month:
                follow: [{pattern: 'href="(/day/\\d)"', to: day}]
              day:
                pattern: '<h1>(?P<title>[^<]+)</h1>'
                follow: [{pattern: 'href="(/calendar)"', to: month}]
        """,
    )
    status, records, err = run(project, capsys, "--resume")
    assert status == 0
    assert sorted(r["title"] for r in records) == ["Day 1", "Day 2", "Day 3"]
    # 3 repeated links on the calendar, 3 links back to it, 1 repeated start URL
    assert "links skipped:   7 (already seen: 7)\n" in err
    assert len(page_requests(site)) == 4

    status, records, err = run(project, capsys, "--resume")
    assert (status, len(records)) == (0, 3)
    assert "links skipped" not in err
    assert len(page_requests(site)) == 4
