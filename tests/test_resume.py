"""--resume: a crawl killed at random moments and resumed ends with every record exactly once."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scraper.models import Request
from scraper.state import CrawlState
from tests.server import FixtureSite

LISTS, DETAILS_PER_LIST = 6, 12


def serve_catalogue(site: FixtureSite) -> None:
    """6 list pages, each linking the next and 12 detail pages: 78 pages, 72 records."""
    for n in range(1, LISTS + 1):
        links = "".join(
            f'<li><a class="item" href="/item/{n}-{i}">item {n}-{i}</a> rank {i}</li>'
            for i in range(1, DETAILS_PER_LIST + 1)
        )
        next_link = f'<a class="next" href="/list/{n + 1}">next</a>' if n < LISTS else ""
        site.add(f"/list/{n}", f"<html><body><ul>{links}</ul>{next_link}</body></html>")
        for i in range(1, DETAILS_PER_LIST + 1):
            site.add(
                f"/item/{n}-{i}",
                f"<html><h1>Item {n}-{i}</h1><p class='price'>{n * 100 + i}.50</p></html>",
            )


SPIDER = """
spiders:
  catalogue:
    start: {base}/list/1
    concurrency: 4
    robots: false
    pages:
      list:
        follow:
          - {{pattern: '<a class="item" href="(?P<url>[^"]+)">[^<]*</a> rank (?P<rank>\\d+)',
              to: item, clean: {{rank: int}}}}
          - {{pattern: '<a class="next" href="(?P<url>[^"]+)"', to: list}}
      item:
        pattern: '<h1>(?P<name>[^<]+)</h1><p class=.price.>(?P<price>[\\d.]+)</p>'
        clean: {{price: float}}
