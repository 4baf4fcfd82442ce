"""The command line (scraper/cli.py) as a user drives it: verbs, output streams, exit codes.

Runs that need real stdout/stderr, exit codes or signals go through a subprocess
(``python -m scraper`` in ``tmp_path``); the rest call ``scraper.cli.main`` in-process.
``SITE`` in a spider file stands for the test server's base URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from scraper.cli import main
from tests.server import FixtureSite

ROOT = Path(__file__).resolve().parents[1]
# Subprocesses import this checkout, whatever the environment's install of scraper is.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}

FILMS = [("海镇来客", 9.7), ("星港谣", 9.6), ("风桥之约", 9.5)]

SPIDERS = r"""
spiders:
  films:
    description: Films of the demo board, one record per film
    start: SITE/board?page={n}
    vars:
      n: {range: [1, 4]}
    pattern: '<span class="name">(?P<title>[^<]*)</span>\s*<b>(?P<score>[\d.]+)</b>'
    clean:
      score: float
    url_field: url
    expect:
      min_records: 9
      max_records: 9
      required: [title, score]
      sample: {title: 海镇来客, score: 9.7}

  notes:
    description: A second spider, to check the listing order
    start: SITE/notes
    pattern: '<p>(?P<note>[^<]*)</p>'
"""


def film_page(page: int) -> str:
    """A board page of three films, titled in Chinese, page number in the title."""
    items = "\n".join(
        f'<li class="film"><span class="name">{title}</span> <b>{score}</b></li>'
        for title, score in FILMS
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Board {page}</title></head>\n'
        f"<body><ul>\n{items}\n</ul></body></html>\n"
    )


def write_spiders(
    folder: Path, site: FixtureSite, text: str = SPIDERS, name: str = "spiders.yaml"
) -> Path:
    """Write a spider file into ``folder``, ``SITE`` replaced by the server's base URL."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip().replace("SITE", site.base), encoding="utf-8")
    return path


def serve_board(site: FixtureSite, pages: range = range(1, 4)) -> None:
    for n in pages:
        site.add(f"/board?page={n}", film_page(n))


