"""The crawl loop against hostile pages and careless callbacks: nothing ends it silently or
freezes it.

Each test runs a real crawl against the FixtureSite, in-process (``Crawler`` or
``scraper.cli.main``) or, for signals and callbacks that never return, as a real
``python -m scraper run`` process. Callbacks are modules written into ``tmp_path``,
as a user writes them beside ``spiders.yaml``; each test names its module apart,
since a module imported once stays imported.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from scraper.cli import main
from scraper.crawler import STOP_GRACE, Crawler
from scraper.models import Page
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import parse_spiders
from tests.server import FixtureSite
from tests.test_cli import ENV
from tests.test_crawl import make_spider


def numbered_site(site: FixtureSite, count: int) -> None:
    """Pages /p/0 .. /p/COUNT-1, each holding its number once."""
    for n in range(count):
        site.add(f"/p/{n}", f"<html><body><b>{n}</b></body></html>")


def write_project(
    folder: Path, site: FixtureSite, spiders: str, modules: Mapping[str, str] | None = None
) -> None:
    """``spiders.yaml`` (SITE -> the server) and callback modules in ``folder``."""
    text = textwrap.dedent(spiders).lstrip().replace("SITE", site.base)
    (folder / "spiders.yaml").write_text(text, encoding="utf-8")
    for name, source in (modules or {}).items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


def lines_of(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines output; every line must be a whole record."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# -- 1. an unexpected exception fails its page, never the crawl ------------------------------
#
# The input: a link field cleaned with `urljoin` whose value `http://[oops/` urljoin
# cannot parse raises ValueError where no one expects it (today; a named reason for it
# belongs in the processor, and would replace this input here).

BAD_LINK = "http://[oops/"


def linked_site(site: FixtureSite, count: int, bad: set[int]) -> None:
    """Pages /p/0 .. /p/COUNT-1, each with its number and a link; the ``bad`` ones'
    link cannot be parsed."""
    for n in range(count):
        link = BAD_LINK if n in bad else f"/item/{n}"
        site.add(f"/p/{n}", f'<html><body><b>{n}</b><a href="{link}">item</a></body></html>')


LINKS_300 = """
spiders:
  numbers:
    start: SITE/p/{n}
    vars: {n: {range: [0, 300]}}
    pattern: '<b>(?P<n>\\d+)</b><a href="(?P<link>[^"]*)">'
    clean: {n: int, link: urljoin}
"""


def test_an_unexpected_exception_fails_its_page_and_the_crawl_goes_on(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    linked_site(site, 300, bad={150})
    write_project(tmp_path, site, LINKS_300, {})
    out = tmp_path / "out.jsonl"
    code = main(["run", "numbers", "-f", str(tmp_path / "spiders.yaml"), "-o", str(out)])
    err = capsys.readouterr().err
    records = lines_of(out)
    assert code == 1
    assert len(records) == 299
    assert sorted(r["n"] for r in records) == [n for n in range(300) if n != 150]
    assert (
        f"scraper: WARNING: failed {site.url('/p/150')}: internal error: ValueError: "
        "Invalid IPv6 URL (-v shows where)\n"
    ) in err
    assert "pages failed:    1 (internal error: 1)" in err
    assert "records written: 299" in err
    assert "Traceback" not in err


def test_an_internal_error_shows_its_traceback_with_verbose(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    linked_site(site, 300, bad={150})
    write_project(tmp_path, site, LINKS_300, {})
    out = tmp_path / "out.jsonl"
    code = main(["run", "numbers", "-v", "-f", str(tmp_path / "spiders.yaml"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert len(lines_of(out)) == 299
    assert f"failed {site.url('/p/150')}: internal error: ValueError: Invalid IPv6 URL\n" in err
    assert "Traceback (most recent call last):" in err
    assert "ValueError: Invalid IPv6 URL" in err.split("Traceback (most recent call last):")[1]


def test_internal_errors_are_counted_per_page_in_the_stats(
    tmp_path: Path, site: FixtureSite
) -> None:
    """More failing pages than workers: each fails alone, no worker is lost."""
    linked_site(site, 300, bad=set(range(0, 300, 10)))
    spider = make_spider(site, LINKS_300.replace("numbers:", "test:\n    concurrency: 4"))
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    try:
        stats = asyncio.run(Crawler(spider, writer).run())
    finally:
        writer.close()
    assert len(lines_of(out)) == 270
    assert stats.failed == {"internal error": 30}
    assert (stats.pages, stats.records) == (270, 270)


def test_a_state_that_cannot_be_saved_stops_the_run_with_an_error(
    tmp_path: Path, site: FixtureSite
) -> None:
    """The state's disk fills up (here: a 256 KiB file size limit on the process)."""
    numbered_site(site, 300)
    write_project(
        tmp_path,
        site,
        """
        spiders:
          numbers:
            start: SITE/p/{n}
            vars: {n: {range: [0, 300]}}
            pattern: '<b>(?P<n>\\d+)</b>'
        """,
        {},
    )

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "scraper", "run", "numbers", "-o", str(out), "--resume"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_disk,
    )
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("scraper: error: ")
    assert f"{out}.state" in error
    assert "Traceback" not in result.stderr
    assert 0 < len(lines_of(out)) < 300