"""


def write_spider(folder: Path, site: FixtureSite, text: str = SPIDER) -> None:
    """``folder``'s spiders.yaml: ``text`` (default: the catalogue's spider) for ``site``."""
    (folder / "spiders.yaml").write_text(text.format(base=site.base), encoding="utf-8")


def scraper(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "catalogue", "-q", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_new_records(run: subprocess.Popen[bytes], out: Path, before: int) -> None:
    """Until ``run`` has written past ``before`` bytes of ``out`` (or has ended)."""
    deadline = time.monotonic() + 20
    while run.poll() is None and not (out.exists() and out.stat().st_size > before):
        assert time.monotonic() < deadline, "the run wrote nothing in 20 s"
        time.sleep(0.01)


def records(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        json.loads(line)  # every line parses
    return sorted(lines)


def test_killed_and_resumed_runs_give_every_record_exactly_once(
    site: FixtureSite, tmp_path: Path
) -> None:
    serve_catalogue(site)
    site.hold = 0.03  # about 0.6 s of crawling at concurrency 4
    write_spider(tmp_path, site)

    whole = scraper(tmp_path, "-o", "whole.jsonl")
    assert whole.wait(timeout=60) == 0, whole.stderr.read() if whole.stderr else ""
    expected = records(tmp_path / "whole.jsonl")
    assert len(expected) == LISTS * DETAILS_PER_LIST
    assert json.loads(expected[0]) == {"rank": 1, "name": "Item 1-1", "price": 101.5}

    chance = random.Random(20261126)
    kills = 0
    partial: list[int] = []
    for _ in range(4):
        out = tmp_path / "out.jsonl"
        before = out.stat().st_size if out.exists() else 0
        run = scraper(tmp_path, "-o", "out.jsonl", "--resume")
        wait_for_new_records(run, out, before)
        time.sleep(chance.uniform(0.0, 0.3))  # a random moment once this run is writing
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            kills += 1
        run.wait(timeout=30)
        partial.append(len(records(tmp_path / "out.jsonl")))  # whole lines only, after a kill
    assert kills >= 2, "the crawl finished before it could be killed; slow the site down"
    assert any(0 < n < len(expected) for n in partial), partial  # killed mid-crawl

    final = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert final.wait(timeout=60) == 0, final.stderr.read() if final.stderr else ""
    assert records(tmp_path / "out.jsonl") == expected


def test_resume_after_a_finished_crawl_fetches_nothing_again(
    site: FixtureSite, tmp_path: Path
) -> None:
    serve_catalogue(site)
    write_spider(tmp_path, site)
    first = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert first.wait(timeout=60) == 0
    fetched = len(site.requests)
    again = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert again.wait(timeout=60) == 0
    assert len(site.requests) == fetched
    assert len(records(tmp_path / "out.jsonl")) == LISTS * DETAILS_PER_LIST


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume"], "scraper: error: --resume needs an output file: add -o PATH.\n"),
        (
            ["-o", "x.jsonl", "--state", "s"],
            "scraper: error: --state goes with --resume or --incremental.\n",
        ),
    ],
)
def test_resume_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9"), encoding="utf-8"
    )
    run = scraper(tmp_path, *args)
    assert run.wait(timeout=30) == 2
    assert run.stderr is not None
    assert run.stderr.read().decode() == message


def finished_crawl(site: FixtureSite, tmp_path: Path) -> bytes:
    """A catalogue crawl run to the end with --resume; the output it wrote."""
    serve_catalogue(site)
    write_spider(tmp_path, site)
    first = scraper(tmp_path, "-o", "out.jsonl", "--resume")
    assert first.wait(timeout=60) == 0
    if first.stderr:
        first.stderr.close()
    return (tmp_path / "out.jsonl").read_bytes()


def finish(run: subprocess.Popen[bytes]) -> tuple[int, str]:
    """The exit status and stderr of ``run``."""
    _, stderr = run.communicate(timeout=60)
    return run.returncode, stderr.decode("utf-8")


def test_resume_refuses_an_output_edited_since(site: FixtureSite, tmp_path: Path) -> None:
    whole = finished_crawl(site, tmp_path)
    edited = b'{"note": "added by hand"}\n' + whole
    (tmp_path / "out.jsonl").write_bytes(edited)
    code, stderr = finish(scraper(tmp_path, "-o", "out.jsonl", "--resume"))
    assert code == 2
    assert stderr == (
        f"scraper: error: out.jsonl is not the output that out.jsonl.state vouches for: its "
        f"first {len(whole)} bytes changed since the last run (edited, cut or replaced), so "
        "resuming could cut a line or lose records. To start over, delete out.jsonl.state "
        "(the next run writes out.jsonl anew); to keep this output, move it away first.\n"
    )
    assert (tmp_path / "out.jsonl").read_bytes() == edited  # not cut


def flip_20_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    step = (len(data) - 4096) // 20
    for n in range(20):
        data[4096 + n * step] ^= 0x55  # past the header page: the tables' own pages
    path.write_bytes(bytes(data))


def truncate_to_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 100])


def replace_with_text(path: Path) -> None:
    path.write_text("spiders:\n  not: a state\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (flip_20_bytes, "database disk image is malformed"),
        (truncate_to_half, "database disk image is malformed"),
        (replace_with_text, "file is not a database"),
    ],
)
def test_a_damaged_state_is_refused_naming_the_file(
    site: FixtureSite, tmp_path: Path, damage: Callable[[Path], None], detail: str
) -> None:
    finished_crawl(site, tmp_path)
    damage(tmp_path / "out.jsonl.state")
    code, stderr = finish(scraper(tmp_path, "-o", "out.jsonl", "--resume"))
    assert code == 2
    assert stderr == (
        f"scraper: error: the crawl state out.jsonl.state cannot be used: {detail}. Delete "
        "it to start over (the next --resume run writes out.jsonl anew), or restore it "
        "from a copy.\n"
    )


def test_a_state_at_the_output_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9"), encoding="utf-8"
    )
    for _ in range(2):  # the second run found a DatabaseError in the first's output
        code, stderr = finish(
            scraper(tmp_path, "-o", "out.jsonl", "--resume", "--state", "out.jsonl")
        )
        assert code == 2
        assert stderr == (
            "scraper: error: --state out.jsonl is the output file itself; give the state its "
            "own path (the default is out.jsonl.state).\n"
        )


def test_a_deleted_output_of_a_state_that_vouches_for_no_bytes_is_written_anew(
    site: FixtureSite, tmp_path: Path
) -> None:
    site.add("/list/1", "<html><body>nothing listed yet</body></html>")
    write_spider(tmp_path, site)
    assert finish(scraper(tmp_path, "-o", "out.jsonl", "--resume")) == (0, "")
    fetched = len(site.requests)
    (tmp_path / "out.jsonl").unlink()  # its 0 bytes held nothing to lose
    assert finish(scraper(tmp_path, "-o", "out.jsonl", "--resume")) == (0, "")
    assert (tmp_path / "out.jsonl").read_bytes() == b""
    assert len(site.requests) == fetched  # the page noted done is not fetched again


def limit_file_size() -> None:
    """In the child: files may grow to 100 kB, then writes fail (as on a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_a_state_that_cannot_be_saved_stops_the_run_and_resuming_completes_it(
    site: FixtureSite, tmp_path: Path
) -> None:
    serve_catalogue(site)
    write_spider(tmp_path, site)
    limited = subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "catalogue", "-q", "-o", "out.jsonl", "--resume"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=limit_file_size,
    )
    code, stderr = finish(limited)
    assert code == 1
    assert stderr.startswith("scraper: error: saving the crawl state in out.jsonl.state failed: ")
    assert stderr.endswith(
        "The records and the state saved before are kept: once the state can be written "
        "again (free some space), run again with --resume to continue.\n"
    )
    partial = records(tmp_path / "out.jsonl")
    assert len(partial) < LISTS * DETAILS_PER_LIST

    code, stderr = finish(scraper(tmp_path, "-o", "out.jsonl", "--resume"))
    assert code == 0, stderr
    lines = records(tmp_path / "out.jsonl")
    assert len(lines) == len(set(lines)) == LISTS * DETAILS_PER_LIST