def scraper(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m scraper ARGS`` in ``cwd``, as a user runs it; stdout and stderr apart."""
    return subprocess.run(
        [sys.executable, "-m", "scraper", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def start_scraper(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """``python -m scraper ARGS`` in ``cwd``, running in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def project(tmp_path: Path, site: FixtureSite, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current folder, with spiders.yaml pointing at a served board."""
    serve_board(site)
    site.add("/notes", "<p>one</p><p>two</p>")
    write_spiders(tmp_path, site)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- list -----------------------------------------------------------------------------------


def test_list_prints_spiders_in_file_order_with_descriptions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "films  Films of the demo board, one record per film\n"
        "notes  A second spider, to check the listing order\n"
    )


def test_list_reads_the_file_named_after_the_verb(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    other = """
    spiders:
      zeta:
        description: Last in the alphabet, first in the file
        start: SITE/z
        pattern: z
      alpha:
        start: SITE/a
        pattern: a
    """
    write_spiders(project, site, other, name="other.yaml")
    assert main(["list", "-f", "other.yaml"]) == 0
    assert capsys.readouterr().out == ("zeta   Last in the alphabet, first in the file\nalpha\n")


def test_python_dash_m_scraper_works_the_same(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list"]) == 0
    in_process = capsys.readouterr().out
    result = scraper("list", cwd=project)
    assert (result.returncode, result.stdout, result.stderr) == (0, in_process, "")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: scraper" in err
    for command in ("list", "check", "run", "try", "test"):
        assert command in err


# -- check ----------------------------------------------------------------------------------


def test_check_prints_ok_per_spider(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert capsys.readouterr().err == (
        "ok  films: 3 start URL(s), 1 page kind(s)\nok  notes: 1 start URL(s), 1 page kind(s)\n"
    )


def test_check_a_broken_file_exits_2_naming_file_line_and_column(
    tmp_path: Path, site: FixtureSite
) -> None:
    broken = """
    spiders:
      films:
        start: SITE/board
        pattren: '<li>(?P<title>[^<]*)</li>'
    """
    write_spiders(tmp_path, site, broken)
    result = scraper("check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "scraper: error: spiders.yaml:4:5: unknown key 'pattren' in spider 'films'; "
        "did you mean 'pattern'?\n"
    )
    assert "Traceback" not in result.stderr


def test_check_a_bad_pattern_exits_2(
    tmp_path: Path,
    site: FixtureSite,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = """
    spiders:
      films:
        start: SITE/board
        pattern: '<li>(?P<title>[^<]*</li>'
    """
    write_spiders(tmp_path, site, bad)
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scraper: error: spiders.yaml:4:")
    assert "Traceback" not in err


def test_run_an_unknown_spider_exits_2_with_a_suggestion(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "flims"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: no spider named 'flims' in spiders.yaml (it defines: films, notes); "
        "did you mean 'films'?\n"
    )


def test_a_missing_spider_file_exits_2_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "films"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: spiders.yaml: no such file. Create it (see README.md, 'Spider format') "
        "or point to another with --file PATH.\n"
    )


def test_check_a_callback_in_a_missing_module_exits_2(
    tmp_path: Path,
    site: FixtureSite,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spiders = """
    spiders:
      films:
        start: SITE/board
        callback: spiders.nowhere_to_be_found:parse
    """
    write_spiders(tmp_path, site, spiders)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the import puts tmp_path first
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "scraper: error: spiders.yaml:2:3: spider 'films': callback "
        "'spiders.nowhere_to_be_found:parse': there is no module 'spiders.nowhere_to_be_found' "
        f"(looked in {tmp_path.resolve()}); create spiders/nowhere_to_be_found.py there.\n"
    )


# -- run ------------------------------------------------------------------------------------


def test_run_writes_json_lines_to_stdout_and_the_summary_to_stderr(
    project: Path, site: FixtureSite
) -> None:
    result = scraper("run", "films", cwd=project)
    assert result.returncode == 0, result.stderr
    records = jsonl(result.stdout)
    assert len(records) == 9
    assert {r["url"] for r in records} == {site.url(f"/board?page={n}") for n in (1, 2, 3)}
    assert sorted(r["title"] for r in records[:3]) == sorted(title for title, _ in FILMS)
    # UTF-8, not \u escapes: Chinese stays Chinese on the wire.
    assert '"title": "海镇来客"' in result.stdout
    assert "\\u" not in result.stdout
    assert "pages fetched:   3" in result.stderr
    assert "records written: 9" in result.stderr
    assert "pages failed:    0" in result.stderr
    assert "{" not in result.stderr  # no record leaked into the log stream


def test_run_with_output_writes_the_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "films", "-o", "out.jsonl"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "records written: 9" in captured.err
    records = jsonl((project / "out.jsonl").read_text(encoding="utf-8"))
    assert len(records) == 9
    assert {"title": "海镇来客", "score": 9.7} in [
        {"title": r["title"], "score": r["score"]} for r in records
    ]


def test_run_quiet_prints_no_summary(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "films", "-o", "out.jsonl", "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert len(jsonl((project / "out.jsonl").read_text(encoding="utf-8"))) == 9


def test_a_failed_page_makes_exit_code_1_and_is_logged_with_its_url(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/board?page=2", "<h1>gone</h1>", status=404)
    assert main(["run", "films", "-o", "out.jsonl"]) == 1
    err = capsys.readouterr().err
    assert f"scraper: WARNING: failed {site.url('/board?page=2')}: answered 404\n" in err
    assert "pages failed:    1 (http 404: 1)" in err
    assert "records written: 6" in err
    assert len(jsonl((project / "out.jsonl").read_text(encoding="utf-8"))) == 6


def test_quiet_still_names_the_pages_that_failed(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    """-q drops the summary, not the reason for exit code 1 (README: "errors only")."""
    site.add("/board?page=2", "<h1>gone</h1>", status=404)
    assert main(["run", "films", "-o", "out.jsonl", "-q"]) == 1
    err = capsys.readouterr().err
    assert site.url("/board?page=2") in err
    assert "pages fetched:" not in err


def test_verbose_help_says_what_it_logs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert (
        "-v, --verbose log more on stderr (INFO lines): pages where the pattern matched "
        "nothing, links robots.txt refused, robots.txt files that could not be read, the "
        "traceback of an internal error, where --resume starts from; not every page"
    ) in " ".join(capsys.readouterr().out.split())


def test_verbose_logs_pages_without_a_match_and_robots_refusals_not_every_page(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /board?page=3\n", content_type="text/plain")
    site.add("/board?page=2", "<h1>Closed for the holidays</h1>")
    assert main(["run", "films", "-o", "out.jsonl", "-q", "-v"]) == 0
    # pages are fetched in parallel: the lines come in either order
    assert sorted(capsys.readouterr().err.splitlines()) == [
        f"scraper: INFO: no match on {site.url('/board?page=2')} (page kind 'main')",
        f"scraper: INFO: not fetching {site.url('/board?page=3')}: disallowed by robots.txt",
    ]


def test_resuming_a_finished_crawl_is_said_at_info_and_fetches_nothing(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "films", "-o", "out.jsonl", "-q", "--resume"]) == 0
    fetched = len(site.requests)
    assert main(["run", "films", "-o", "out.jsonl", "-q", "--resume"]) == 0
    assert capsys.readouterr().err == ""  # normal use of --resume: no warning
    assert main(["run", "films", "-o", "out.jsonl", "-q", "--resume", "-v"]) == 0
    assert capsys.readouterr().err == (
        "scraper: INFO: resuming from out.jsonl.state: 3 pages done, none pending or failed; "
        "only start URLs not requested yet are fetched (none, if the crawl had finished)\n"
    )
    assert len(site.requests) == fetched
    assert len(jsonl((project / "out.jsonl").read_text(encoding="utf-8"))) == 9


def test_resuming_says_how_many_pages_are_done_and_left(
    project: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/board?page=2", "<h1>gone</h1>", status=404)
    assert main(["run", "films", "-o", "out.jsonl", "-q", "--resume"]) == 1
    capsys.readouterr()
    serve_board(site, range(2, 3))
    assert main(["run", "films", "-o", "out.jsonl", "-q", "--resume", "-v"]) == 0
    assert capsys.readouterr().err == (
        "scraper: INFO: resuming from out.jsonl.state: 2 pages done, 1 to fetch (pending or "
        "failed), then any start URL not requested yet\n"
        f"scraper: INFO: no robots.txt rules from {site.url('/robots.txt')} (http 404): "
        "all allowed\n"
    )
    assert len(jsonl((project / "out.jsonl").read_text(encoding="utf-8"))) == 9


def test_an_unwritable_output_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "films", "-o", "no/such/folder/out.jsonl"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scraper: error: cannot write the output no/such/folder/out.jsonl:")


def test_a_closed_pipe_on_stdout_ends_the_run_quietly(tmp_path: Path, site: FixtureSite) -> None:
    """``scraper run NAME | head -1``: the reader goes away after one line."""
    site.hold = 0.05
    serve_board(site, range(1, 41))
    spiders = SPIDERS.replace("range: [1, 4]", "range: [1, 41]").replace(
        "description: Films", "concurrency: 2\n    description: Films"
    )
    write_spiders(tmp_path, site, spiders)
    process = start_scraper("run", "films", cwd=tmp_path)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    started = time.monotonic()
    try:
        stderr = process.stderr.read().decode("utf-8")
        returncode = process.wait(timeout=10)
    finally:
        process.kill()
    assert json.loads(first)["title"] in {title for title, _ in FILMS}
    assert "Traceback" not in stderr
    assert "Error" not in stderr
    assert returncode == 0
    assert time.monotonic() - started < 5
    assert len(site.requests) < 41  # it stopped at the broken pipe, not at the end


def stop_once_writing(
    process: subprocess.Popen[bytes], out: Path, signum: signal.Signals
) -> tuple[str, float]:
    """Send ``signum`` to ``process`` once ``out`` holds a record; its stderr, and the
    seconds it took to exit after the signal."""
    try:
        deadline = time.monotonic() + 10
        while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert out.stat().st_size, "no record was written within 10 s"
        process.send_signal(signum)
        stopping = time.monotonic()
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    return stderr.decode("utf-8"), time.monotonic() - stopping


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_ends_the_run_with_whole_lines(
    tmp_path: Path, site: FixtureSite, signum: signal.Signals, exit_code: int
) -> None:
    site.hold = 0.3
    serve_board(site, range(1, 41))
    spiders = SPIDERS.replace("range: [1, 4]", "range: [1, 41]").replace(
        "description: Films", "concurrency: 2\n    description: Films"
    )
    write_spiders(tmp_path, site, spiders)
    out = tmp_path / "out.jsonl"
    process = start_scraper("run", "films", "-o", str(out), cwd=tmp_path)
    err, took = stop_once_writing(process, out, signum)
    assert process.returncode == exit_code
    assert took < 4
    assert "Traceback" not in err
    assert "pages fetched:" in err
    assert "records written:" in err
    records = jsonl(out.read_text(encoding="utf-8"))  # every line parses
    assert 3 <= len(records) < 120
    assert len(records) % 3 == 0  # a page's records are written together or not at all
    assert len(site.requests) < 41


def test_a_python_callback_yields_records_and_requests(tmp_path: Path, site: FixtureSite) -> None:
    site.add("/start", film_page(1))
    site.add("/more", film_page(2))
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "cb.py").write_text(
        textwrap.dedent(
            """
            from scraper import Page, Request


            def parse(page: Page):
                for record in page.records:
                    yield {"title": record["title"], "stars": round(record["score"] / 2, 2)}
                if page.url.endswith("/start"):
                    yield Request(page.urljoin("/more"), page="main")
            """
        ),
        encoding="utf-8",
    )
    spiders = r"""
    spiders:
      films:
        start: SITE/start
        pattern: '<span class="name">(?P<title>[^<]*)</span>\s*<b>(?P<score>[\d.]+)</b>'
        clean: {score: float}
        callback: spiders.cb:parse
    """
    write_spiders(tmp_path, site, spiders)
    result = scraper("run", "films", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = jsonl(result.stdout)
    assert len(records) == 6
    assert {"title": "海镇来客", "stars": 4.85} in records
    assert site.count("/more") == 1