# -- 2. a callback cannot freeze the crawl -----------------------------------------------------


def test_callbacks_that_hang_fail_their_pages_and_hold_up_no_other(
    tmp_path: Path, site: FixtureSite
) -> None:
    """Four callbacks block for good: each fails at callback_timeout, all at once, while the
    other 36 pages go on; the event loop and the threads for the other pages stay free."""
    numbered_site(site, 40)
    release = threading.Event()

    def parse(page: Page) -> Iterator[dict[str, Any]]:
        if page.url.endswith(("/3", "/13", "/23", "/33")):
            release.wait(20)  # as time.sleep(1000), but let go when the test ends
        yield from page.records

    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: SITE/p/{n}
            vars: {n: {range: [0, 40]}}
            concurrency: 8
            callback_timeout: 1.5
            pattern: '<b>(?P<n>\\d+)</b>'
            callback: tests:parse
        """,
    )
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    rescue = threading.Timer(15, release.set)  # the code before this fix froze the loop
    rescue.start()
    started = time.monotonic()
    try:
        stats = asyncio.run(Crawler(spider, writer, callbacks={"main": parse}).run())
    finally:
        elapsed = time.monotonic() - started
        release.set()
        rescue.cancel()
        writer.close()
    assert sorted(int(r["n"]) for r in lines_of(out)) == [
        n for n in range(40) if n not in (3, 13, 23, 33)
    ]
    assert stats.failed == {"callback timeout": 4}
    assert elapsed < 1.5 + 1.5  # the four timed out together, not one after another


def test_a_callback_timeout_is_logged_with_the_setting_to_change(
    tmp_path: Path, site: FixtureSite, caplog: pytest.LogCaptureFixture
) -> None:
    numbered_site(site, 2)
    release = threading.Event()

    def parse(page: Page) -> Iterator[dict[str, Any]]:
        if page.url.endswith("/1"):
            release.wait(20)
        yield from page.records

    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: SITE/p/{n}
            vars: {n: {range: [0, 2]}}
            callback_timeout: 0.3
            pattern: '<b>(?P<n>\\d+)</b>'
            callback: cb:parse
        """,
    )
    writer = JsonLinesWriter(tmp_path / "out.jsonl")
    try:
        stats = asyncio.run(Crawler(spider, writer, callbacks={"main": parse}).run())
    finally:
        release.set()
        writer.close()
    assert stats.failed == {"callback timeout": 1}
    assert stats.records == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"failed {site.url('/p/1')}: callback cb:parse ran past 0.3s (callback_timeout); "
        "the page is given up and the callback left running in its thread"
    ]


def test_callback_timeout_is_a_setting_with_a_default() -> None:
    text = """
    defaults: {callback_timeout: 2.5}
    spiders:
      a: {start: 'http://a.example/', pattern: x}
      b: {start: 'http://b.example/', pattern: x, callback_timeout: 0.25}
    """
    spiders = parse_spiders(textwrap.dedent(text), "test.yaml")
    assert spiders.get("a").settings.callback_timeout == 2.5
    assert spiders.get("b").settings.callback_timeout == 0.25
    plain = parse_spiders("spiders: {c: {start: 'http://c.example/', pattern: x}}", "t.yaml")
    assert plain.get("c").settings.callback_timeout == 10.0


# -- 3, 4. stop signals end the run in time, whatever a callback or a pattern does -----------

STUCK = {
    "spin": "while True:\n            pass",
    "sleep": "time.sleep(1000)",
}

STUCK_MODULE = """
import time


def parse(page):
    if page.url.endswith("/5"):
        {stuck}
    yield from page.records
"""

