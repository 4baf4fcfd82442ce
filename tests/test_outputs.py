"""What every output format promises, each format held to it: JSON Lines, CSV, JSON, SQLite.

Real ``scraper`` processes against a FixtureSite, killed and interrupted as a user
would: the records read back equal JSON Lines', a page's records go in whole, Ctrl-C
leaves a complete output, --resume and the Redis exporter write each record exactly
once, a path that cannot be written is refused before the crawl, memory stays flat.
Each format's own rules are in tests/test_outputs_formats.py.
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer
from tests.server import FixtureSite
from tests.test_cli import ENV
from tests.test_redis_cli import big_crawl
from tests.test_redis_cli import finish as finish_scraper
from tests.test_redis_cli import scraper as start_scraper
from tests.test_resume import LISTS, serve_catalogue, write_spider

OUTPUTS = {"jsonl": "out.jsonl", "csv": "out.csv", "json": "out.json", "sqlite": "out.db"}
FORMATS = list(OUTPUTS)
PAGES, PER_PAGE = 120, 50

MANY = """
spiders:
  many:
    start: {base}/page/{{n}}
    vars: {{n: {{range: [0, {pages}]}}}}
    concurrency: 2
    robots: false
    pattern: '<li>(?P<item>[^<]+)</li>'
"""


def read_records(path: Path, kind: str, *, table: str = "", killed: bool = False) -> list[Any]:
    """The records an output holds, as its format gives them back (``killed``: a JSON
    array may lack its closing bracket)."""
    if kind == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if kind == "json":
        text = path.read_text(encoding="utf-8")
        if killed and not text.rstrip().endswith("]"):
            text += "\n]"
        records: list[Any] = json.loads(text)
        return records
    if kind == "csv":
        with path.open(encoding="utf-8", newline="") as file:
            return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(file)]
    with contextlib.closing(sqlite3.connect(path)) as db:
        if (
            killed
            and not db.execute("select 1 from sqlite_master where name = ?", (table,)).fetchall()
        ):
            return []  # killed before it made the table
        found = db.execute(f'select * from "{table}" order by rowid')
        names = [column[0] for column in found.description]
        return [
            {k: v for k, v in zip(names, row, strict=True) if v is not None and k[0] != "_"}
            for row in found
        ]


def as_stored(record: dict[str, Any], kind: str) -> dict[str, Any]:
    """``record`` as the format gives it back: CSV cells are text, empty values go."""
    if kind == "csv":
        return {
            k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            for k, v in record.items()
            if v not in (None, "")
        }
    if kind == "sqlite":
        return {k: v for k, v in record.items() if v is not None}
    return record


def ordered(records: list[Any]) -> list[str]:
    return sorted(json.dumps(record, sort_keys=True, ensure_ascii=False) for record in records)


def scraper(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return start_scraper(cwd, *args, env=ENV)


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    return finish_scraper(process, timeout)


def written_bytes(path: Path) -> int:
    """Bytes of an output so far (with a SQLite database's write-ahead log)."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def catalogue(site: FixtureSite, folder: Path) -> list[Any]:
    """tests/test_resume.py's catalogue (78 pages, 72 records) in ``folder``; its records,
    read from a JSON Lines run."""
    serve_catalogue(site)
    write_spider(folder, site)
    code, _, err = finish(scraper(folder, "run", "catalogue", "-q", "-o", "whole.jsonl"))
    assert code == 0, err
    site.reset_stats()
    return read_records(folder / "whole.jsonl", "jsonl")


def many(site: FixtureSite, folder: Path, pages: int = PAGES) -> list[str]:
    """``pages`` pages of PER_PAGE records each, spider ``many`` in ``folder``; the items."""
    for n in range(pages):
        items = "".join(f'<li>{n}-{i} 海镇来客, "quoted"</li>' for i in range(PER_PAGE))
        site.add(f"/page/{n}", f"<ul>{items}</ul>")
    (folder / "spiders.yaml").write_text(MANY.format(base=site.base, pages=pages), encoding="utf-8")
    return [f'{n}-{i} 海镇来客, "quoted"' for n in range(pages) for i in range(PER_PAGE)]


def count_now(path: Path, kind: str, table: str) -> int:
    """Records an output holds while it is being written (-1 while it cannot be read)."""
    try:
        return len(read_records(path, kind, table=table, killed=True))
    except (OSError, ValueError, sqlite3.Error, csv.Error):
        return -1


def wait_for_records(run: subprocess.Popen[str], path: Path, kind: str, least: int) -> int:
    """Until ``run``'s output holds at least ``least`` records (read while it runs)."""
    deadline = time.monotonic() + 30
    while (found := count_now(path, kind, "many")) < least:
        assert run.poll() is None, run.stderr.read() if run.stderr else ""
        assert time.monotonic() < deadline, "no records came out in 30 s"
        time.sleep(0.02)
    return found


# -- the same records in every format ----------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_the_records_read_back_are_those_of_json_lines(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    expected = catalogue(site, tmp_path)
    assert len(expected) == LISTS * 12
    code, out, err = finish(scraper(tmp_path, "run", "catalogue", "-o", OUTPUTS[kind]))
    assert (code, out) == (0, ""), err
    found = read_records(tmp_path / OUTPUTS[kind], kind, table="catalogue")
    assert ordered(found) == ordered([as_stored(r, kind) for r in expected])
    assert f"records written: {len(expected)}\n" in err


@pytest.mark.parametrize("kind", FORMATS)
def test_a_path_that_cannot_be_written_is_refused_before_the_crawl(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    many(site, tmp_path, pages=2)
    for where, reason in (
        (f"missing/{OUTPUTS[kind]}", "No such file or directory"),
        (f"spiders.yaml/{OUTPUTS[kind]}", "Not a directory"),
    ):
        code, out, err = finish(scraper(tmp_path, "run", "many", "-o", where))
        assert (code, out) == (1, "")
        assert err == (
            f"scraper: error: cannot write the output {where}: {reason}. "
            "Choose a path in a writable folder with -o PATH.\n"
        )
    assert site.requests == []


# -- kill -9, Ctrl-C, a full disk ----------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_records_stream_out_and_a_killed_run_leaves_whole_pages(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    many(site, tmp_path)
    site.hold = 0.05  # 120 pages, 2 at a time: about 3 s if left alone
    run = scraper(tmp_path, "run", "many", "-q", "-o", OUTPUTS[kind])
    try:
        wait_for_records(run, tmp_path / OUTPUTS[kind], kind, 3 * PER_PAGE)  # read mid-run
        assert run.poll() is None
        run.send_signal(signal.SIGKILL)
        assert run.wait(timeout=10) == -signal.SIGKILL
    finally:
        finish(run)
    found = read_records(tmp_path / OUTPUTS[kind], kind, table="many", killed=True)
    assert 0 < len(found) < PAGES * PER_PAGE
    assert len(found) % PER_PAGE == 0  # every page went in whole
    assert all(record["item"].endswith('海镇来客, "quoted"') for record in found)


@pytest.mark.parametrize("kind", FORMATS)
def test_ctrl_c_leaves_a_complete_output_of_whole_pages(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    many(site, tmp_path)
    site.hold = 0.05
    run = scraper(tmp_path, "run", "many", "-o", OUTPUTS[kind])
    wait_for_records(run, tmp_path / OUTPUTS[kind], kind, 2 * PER_PAGE)
    run.send_signal(signal.SIGINT)
    code, _, err = finish(run)
    assert code == 130, err
    found = read_records(tmp_path / OUTPUTS[kind], kind, table="many")  # JSON: closed
    assert 0 < len(found) < PAGES * PER_PAGE
    assert len(found) % PER_PAGE == 0
    assert f"records written: {len(found)}\n" in err


def limit_file_size() -> None:
    """In the child: files may grow to 200 kB, then writes fail (as on a full disk)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.parametrize("kind", FORMATS)
def test_a_full_disk_stops_the_run_with_the_pages_before_it_whole(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    many(site, tmp_path)
    run = subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "many", "-q", "-o", OUTPUTS[kind]],
        cwd=tmp_path,
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_file_size,
    )
    code, _, err = finish(run)
    assert code == 1
    found = read_records(tmp_path / OUTPUTS[kind], kind, table="many", killed=True)
    message = err.splitlines()[-1]
    assert message.startswith(f"scraper: error: writing {OUTPUTS[kind]} failed: ")
    assert message.endswith(
        f"The {len(found)} records before this page are in the "
        + ("table 'many', complete." if kind == "sqlite" else "file, complete.")
    )
    assert 0 < len(found) < PAGES * PER_PAGE
    assert len(found) % PER_PAGE == 0


# -- exactly once: --resume, the Redis exporter, --workers ---------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_killed_and_resumed_runs_write_every_record_exactly_once(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    expected = catalogue(site, tmp_path)
    site.hold = 0.03  # about 0.6 s of crawling at concurrency 4
    out = tmp_path / OUTPUTS[kind]
    chance = random.Random(20261130)
    kills = 0
    for _ in range(4):
        before = written_bytes(out)
        run = scraper(tmp_path, "run", "catalogue", "-q", "-o", out.name, "--resume")
        deadline = time.monotonic() + 20
        while run.poll() is None and written_bytes(out) <= before:
            assert time.monotonic() < deadline, "the run wrote nothing in 20 s"
            time.sleep(0.01)
        time.sleep(chance.uniform(0.0, 0.3))  # a random moment once this run is writing
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        finish(run)
        read_records(out, kind, table="catalogue", killed=True)  # whole records only
    assert kills >= 2, "the crawl finished before it could be killed; slow the site down"
    code, _, err = finish(scraper(tmp_path, "run", "catalogue", "-q", "-o", out.name, "--resume"))
    assert code == 0, err
    found = read_records(out, kind, table="catalogue")
    assert ordered(found) == ordered([as_stored(r, kind) for r in expected])


@pytest.mark.parametrize("kind", FORMATS)
def test_an_export_killed_and_restarted_writes_every_record_once(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path, kind: str
) -> None:
    reference = big_crawl(site, redis_server, tmp_path)
    out = tmp_path / OUTPUTS[kind]
    export = ["export", "big", "--redis", redis_server.url, "-o", out.name]
    kills = 0
    for round_ in range(5):
        run = scraper(tmp_path, *export)
        time.sleep(0.05 + 0.05 * round_)
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        finish(run)
        if out.exists():
            read_records(out, kind, table="big", killed=True)  # whole records only
    assert kills >= 1, "the export ran too fast to be killed mid-way"
    code, _, err = finish(scraper(tmp_path, *export))
    assert code == 0, err
    found = read_records(out, kind, table="big")
    assert [record["item"] for record in found] == reference  # once each, in commit order
    beside = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(out.name))
    assert beside == ([out.name] if kind == "sqlite" else [out.name, f"{out.name}.redis-offset"])


@pytest.mark.parametrize("kind", FORMATS)
def test_workers_and_run_redis_write_every_format(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path, kind: str
) -> None:
    expected = catalogue(site, tmp_path)
    stored = ordered([as_stored(r, kind) for r in expected])
    code, _, err = finish(
        scraper(
            tmp_path,
            "run",
            "catalogue",
            "--workers",
            "2",
            "-o",
            f"w-{kind}" + Path(OUTPUTS[kind]).suffix,
        )
    )
    assert code == 0, err
    assert (
        ordered(
            read_records(
                tmp_path / f"w-{kind}{Path(OUTPUTS[kind]).suffix}", kind, table="catalogue"
            )
        )
        == stored
    )
    assert ("rows:            72 new, 0 updated\n" in err) == (kind == "sqlite")
    shared = ["run", "catalogue", "--redis", redis_server.url, "-o", OUTPUTS[kind]]
    code, _, err = finish(scraper(tmp_path, *shared))
    assert code == 0, err
    assert ordered(read_records(tmp_path / OUTPUTS[kind], kind, table="catalogue")) == stored


# -- memory ------------------------------------------------------------------------------------


PEAK = """
import resource, sys
from scraper.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


@pytest.mark.parametrize("kind", FORMATS)
def test_memory_stays_flat_however_many_records(
    site: FixtureSite, tmp_path: Path, kind: str
) -> None:
    long = "海" * 300
    for n in range(400):  # 20,000 records of 900 bytes each: 18 MB of them
        site.add(f"/page/{n}", "<ul>" + f"<li>{n} {long}</li>" * PER_PAGE + "</ul>")
    peaks = []
    for pages in (20, 400):
        spiders = MANY.format(base=site.base, pages=pages)
        (tmp_path / "spiders.yaml").write_text(spiders, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-c", PEAK, "run", "many", "-q", "-o", f"{pages}{OUTPUTS[kind]}"],
            cwd=tmp_path,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stdout.split()[-1]))  # KiB
    assert len(read_records(tmp_path / f"400{OUTPUTS[kind]}", kind, table="many")) == 20_000
    assert peaks[1] - peaks[0] < 6 * 1024, peaks  # 20x the records, not 20x the memory
