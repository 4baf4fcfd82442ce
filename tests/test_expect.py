"""``expect:`` (scraper/expect.py): what ``scraper test`` says when a sample matches no record.

The releases page below is served by a FixtureSite; spiders crawl it with the
``ExpectationCheck`` as their sink, as ``scraper test`` does, and one test goes
through ``scraper run --record`` and ``scraper test`` as a user does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from scraper.cli import main
from scraper.crawler import run_spider
from scraper.expect import ExpectationCheck
from tests.server import FixtureSite
from tests.test_crawl import make_spider

RELEASES = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Releases</title></head><body>
<tr><td>scraper</td><td>0.1</td><td>yes</td></tr>
<tr><td>scraper</td><td>0.2</td><td>no</td></tr>
</body></html>
"""

SPIDER = r"""
spiders:
  test:
    start: SITE/releases
    pattern: '<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>'
    fields: [name, version, stable]
    clean: {stable: {sub: ['yes', '1']}}
    expect:
      sample: SAMPLE
"""


def problems(site: FixtureSite, sample: str, clean: str = "") -> list[str]:
    """What ``scraper test`` would list for the releases page and ``expect: sample``."""
    site.add("/releases", RELEASES)
    text = SPIDER.replace("SAMPLE", sample)
    if clean:
        text = text.replace("{stable: {sub: ['yes', '1']}}", clean)
    spider = make_spider(site, text)
    check = ExpectationCheck(spider.expect)
    stats, _ = run_spider(spider, check)
    return check.problems(stats)


def test_a_number_in_the_sample_does_not_match_the_same_text_and_says_so(
    site: FixtureSite,
) -> None:
    # YAML reads 0.1 as a number; the record has the text the page shows
    assert problems(site, "{name: scraper, version: 0.1}") == [
        'no record matches sample 1 {"name": "scraper", "version": 0.1}; the closest, '
        'record 1, has version "0.1" (text), not 0.1 (a number: quote it in the sample '
        "to expect text)"
    ]


def test_the_quoted_sample_matches(site: FixtureSite) -> None:
    assert problems(site, "{name: scraper, version: '0.1'}") == []


def test_a_value_of_the_same_kind_is_shown_as_json(site: FixtureSite) -> None:
    assert problems(site, "[{version: '0.2'}, {name: scrapper, version: '0.3'}]") == [
        'no record matches sample 2 {"name": "scrapper", "version": "0.3"}; the closest, '
        'record 1, has name "scraper", not "scrapper"; version "0.1", not "0.3"'
    ]


def test_the_closest_record_is_the_one_with_most_fields_alike(site: FixtureSite) -> None:
    assert problems(site, "{version: '0.2', stable: 'yes'}") == [
        'no record matches sample 1 {"version": "0.2", "stable": "yes"}; the closest, '
        'record 2, has stable "no", not "yes"'
    ]


def test_a_field_the_records_do_not_have_is_named(site: FixtureSite) -> None:
    assert problems(site, "{version: '0.1', date: '2024-01-01'}") == [
        'no record matches sample 1 {"version": "0.1", "date": "2024-01-01"}; the closest, '
        "record 1, has no field 'date'"
    ]


def test_true_is_not_1_and_1_is_1_0(site: FixtureSite) -> None:
    # JSON shows 1 and true apart, as Python's == does not; 1 and 1.0 are one number
    int_clean = "{stable: [{sub: ['yes', '1']}, {sub: ['no', '0']}, int]}"
    assert problems(site, "{version: '0.1', stable: 1.0}", int_clean) == []
    assert problems(site, "{version: '0.1', stable: true}", int_clean) == [
        'no record matches sample 1 {"version": "0.1", "stable": true}; the closest, '
        "record 1, has stable 1 (a number), not true (true/false)"
    ]


def test_a_sample_when_there_are_no_records(site: FixtureSite) -> None:
    site.add("/releases", "<p>moved</p>")
    spider = make_spider(site, SPIDER.replace("SAMPLE", "{version: '0.1'}"))
    check = ExpectationCheck(spider.expect)
    stats, _ = run_spider(spider, check)
    assert check.problems(stats)[1] == (
        'no record matches sample 1 {"version": "0.1"}: there are no records'
    )


def test_scraper_test_names_the_field_and_the_kinds(
    tmp_path: Path,
    site: FixtureSite,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site.add("/releases", RELEASES)
    spider_file = tmp_path / "spiders.yaml"
    spider_file.write_text(
        SPIDER.replace("SITE", site.base).replace("SAMPLE", "{version: 0.1}"), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", "test", "--record", "-o", "live.jsonl", "-q"]) == 0
    site.stop()
    assert main(["test"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "FAIL  test  2 records, 1 pages",
        '            - no record matches sample 1 {"version": 0.1}; the closest, record 1, '
        'has version "0.1" (text), not 0.1 (a number: quote it in the sample to expect text)',
        "0 passed, 1 failed, 0 skipped",
    ]
    # the replay's warnings were silenced for the table only, not for what runs next
    assert logging.getLogger("scraper").level == logging.WARNING
