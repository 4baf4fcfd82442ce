"""Record and replay (scraper/cassette.py) through the command line, and ``scraper test``.

Cassettes are recorded from a live FixtureSite in ``tmp_path``; the server is stopped
before replaying, so a replay that touched the network would fail.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from scraper.cli import main
from tests.server import FixtureSite
from tests.test_cli import ROOT, SPIDERS, jsonl, scraper, serve_board, write_spiders

DEFAULT_CASSETTE = Path("spiders") / "cassettes" / "films.yaml"


@pytest.fixture
def project(tmp_path: Path, site: FixtureSite, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current folder, with spiders.yaml pointing at a served board."""
    serve_board(site)
    write_spiders(tmp_path, site)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def records_of(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines file, in a stable order (pages finish in any order)."""
    records = jsonl(path.read_text(encoding="utf-8"))
    return sorted(records, key=lambda r: json.dumps(r, ensure_ascii=False, sort_keys=True))


def recorded_uris(cassette: Path) -> list[str]:
    data = yaml.safe_load(cassette.read_text(encoding="utf-8"))
    return [interaction["request"]["uri"] for interaction in data["interactions"]]


# -- record, then replay --------------------------------------------------------------------


def test_record_then_replay_offline_gives_the_same_records(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "films", "--record", "-o", "live.jsonl"]) == 0
    cassette = project / DEFAULT_CASSETTE
    assert cassette.is_file()
    assert sorted(recorded_uris(cassette)) == sorted(
        [site.url("/robots.txt")] + [site.url(f"/board?page={n}") for n in (1, 2, 3)]
    )
    site.stop()
    capsys.readouterr()

    assert main(["run", "films", "--offline", "-o", "replayed.jsonl"]) == 0
    assert "records written: 9" in capsys.readouterr().err
    live = records_of(project / "live.jsonl")
    assert len(live) == 9
    assert records_of(project / "replayed.jsonl") == live


def test_record_with_concurrency_into_a_named_cassette(
    tmp_path: Path, site: FixtureSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.hold = 0.2
    serve_board(site, range(1, 9))
    spiders = SPIDERS.replace("range: [1, 4]", "range: [1, 9]").replace(
        "description: Films", "concurrency: 4\n    description: Films"
    )
    write_spiders(tmp_path, site, spiders)
    monkeypatch.chdir(tmp_path)
    cassette = tmp_path / "elsewhere" / "board.yaml"

    assert main(["run", "films", "--record", "--cassette", str(cassette), "-o", "live.jsonl"]) == 0
    assert site.max_in_flight > 1  # recorded in parallel, not one by one
    assert not (tmp_path / DEFAULT_CASSETTE).exists()
    assert sorted(u for u in recorded_uris(cassette) if "board" in u) == sorted(
        site.url(f"/board?page={n}") for n in range(1, 9)
    )
    site.stop()

    assert main(["run", "films", "--offline", "--cassette", str(cassette), "-o", "out.jsonl"]) == 0
    assert records_of(tmp_path / "out.jsonl") == records_of(tmp_path / "live.jsonl")
    assert len(records_of(tmp_path / "out.jsonl")) == 24


def test_a_url_not_in_the_cassette_fails_that_page_naming_it(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "films", "--record", "-o", "live.jsonl", "-q"]) == 0
    site.stop()
    # The spider now starts at a fourth page, which the cassette never saw.
    write_spiders(project, site, SPIDERS.replace("range: [1, 4]", "range: [1, 5]"))
    missing = site.url("/board?page=4")

    started = time.monotonic()
    assert main(["run", "films", "--offline", "-o", "replayed.jsonl"]) == 1
    assert time.monotonic() - started < 3  # refused at once: no retries, no network
    err = capsys.readouterr().err
    assert (
        f"scraper: WARNING: failed {missing}: {missing} is not in the cassette "
        f"{DEFAULT_CASSETTE}; record it again with --record\n"
    ) in err
    assert "pages failed:    1 (not in cassette: 1)" in err
    assert len(records_of(project / "replayed.jsonl")) == 9


def test_offline_without_a_cassette_exits_2_saying_to_record_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "films", "--offline"]) == 2
    assert capsys.readouterr().err == (
        f"scraper: error: no cassette at {DEFAULT_CASSETTE}: record one first with "
        "'scraper run films --record' (needs the network), or name another with --cassette PATH.\n"
    )


def test_cassette_without_offline_or_record_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "films", "--cassette", "x.yaml"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: --cassette goes with --offline or --record.\n"
    )


# -- the shipped project --------------------------------------------------------------------


def test_scraper_test_passes_for_the_shipped_spiders() -> None:
    result = scraper("test", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["pass", "maoyan"],
        ["pass", "douban"],
        ["pass", "books"],
    ]
    assert lines[-1] == "3 passed, 0 failed, 0 skipped"
    assert "Traceback" not in result.stderr


def test_the_shipped_maoyan_spider_runs_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "maoyan.jsonl"
    assert (
        main(["run", "maoyan", "--offline", "-f", str(ROOT / "spiders.yaml"), "-o", str(out)]) == 0
    )
    records = jsonl(out.read_text(encoding="utf-8"))
    assert sorted(r["index"] for r in records) == list(range(1, 101))
    first = next(r for r in records if r["index"] == 1)
    assert first == {
        "index": 1,
        "title": "海镇来客",
        "actor": "林晚舟,苏一苇,陆素衣",
        "time": "1950-01-01(中国香港)",
        "score": 9.7,
    }
    assert "pages failed:    0" in capsys.readouterr().err


# -- scraper test: markup drift -------------------------------------------------------------


def drift(cassette: Path, edited: Path, old: str, new: str) -> None:
    """Copy ``cassette`` to ``edited`` with ``old`` replaced by ``new`` in every body."""
    data = yaml.safe_load(cassette.read_text(encoding="utf-8"))
    changed = 0
    for interaction in data["interactions"]:
        body = interaction["response"]["body"]
        if old in body["string"]:
            body["string"] = body["string"].replace(old, new)
            changed += 1
    assert changed, f"{old!r} is in no body of {cassette}"
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_scraper_test_reports_markup_drift(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "films", "--record", "-o", "live.jsonl", "-q"]) == 0
    site.stop()
    assert main(["test", "films"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "pass  films  9 records, 3 pages",
        "1 passed, 0 failed, 0 skipped",
    ]

    # The site renames a class the pattern relies on.
    drift(project / DEFAULT_CASSETTE, project / "edited.yaml", 'class="name"', 'class="title-name"')
    assert main(["test", "films", "--cassette", "edited.yaml"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "FAIL  films  0 records, 3 pages"
    assert "- expected at least 9 records, got 0" in out
    boards = "|".join(re.escape(site.url(f"/board?page={n}")) for n in (1, 2, 3))
    assert re.search(
        rf"- 3 pages where the pattern matched nothing \(page kind 'main': 3, e\.g\. ({boards})\):"
        r" has the markup changed\?",
        out,
    ), out
    assert lines[-1] == "0 passed, 1 failed, 0 skipped"


def test_scraper_test_with_a_cassette_path_that_does_not_exist_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cassette named on the command line is not skipped when it is missing: a typo
    must not turn into a passing run."""
    assert main(["test", "films", "--cassette", "typo.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scraper: error: no cassette at typo.yaml")


def test_scraper_test_skips_a_spider_without_a_cassette(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/notes", "<p>one</p><p>two</p>")
    assert main(["run", "films", "--record", "-o", "live.jsonl", "-q"]) == 0
    site.stop()
    assert not (project / "spiders" / "cassettes" / "notes.yaml").exists()

    assert main(["test"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "pass  films  9 records, 3 pages",
        "skip  notes  -",
        f"             - no cassette at {Path('spiders/cassettes/notes.yaml')}",
        "1 passed, 0 failed, 1 skipped",
    ]


def test_scraper_test_on_a_file_without_spiders_reports_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spiders.yaml").write_text("spiders: {}\n", encoding="utf-8")
    assert main(["test", "-f", str(tmp_path / "spiders.yaml")]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 passed, 0 failed, 0 skipped"]
