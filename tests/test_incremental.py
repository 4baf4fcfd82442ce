"""--incremental: daily re-crawls of a local shop fetch and write only what is new."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import scraper
from scraper.cli import main
from tests.server import FixtureSite
from tests.test_cli import ENV
from tests.test_outputs import read_records, written_bytes
from tests.test_resume import DETAILS_PER_LIST, LISTS, SPIDER, serve_catalogue

SHOP = r"""
spiders:
  shop:
    start: {base}/list/1
    robots: false
    pages:
      list:
        follow:
          - {{pattern: '<a class="item" href="(?P<url>[^"]+)"', to: item}}
          - {{pattern: '<a class="next" href="(?P<url>[^"]+)"', to: list}}
      item:
        pattern: '<h1>(?P<name>[^<]+)</h1><p class="price">(?P<price>[\d.]+)</p>'
        clean: {{price: float}}
"""
PER_LIST = 3
OUTPUTS = {"jsonl": "out.jsonl", "csv": "out.csv", "json": "out.json", "sqlite": "out.db"}


def etag_of(html: str) -> str:
    return '"' + hashlib.sha1(html.encode()).hexdigest()[:12] + '"'


class Shop:
    """List pages of 3 items each, a pager between them, and a page per item; a list
    page's ETag is a hash of its HTML, so it changes when its items do."""

    def __init__(self, site: FixtureSite, items: int = 5) -> None:
        self.site = site
        self.prices = {n: n + 0.5 for n in range(1, items + 1)}
        self.etags: dict[str, str] = {}
        self.publish()

    def publish(self) -> None:
        numbers = sorted(self.prices)
        lists = [numbers[i : i + PER_LIST] for i in range(0, len(numbers), PER_LIST)]
        for page, items in enumerate(lists, 1):
            links = "".join(
                f'<li><a class="item" href="/item/{n}">item {n}</a></li>' for n in items
            )
            pager = f'<a class="next" href="/list/{page + 1}">next</a>' if page < len(lists) else ""
            html = f"<html><ul>{links}</ul>{pager}</html>"
            self.etags[f"/list/{page}"] = etag_of(html)
            self.site.add(f"/list/{page}", html, headers={"ETag": etag_of(html)})
        for n, price in self.prices.items():
            self.site.add(f"/item/{n}", f'<h1>Item {n}</h1><p class="price">{price}</p>')

    def add(self, count: int) -> None:
        for n in range(len(self.prices) + 1, len(self.prices) + count + 1):
            self.prices[n] = n + 0.5
        self.publish()

    def records(self) -> list[dict[str, Any]]:
        return [{"name": f"Item {n}", "price": price} for n, price in self.prices.items()]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_spiders(folder: Path, site: FixtureSite, text: str = SHOP) -> None:
    (folder / "spiders.yaml").write_text(text.format(base=site.base), encoding="utf-8")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``scraper run shop ARGS`` in this process: exit status and stderr."""
    status = main(["run", "shop", *args])
    return status, capsys.readouterr().err


def fetched(site: FixtureSite) -> list[str]:
    """The paths requested since the last call, sorted."""
    paths = sorted(site.paths())
    site.reset_stats()
    return paths


def by_name(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda record: (record["name"], record["price"]))


def as_read(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """``records`` as a format gives them back (CSV cells are text)."""
    if kind == "csv":
        return [{k: str(v) for k, v in record.items()} for record in records]
    return records


def summary(stderr: str) -> list[str]:
    """The summary's lines but the time it took."""
    return [line for line in stderr.splitlines() if not line.startswith("elapsed:")]