def test_a_carry_json_cannot_hold_is_not_kept_and_does_not_stop_the_commit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = CrawlState(tmp_path / "s.state", "catalogue")
    state.add("a", Request("http://a.example/", carry={"when": {1, 2}}))
    state.add("b", Request("http://b.example/", carry={"rank": 1, "text": "\udc80"}))
    state.commit(0)
    assert list(state.unfinished()) == [
        Request("http://b.example/", carry={"rank": 1, "text": "\udc80"})
    ]
    state.close()
    assert caplog.messages == [
        f"not keeping http://a.example/ in the crawl state {tmp_path / 's.state'}: a carried "
        "field cannot be stored as JSON (Object of type set is not JSON serializable); "
        "a resumed run would not fetch it"
    ]


def as_format_1(path: Path) -> None:
    """Rewrite a state as the versions before page kinds wrote it: one row per URL."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        """
        begin;
        drop index request_key;
        alter table request rename to request_2;
        create table request (key text primary key, url text not null, page text,
                              depth integer not null, carry text not null,
                              status integer not null default 0);
        insert into request (rowid, key, url, page, depth, carry, status)
            select rowid, key, url, page, depth, carry, status from request_2;
        drop table request_2;
        drop table record_key;
        delete from meta where name = 'format';
        commit;
        """
    )
    db.close()


def test_a_state_of_format_1_is_upgraded_and_resumed_keeping_its_page_kinds(
    site: FixtureSite, tmp_path: Path
) -> None:
    import sqlite3

    whole = finished_crawl(site, tmp_path)
    state = tmp_path / "out.jsonl.state"
    as_format_1(state)
    with sqlite3.connect(state) as db:  # the last list page failed in that older run
        db.execute("update request set status = 2 where url like '%/list/6'")
    fetched = len(site.requests)

    code, stderr = finish(scraper(tmp_path, "-o", "out.jsonl", "--resume"))
    assert (code, stderr) == (0, "")
    assert [r.path for r in site.requests[fetched:]] == ["/list/6"]  # its items: already seen
    assert (tmp_path / "out.jsonl").read_bytes() == whole
    with sqlite3.connect(state) as db:
        assert db.execute("select value from meta where name = 'format'").fetchone() == ("2",)
        kinds = db.execute("select page, count(*) from request group by page order by page")
        assert kinds.fetchall() == [("item", LISTS * DETAILS_PER_LIST), ("list", LISTS)]
        assert db.execute("select count(*) from request where status != 1").fetchone() == (0,)


def test_a_state_of_an_unknown_format_is_refused(site: FixtureSite, tmp_path: Path) -> None:
    import sqlite3

    finished_crawl(site, tmp_path)
    with sqlite3.connect(tmp_path / "out.jsonl.state") as db:
        db.execute("update meta set value = '9' where name = 'format'")
    code, stderr = finish(scraper(tmp_path, "-o", "out.jsonl", "--resume"))
    assert code == 2
    assert stderr == (
        "scraper: error: the crawl state out.jsonl.state cannot be used: it is of format '9', "
        "written by another version of scraper. Delete it to start over (the next --resume run "
        "writes out.jsonl anew), or restore it from a copy.\n"
    )


def test_killed_and_resumed_runs_write_each_unique_record_once(
    site: FixtureSite, tmp_path: Path
) -> None:
    serve_catalogue(site)
    for n in range(1, LISTS + 1):  # every list's items have the same 12 names
        for i in range(1, DETAILS_PER_LIST + 1):
            site.add(f"/item/{n}-{i}", f"<html><h1>Item {i}</h1><p class='price'>{n}.50</p></html>")
    site.hold = 0.03
    spider = SPIDER.replace("  catalogue:\n", "  catalogue:\n    unique: name\n")
    write_spider(tmp_path, site, spider)

    chance = random.Random(20261130)
    kills = 0
    for _ in range(3):
        out = tmp_path / "out.jsonl"
        before = out.stat().st_size if out.exists() else 0
        run = scraper(tmp_path, "-o", "out.jsonl", "--resume")
        wait_for_new_records(run, out, before)
        time.sleep(chance.uniform(0.0, 0.3))
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            kills += 1
        run.wait(timeout=30)
    assert kills >= 1

    code, stderr = finish(scraper(tmp_path, "-o", "out.jsonl", "--resume"))
    assert code == 0, stderr
    names = [json.loads(line)["name"] for line in records(tmp_path / "out.jsonl")]
    assert sorted(names) == sorted(f"Item {i}" for i in range(1, DETAILS_PER_LIST + 1))