STUCK_SPIDER = """
spiders:
  numbers:
    start: SITE/p/{n}
    vars: {n: {range: [0, 30]}}
    concurrency: 4
    robots: false
    callback_timeout: 600
    extract_timeout: 600
    pattern: PATTERN
    callback: MODULE
"""


def start_run(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "numbers", *args],
        cwd=folder,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text(encoding="utf-8").count("\n") >= count:
            return
        time.sleep(0.02)
    process.kill()  # a callback that never returns would spin on after the test
    process.communicate()
    raise AssertionError(f"{count} records were not written within 20 s")


def stop_and_check(process: subprocess.Popen[str], signum: signal.Signals, exit_code: int) -> str:
    """Send ``signum``; the run must end in time with ``exit_code`` and the summary last."""
    process.send_signal(signum)
    signalled = time.monotonic()
    try:
        _, err = process.communicate(timeout=3 + STOP_GRACE + 5)
    finally:
        process.kill()
    took = time.monotonic() - signalled
    assert process.returncode == exit_code, err
    assert took < 3 + STOP_GRACE, err
    assert "Traceback" not in err
    assert "never retrieved" not in err
    assert err.rstrip().splitlines()[-1].startswith("elapsed:"), err  # the summary is last
    return err


@pytest.mark.parametrize(
    ("stuck", "signum", "exit_code"),
    [("spin", signal.SIGTERM, 143), ("sleep", signal.SIGINT, 130), ("spin", signal.SIGHUP, 129)],
)
def test_a_stop_signal_ends_a_run_whose_callback_never_returns(
    tmp_path: Path, site: FixtureSite, stuck: str, signum: signal.Signals, exit_code: int
) -> None:
    numbered_site(site, 30)
    module = f"stuck_{stuck}"
    spiders = STUCK_SPIDER.replace("MODULE", f"{module}:parse").replace(
        "PATTERN", "'<b>(?P<n>\\d+)</b>'"
    )
    write_project(tmp_path, site, spiders, {module: STUCK_MODULE.replace("{stuck}", STUCK[stuck])})
    out = tmp_path / "out.jsonl"
    process = start_run(tmp_path, "-o", str(out))
    wait_for_lines(out, 29, process)
    err = stop_and_check(process, signum, exit_code)
    assert "pages fetched:   29" in err
    assert sorted(int(r["n"]) for r in lines_of(out)) == [n for n in range(30) if n != 5]


def test_a_stop_signal_ends_a_run_whose_pattern_runs_for_minutes(
    tmp_path: Path, site: FixtureSite
) -> None:
    """A page that makes the pattern backtrack for ever, under a 600 s extract_timeout: the
    process used to print its summary and then wait for the extract thread."""
    numbered_site(site, 30)
    site.add("/p/5", "<html><body>" + "x" * 5000 + "</body></html>")
    spiders = STUCK_SPIDER.replace("    callback: MODULE\n", "").replace(
        "PATTERN", "'<b>(?P<n>\\d+)</b>|(?P<x>(x+x+)+y)'"
    )
    write_project(tmp_path, site, spiders, {})
    out = tmp_path / "out.jsonl"
    process = start_run(tmp_path, "-o", str(out))
    wait_for_lines(out, 29, process)
    err = stop_and_check(process, signal.SIGTERM, 143)
    assert "pages fetched:   29" in err
    assert len(lines_of(out)) == 29


def test_ctrl_c_while_a_large_state_loads_stops_cleanly(tmp_path: Path, site: FixtureSite) -> None:
    from scraper.models import Request
    from scraper.state import CrawlState

    numbered_site(site, 30)
    write_project(
        tmp_path,
        site,
        STUCK_SPIDER.replace("    callback: MODULE\n", "").replace(
            "PATTERN", "'<b>(?P<n>\\d+)</b>'"
        ),
        {},
    )
    out = tmp_path / "out.jsonl"
    out.touch()
    state = CrawlState(Path(f"{out}.state"), "numbers")
    for n in range(200_000):  # a crawl that found many links and was stopped
        url = site.url(f"/q/{n}")
        state.add(url, Request(url, "main", 1, {}))
    state.commit(0)
    state.close()
    process = start_run(tmp_path, "-o", str(out), "--resume", "-v")
    assert process.stderr is not None
    # -v: where the resumed crawl starts is logged at INFO, as the state starts loading
    assert "resuming from" in process.stderr.readline()
    time.sleep(0.2)
    err = stop_and_check(process, signal.SIGINT, 130)
    assert "pages fetched:   0" in err
    assert site.requests == []