# -- three runs of a shop that grows -----------------------------------------------------------


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_three_runs_fetch_and_write_only_what_is_new(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    shop = Shop(site)
    write_spiders(project, site)
    out = OUTPUTS[kind]

    status, _ = run(capsys, "-o", out, "--incremental")
    assert status == 0
    assert fetched(site) == [*(f"/item/{n}" for n in range(1, 6)), "/list/1", "/list/2"]
    first = by_name(shop.records())
    assert by_name(read_records(project / out, kind, table="shop")) == as_read(first, kind)

    # Nothing changed: each list page answers 304, no item page is fetched, nothing written.
    status, stderr = run(capsys, "-o", out, "--incremental")
    assert status == 0
    asked = {r.path: r.headers.get("If-None-Match") for r in site.requests}
    assert asked == shop.etags  # {"/list/1": '"3f0c..."', "/list/2": ...}
    site.reset_stats()
    assert summary(stderr) == [
        "pages fetched:   0",
        "pages unchanged: 2 (304 not modified)",
        "pages skipped:   5 (already done)",
        "pages failed:    0",
        "records written: 0",
        *(["rows:            0 new, 0 updated"] if kind == "sqlite" else []),
        "records skipped: 0 (unchanged)",
        "records dropped: 0",
    ]
    assert by_name(read_records(project / out, kind, table="shop")) == as_read(first, kind)

    # Two items added: the second list page changed (a new ETag) and a third one is new.
    shop.add(2)
    status, stderr = run(capsys, "-o", out, "--incremental")
    assert status == 0
    assert fetched(site) == ["/item/6", "/item/7", "/list/1", "/list/2", "/list/3"]
    assert "records written: 2" in stderr
    assert "pages unchanged: 1 (304 not modified)" in stderr  # /list/1
    written = read_records(project / out, kind, table="shop")
    assert by_name(written) == as_read(by_name(shop.records()), kind)
    assert by_name(written[-2:]) == as_read(shop.records()[-2:], kind)  # added at the end


STDOUT_ARGS = ("--incremental", "--state", "shop.state")


def test_stdout_appended_every_day_builds_one_clean_history(
    site: FixtureSite, tmp_path: Path
) -> None:
    shop = Shop(site)
    write_spiders(tmp_path, site)
    history = tmp_path / "all.jsonl"

    def day() -> str:
        with history.open("ab") as appended:
            done = subprocess.run(
                [sys.executable, "-m", "scraper", "run", "shop", *STDOUT_ARGS],
                cwd=tmp_path,
                env=ENV,
                stdout=appended,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
            )
        assert done.returncode == 0, done.stderr
        return done.stderr

    day()
    assert "records written: 0" in day()
    shop.add(2)
    shop.prices[1] = 9.5  # a changed item page is not fetched again: it was done
    shop.publish()
    assert "records written: 2" in day()
    lines = history.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7
    assert by_name([json.loads(line) for line in lines]) == by_name(
        [{"name": f"Item {n}", "price": n + 0.5} for n in range(1, 8)]
    )


# -- what is fetched again, what is written again ----------------------------------------------


def test_since_0_fetches_every_page_again_and_writes_only_changed_records(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = Shop(site)
    write_spiders(project, site)
    assert run(capsys, "-o", "out.jsonl", "--incremental")[0] == 0
    fetched(site)
    shop.prices[2] = 9.5
    shop.publish()

    status, stderr = run(capsys, "-o", "out.jsonl", "--incremental", "--since", "0")
    assert status == 0
    assert fetched(site) == [f"/item/{n}" for n in range(1, 6)] + ["/list/1", "/list/2"]
    assert "records written: 1" in stderr
    assert "records skipped: 4 (unchanged)" in stderr
    lines = (project / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    assert json.loads(lines[-1]) == {"name": "Item 2", "price": 9.5}

    # A day is not over yet: --since 1 fetches no item page again.
    status, stderr = run(capsys, "-o", "out.jsonl", "--incremental", "--since", "1")
    assert status == 0
    assert fetched(site) == ["/list/1", "/list/2"]


@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_changed_record_with_a_key_is_written_again_and_its_row_updated(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    shop = Shop(site)
    write_spiders(
        project, site, SHOP.replace("    robots: false\n", "    robots: false\n    unique: name\n")
    )
    out = OUTPUTS[kind]
    assert run(capsys, "-o", out, "--incremental")[0] == 0
    shop.prices[2] = 9.5
    shop.publish()

    status, stderr = run(capsys, "-o", out, "--incremental", "--since", "0")
    assert status == 0
    assert "records written: 1" in stderr
    assert "records skipped: 4 (unchanged)" in stderr
    records = read_records(project / out, kind, table="shop")
    if kind == "sqlite":
        assert "rows:            0 new, 1 updated" in stderr
        assert by_name(records) == by_name(shop.records())  # 5 rows, Item 2 at its new price
    else:
        assert records[-1] == {"name": "Item 2", "price": 9.5}
        assert len(records) == 6

    status, stderr = run(capsys, "-o", out, "--incremental", "--since", "0")
    assert "records written: 0" in stderr
    assert "records skipped: 5 (unchanged)" in stderr


QUOTES = r"""
spiders:
  shop:
    start: {base}/q/1
    robots: false
    pages:
      quotes:
        pattern: '<li>(?P<quote>[^<]+)</li>'
        follow: [{{pattern: '<a class="next" href="(?P<url>[^"]+)"', to: quotes}}]
        refresh: REFRESH
"""


def serve_quotes(site: FixtureSite, second: list[str]) -> None:
    """Two pages of quotes, the first linking the second; ETags of their content."""
    pages = {"/q/1": ["one", "two"], "/q/2": second}
    for path, quotes in pages.items():
        items = "".join(f"<li>{quote}</li>" for quote in quotes)
        pager = '<a class="next" href="/q/2">next</a>' if path == "/q/1" else ""
        html = f"<ul>{items}</ul>{pager}"
        site.add(path, html, headers={"ETag": etag_of(html)})


@pytest.mark.parametrize(("refresh", "written"), [("true", 1), ("false", 0)])
def test_refresh_true_fetches_the_pages_of_a_kind_that_yielded_records_again(
    site: FixtureSite,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    refresh: str,
    written: int,
) -> None:
    serve_quotes(site, ["three", "four"])
    write_spiders(project, site, QUOTES.replace("REFRESH", refresh))
    assert run(capsys, "-o", "out.jsonl", "--incremental")[0] == 0
    fetched(site)
    serve_quotes(site, ["three", "four", "five"])

    status, stderr = run(capsys, "-o", "out.jsonl", "--incremental")
    assert status == 0
    if refresh == "true":
        assert fetched(site) == ["/q/1", "/q/2"]  # /q/1 answers 304, /q/2 changed
        assert "records skipped: 2 (unchanged)" in stderr
    else:
        assert fetched(site) == ["/q/1"]  # a start page: always asked
        assert "pages skipped:   1 (already done)" in stderr
    assert f"records written: {written}" in stderr
    quotes = [record["quote"] for record in read_records(project / "out.jsonl", "jsonl")]
    assert quotes[4:] == ["five"][:written]


def test_a_304_to_a_request_not_made_conditional_is_a_page_as_before(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/list/1", "", status=304)  # no ETag: nothing to ask conditionally
    write_spiders(project, site)
    for _ in range(2):
        status, stderr = run(capsys, "-o", "out.jsonl", "--incremental")
        assert status == 0
        assert "pages fetched:   1" in stderr
        assert "pages unchanged: 0 (304 not modified)" in stderr
    assert all("If-None-Match" not in r.headers for r in site.requests)


def test_last_modified_is_sent_back_as_if_modified_since(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stamp = "Tue, 03 Mar 2026 10:00:00 GMT"
    site.add("/list/1", '<a class="item" href="/item/1">1</a>', headers={"Last-Modified": stamp})
    site.add("/item/1", '<h1>Item 1</h1><p class="price">1.5</p>')
    write_spiders(project, site)
    assert run(capsys, "-o", "out.jsonl", "--incremental")[0] == 0
    fetched(site)
    status, stderr = run(capsys, "-o", "out.jsonl", "--incremental")
    assert status == 0
    assert [r.headers.get("If-Modified-Since") for r in site.requests] == [stamp]
    assert "pages unchanged: 1 (304 not modified)" in stderr
    assert "pages skipped:   1 (already done)" in stderr


# -- options and their errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--incremental"],
            "--incremental to stdout needs --state PATH: the state of the re-crawls is kept "
            "beside the output file, and stdout has none. Give it a file that stays from one "
            "run to the next, e.g. --state NAME.state.",
        ),
        (
            ["-o", "out.jsonl", "--incremental", "--redis", "redis://127.0.0.1:9"],
            "--incremental is for single-process runs: it does not go with --redis or "
            "--workers (what it keeps between runs is one process's SQLite file; a shared "
            "crawl keeps its state in Redis).",
        ),
        (
            ["-o", "out.jsonl", "--incremental", "--workers", "2"],
            "--incremental is for single-process runs: it does not go with --redis or "
            "--workers (what it keeps between runs is one process's SQLite file; a shared "
            "crawl keeps its state in Redis).",
        ),
        (["-o", "out.jsonl", "--since", "1"], "--since goes with --incremental."),
        (["-o", "out.jsonl", "--state", "s"], "--state goes with --resume or --incremental."),
    ],
)
def test_options_are_checked(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (project / "spiders.yaml").write_text(SHOP.format(base="http://127.0.0.1:9"), "utf-8")
    status, stderr = run(capsys, *args)
    assert status == 2
    assert stderr == f"scraper: error: {message}\n"
    assert not (project / "out.jsonl").exists()


def test_since_must_be_a_number_of_days(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "shop", "--incremental", "--since", "-1"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(
        "scraper run: error: argument --since: '-1' is not a number of days (0 or more)\n"
    )


def test_a_plain_run_does_not_overwrite_an_incremental_history(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Shop(site)
    write_spiders(project, site)
    assert run(capsys, "-o", "out.jsonl", "--incremental")[0] == 0
    history = (project / "out.jsonl").read_bytes()
    status, stderr = run(capsys, "-o", "out.jsonl")
    assert status == 2
    assert stderr == (
        "scraper: error: out.jsonl.state keeps the history of --incremental re-crawls of "
        "out.jsonl: add --incremental to add to it, or delete out.jsonl.state to start over "
        "(a run without it writes out.jsonl anew).\n"
    )
    assert (project / "out.jsonl").read_bytes() == history
    assert (project / "out.jsonl.state").is_file()
    (project / "out.jsonl.state").unlink()
    assert run(capsys, "-o", "out.jsonl")[0] == 0


def test_a_state_kept_for_the_other_kind_of_run_is_refused(
    site: FixtureSite, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Shop(site)
    write_spiders(project, site)
    assert run(capsys, "-o", "out.jsonl", "--incremental")[0] == 0
    status, stderr = run(capsys, "-o", "out.jsonl", "--resume")
    assert status == 2
    assert stderr == (
        "scraper: error: out.jsonl.state holds the state of --incremental re-crawls; run "
        "with --incremental (and --resume to continue an interrupted one), or give this "
        "crawl its own --state PATH.\n"
    )
    assert run(capsys, "-o", "other.jsonl", "--resume")[0] == 0
    status, stderr = run(capsys, "-o", "other.jsonl", "--incremental")
    assert status == 2
    assert stderr == (
        "scraper: error: other.jsonl.state holds the state of a crawl run without "
        "--incremental; give the re-crawls their own --state PATH, or delete "
        "other.jsonl.state to start them there.\n"
    )


def test_refresh_is_a_page_kind_key_scraper_check_reads(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spiders = QUOTES.format(base="http://127.0.0.1:9")
    (project / "spiders.yaml").write_text(spiders.replace("REFRESH", "true"), "utf-8")
    assert main(["check"]) == 0
    assert capsys.readouterr().err == "ok  shop: 1 start URL(s), 1 page kind(s)\n"
    (project / "spiders.yaml").write_text(spiders.replace("REFRESH", "daily"), "utf-8")
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: spiders.yaml:10:18: spider 'shop', page 'quotes': refresh must be "
        "true or false, not 'daily'.\n"
    )


# -- interrupted runs --------------------------------------------------------------------------


def catalogue_run(folder: Path, out: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "catalogue", "-o", out, "--incremental", *args],
        cwd=folder,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_more(process: subprocess.Popen[bytes], out: Path, before: int) -> None:
    """Until ``process`` has written past ``before`` bytes of ``out`` (or has ended)."""
    deadline = time.monotonic() + 20
    while process.poll() is None and written_bytes(out) <= before:
        assert time.monotonic() < deadline, "the run wrote nothing in 20 s"
        time.sleep(0.01)


@pytest.mark.parametrize("kind", ["jsonl", "json", "sqlite"])
def test_killed_or_stopped_runs_continued_lose_nothing_and_write_nothing_twice(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    serve_catalogue(site)
    site.hold = 0.03  # about 0.6 s of crawling at concurrency 4
    write_spiders(tmp_path, site, SPIDER)
    out = tmp_path / OUTPUTS[kind]
    chance = random.Random(20261201)
    stopped = 0
    # kill -9 and Ctrl-C, each continued with --resume and without (a new run).
    for signum, resume in [
        (signal.SIGKILL, ["--resume"]),
        (signal.SIGINT, []),
        (signal.SIGKILL, []),
        (signal.SIGINT, ["--resume"]),
    ]:
        process = catalogue_run(tmp_path, out.name, *resume)
        wait_for_more(process, out, written_bytes(out))
        time.sleep(chance.uniform(0.0, 0.2))
        if process.poll() is None:
            os.kill(process.pid, signum)
            stopped += 1
        process.wait(timeout=30)
    assert stopped >= 2, "the crawl finished before it could be stopped; slow the site down"

    assert catalogue_run(tmp_path, out.name, "--resume").wait(timeout=60) == 0
    names = [record["name"] for record in read_records(out, kind, table="catalogue")]
    assert sorted(names) == sorted(
        f"Item {n}-{i}" for n in range(1, LISTS + 1) for i in range(1, DETAILS_PER_LIST + 1)
    )
    site.reset_stats()
    assert catalogue_run(tmp_path, out.name).wait(timeout=60) == 0
    assert len(read_records(out, kind, table="catalogue")) == LISTS * DETAILS_PER_LIST
    assert not [path for path in site.paths() if path.startswith("/item/")]


@pytest.mark.parametrize("resume", [["--resume"], []])
def test_records_written_but_not_noted_as_the_run_was_killed_are_not_kept_twice(
    site: FixtureSite, tmp_path: Path, resume: list[str]
) -> None:
    serve_catalogue(site)
    site.add_fault("/item/6-12", "hang")  # the crawl cannot end: it is killed
    write_spiders(tmp_path, site, SPIDER)
    out = tmp_path / "out.jsonl"
    process = catalogue_run(tmp_path, out.name)
    deadline = time.monotonic() + 30
    while not out.exists() or len(out.read_bytes().splitlines()) < LISTS * DETAILS_PER_LIST - 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    # As if it had been killed after writing the last page's records, before noting the page.
    with out.open("a", encoding="utf-8") as file:
        file.write('{"name": "Item 6-12", "price": 612.5}\n')
    site.add("/item/6-12", "<html><h1>Item 6-12</h1><p class='price'>612.50</p></html>")

    assert catalogue_run(tmp_path, out.name, *resume).wait(timeout=60) == 0
    names = [record["name"] for record in read_records(out, "jsonl")]
    assert len(names) == LISTS * DETAILS_PER_LIST
    assert names.count("Item 6-12") == 1


# -- the Python API ----------------------------------------------------------------------------


def test_python_run_with_incremental(site: FixtureSite, tmp_path: Path) -> None:
    shop = Shop(site)
    write_spiders(tmp_path, site)
    out = tmp_path / "out.db"
    first = scraper.run(tmp_path / "spiders.yaml", "shop", output=out, incremental=True)
    assert (first.records, first.exit_status) == (5, 0)
    shop.add(1)
    second = scraper.run(tmp_path / "spiders.yaml", "shop", output=out, incremental=True)
    assert (second.pages, second.records, second.exit_status) == (2, 1, 0)  # /list/2, /item/6
    assert "pages skipped:   5 (already done)" in second.summary
    with sqlite3.connect(out) as db:
        assert db.execute("select count(*) from shop").fetchone() == (6,)
    with pytest.raises(TypeError, match=r"run\(incremental=True\) needs an output file"):
        scraper.run(tmp_path / "spiders.yaml", "shop", incremental=True)
