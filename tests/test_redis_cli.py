"""The Redis crawl on the command line: run --redis, export, status, reset, --workers N.

Against a real redis-server (tests/redis_server.py) and real ``scraper`` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scraper.cli import main
from scraper.rediscrawl import RedisCrawl
from scraper.redisexport import RecordExporter
from scraper.spec import load_spiders
from tests.redis_server import RedisServer, free_port
from tests.server import FixtureSite

LISTS, ITEMS, FIELDS = 10, 60, 5
"""List pages; detail pages, each linked from two lists; records a detail page gives."""

SPIDER = """
spiders:
  shop:
    start: {base}/list/{{n}}
    vars:
      n: {{range: [0, {lists}]}}
    robots: false
    pages:
      list:
        follow:
          - {{pattern: 'href="(/item/\\d+)"', to: item}}
      item:
        pattern: '<li>(?P<item>[^<]+)</li>'
"""


def build_shop(site: FixtureSite, tmp_path: Path, *, missing: int | None = None) -> list[str]:
    """A list -> detail shop; each detail page is linked from two lists. Its records."""
    for n in range(LISTS):
        links = "".join(f'<a href="/item/{k % ITEMS}">x</a>' for k in range(n * 6, n * 6 + 12))
        site.add(f"/list/{n}", f"<p>{links}</p>")
    for k in range(ITEMS):
        if k == missing:
            site.add(f"/item/{k}", "gone", status=404)
        else:
            site.add(f"/item/{k}", "".join(f"<li>{k}-{i} 件</li>" for i in range(FIELDS)))
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base=site.base, lists=LISTS), encoding="utf-8"
    )
    return [f"{k}-{i} 件" for k in range(ITEMS) if k != missing for i in range(FIELDS)]


def scraper(tmp_path: Path, *args: str, **options: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,  # type: ignore[call-overload]
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, out, err


def items(path: Path) -> list[str]:
    return [json.loads(line)["item"] for line in path.read_text(encoding="utf-8").splitlines()]


def fetched_twice(site: FixtureSite) -> list[str]:
    paths = [request.path for request in site.requests]
    return sorted({path for path in paths if paths.count(path) > 1})


# -- run --redis ------------------------------------------------------------------------------


def test_two_processes_share_a_crawl_and_the_one_with_o_writes_all_of_it(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path, missing=7)
    site.hold = 0.02
    writer = scraper(tmp_path, "run", "shop", "--redis", redis_server.url, "-o", "out.jsonl")
    crawler = scraper(tmp_path, "run", "shop", "--redis", redis_server.url)

    code, out, err = finish(writer)
    other_code, other_out, other_err = finish(crawler)

    assert (code, other_code) != (0, 0)  # the 404 is a failed page of one of them
    assert {code, other_code} <= {0, 1}, err + other_err
    assert "Traceback" not in err + other_err
    assert out == other_out == ""  # with or without -o, nothing goes to stdout
    assert sorted(items(tmp_path / "out.jsonl")) == sorted(expected)
    assert fetched_twice(site) == []
    assert len(site.requests) == LISTS + ITEMS
    assert f"scraper: WARNING: failed {site.base}/item/7: answered 404\n" in err + other_err


def test_run_redis_alone_reads_redis_url_and_crawl_names_the_crawl(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path)
    environment = {**os.environ, "REDIS_URL": redis_server.url}
    run = scraper(
        tmp_path, "run", "shop", "--redis", "--crawl", "week-1", "-o", "a.jsonl", env=environment
    )
    code, _, err = finish(run)
    assert code == 0, err
    assert sorted(items(tmp_path / "a.jsonl")) == sorted(expected)

    # The same spider under another crawl ID is another crawl: it fetches everything again.
    again = scraper(tmp_path, "run", "shop", "--redis", redis_server.url, "-o", "b.jsonl")
    assert finish(again)[0] == 0
    assert sorted(items(tmp_path / "b.jsonl")) == sorted(expected)
    assert len(site.requests) == 2 * (LISTS + ITEMS)


def test_unreachable_redis_is_an_error_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9", lists=1), encoding="utf-8"
    )
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    for command in (["run", "shop"], ["status", "shop"], ["export", "shop", "--now"]):
        code, out, err = finish(scraper(tmp_path, *command, "--redis", url))
        assert code == 2
        assert out == ""
        assert err == (
            f"scraper: error: cannot reach Redis at {url}: "
            f"Error 111 connecting to 127.0.0.1:{port}. "
            f"Connect call failed ('127.0.0.1', {port}).\n"
        )


def test_an_unreachable_redis_is_named_without_its_password(tmp_path: Path) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9", lists=1), encoding="utf-8"
    )
    port = free_port()
    for command in (["run", "shop"], ["status", "shop"], ["export", "shop", "--now"]):
        url = f"redis://:s3cret@127.0.0.1:{port}/0"
        code, out, err = finish(scraper(tmp_path, *command, "--redis", url))
        assert (code, out) == (2, "")
        assert err == (
            f"scraper: error: cannot reach Redis at redis://:***@127.0.0.1:{port}/0: "
            f"Error 111 connecting to 127.0.0.1:{port}. "
            f"Connect call failed ('127.0.0.1', {port}).\n"
        )


def test_redis_lost_mid_crawl_is_said_once_per_process_and_never_with_its_password(
    site: FixtureSite, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path)
    site.hold = 0.05
    spiders = tmp_path / "spiders.yaml"
    spiders.write_text(spiders.read_text(encoding="utf-8") + "    concurrency: 2\n", "utf-8")
    with RedisServer(appendonly=True) as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        shown = f"redis://:***@127.0.0.1:{server.port}/0"
        # A claim whose reply went with Redis leaves a lease nobody holds: a short one.
        common = ("run", "shop", "-v", "--redis", url, "--lease", "2")
        runs = [scraper(tmp_path, *common, "-o", "out.jsonl"), scraper(tmp_path, *common)]
        deadline = time.monotonic() + 20
        while len(site.requests) < 15:
            assert time.monotonic() < deadline and all(r.poll() is None for r in runs)
            time.sleep(0.01)
        server.kill()  # SIGKILL: what was committed is in the append-only file
        time.sleep(1.0)
        server.start()
        results = [finish(run) for run in runs]
    for code, out, err in results:
        assert (code, out) == (0, ""), err
        assert "s3cret" not in err
        lost = [line for line in err.splitlines() if "lost Redis" in line]
        assert len(lost) == 1, err
        assert lost[0].startswith(f"scraper: WARNING: lost Redis at {shown}; retrying ("), err
        assert err.count(f"scraper: INFO: Redis at {shown} is back\n") == 1, err
    assert sorted(items(tmp_path / "out.jsonl")) == sorted(expected)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["run", "shop", "--redis", "http://127.0.0.1:6379"],
            "--redis takes a redis://, rediss:// or unix:// URL, not 'http://127.0.0.1:6379' "
            "(e.g. redis://:PASSWORD@HOST:6379/0).",
        ),
        (
            ["run", "shop", "--redis"],
            "--redis without a URL reads the REDIS_URL environment variable, which is not set: "
            "give the URL, e.g. --redis redis://localhost:6379/0.",
        ),
        (["run", "shop", "--crawl", "x"], "--crawl goes with --redis."),
        (
            ["run", "shop", "--dedup", "bloom", "-o", "o.jsonl"],
            "--dedup goes with --redis or --workers: a single process keeps the URLs it has "
            "seen in memory (or in its --resume state).",
        ),
        (
            ["run", "shop", "--redis", "redis://h/0", "--crawl", "a{b}"],
            "--crawl 'a{b}' cannot name a crawl: use letters, digits and - _ . : (200 at most).",
        ),
        (
            ["run", "shop", "--redis", "redis://h/0", "-o", "o.jsonl", "--resume"],
            "--resume does not go with --redis: the crawl's state is in Redis.",
        ),
        (
            ["status", "shop"],
            "scraper status needs the crawl's Redis: add --redis URL (or set REDIS_URL).",
        ),
    ],
)
def test_redis_options_that_cannot_work_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    spiders = tmp_path / "spiders.yaml"
    spiders.write_text(SPIDER.format(base="http://127.0.0.1:9", lists=1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 2
    assert capsys.readouterr().err == f"scraper: error: {message}\n"


# -- status and reset -------------------------------------------------------------------------


def test_status_shows_the_crawl_and_reset_deletes_it_when_told_yes(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    build_shop(site, tmp_path, missing=7)
    code, _, err = finish(scraper(tmp_path, "run", "shop", "--redis", redis_server.url))
    assert code == 1, err  # the 404

    code, out, err = finish(scraper(tmp_path, "status", "shop", "--redis", redis_server.url))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:10] == [
        f"crawl:           shop at {redis_server.url}",
        "finished:        yes",
        "queued:          0",
        "in flight:       0",
        f"done:            {LISTS + ITEMS - 1}",
        "failed:          1 (http 404: 1)",
        "dead:            0",
        f"records:         {(ITEMS - 1) * FIELDS}",
        "dropped:         0",
        "hosts waiting:   0",
    ]
    assert lines[10].startswith("processes:       ")
    assert lines[10].endswith(" (seen in the last 10 s)")
    assert lines[11] == f"already seen:    {LISTS * 12 - ITEMS} (links and start URLs not queued)"
    assert lines[12].startswith("dedup memory:    ") and lines[12].endswith(" bytes per URL")
    assert len(lines) == 13

    said_no = scraper(tmp_path, "reset", "shop", "--redis", redis_server.url, stdin=subprocess.PIPE)
    said_no.stdin.write("n\n")  # type: ignore[union-attr]
    code, out, err = finish(said_no)
    assert code == 0
    keys = int(err.split("delete ")[1].split(" keys")[0])
    assert keys > 0
    assert err == (
        f"delete {keys} keys of crawl shop at {redis_server.url}? [y/N] nothing deleted.\n"
    )
    status = finish(scraper(tmp_path, "status", "shop", "--redis", redis_server.url))[1]
    assert f"records:         {(ITEMS - 1) * FIELDS}" in status

    said_yes = scraper(
        tmp_path, "reset", "shop", "--redis", redis_server.url, stdin=subprocess.PIPE
    )
    said_yes.stdin.write("y\n")  # type: ignore[union-attr]
    code, _, err = finish(said_yes)
    assert code == 0
    assert err.endswith(f"? [y/N] deleted {keys} keys of crawl shop at {redis_server.url}.\n")
    status = finish(scraper(tmp_path, "status", "shop", "--redis", redis_server.url))[1]
    assert "records:         0\n" in status
    assert "finished:        no\n" in status  # nobody has seeded it: a new crawl


def test_reset_yes_does_not_ask_and_a_new_run_starts_afresh(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path)
    assert finish(scraper(tmp_path, "run", "shop", "--redis", redis_server.url))[0] == 0
    reset = scraper(
        tmp_path, "reset", "shop", "--redis", redis_server.url, "--yes", stdin=subprocess.DEVNULL
    )
    code, _, err = finish(reset)
    assert code == 0
    assert err.startswith("deleted ") and err.endswith(
        f" keys of crawl shop at {redis_server.url}.\n"
    )
    run = scraper(tmp_path, "run", "shop", "--redis", redis_server.url, "-o", "out.jsonl")
    assert finish(run)[0] == 0
    assert sorted(items(tmp_path / "out.jsonl")) == sorted(expected)
    assert len(site.requests) == 2 * (LISTS + ITEMS)


def test_status_hides_the_password_of_the_url(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9", lists=1), encoding="utf-8"
    )
    url = f"redis://:secret@127.0.0.1:{redis_server.port}/0"  # no password set: Redis ignores it
    code = main(["status", "shop", "-f", str(tmp_path / "spiders.yaml"), "--redis", url])
    out = capsys.readouterr().out
    assert (code, out.splitlines()[0]) == (
        0,
        f"crawl:           shop at redis://:***@127.0.0.1:{redis_server.port}/0",
    )
    assert "secret" not in out


# -- export -----------------------------------------------------------------------------------


BIG = """
spiders:
  big:
    start: {base}/page/{{n}}
    vars:
      n: {{range: [0, 40]}}
    robots: false
    pattern: '<li>(?P<item>[^<]+)</li>'
"""


def big_crawl(site: FixtureSite, redis_server: RedisServer, tmp_path: Path) -> list[str]:
    """A finished crawl of 40 pages x 1,000 records in Redis; the records in commit order."""
    for n in range(40):
        site.add(f"/page/{n}", "".join(f"<li>{n}-{i} 页</li>" for i in range(1000)))
    (tmp_path / "spiders.yaml").write_text(BIG.format(base=site.base), encoding="utf-8")
    code, _, err = finish(scraper(tmp_path, "run", "big", "--redis", redis_server.url))
    assert code == 0, err
    code, out, err = finish(scraper(tmp_path, "export", "big", "--redis", redis_server.url))
    assert code == 0, err
    return [json.loads(line)["item"] for line in out.splitlines()]


def test_export_killed_and_restarted_writes_every_record_once_in_order(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    reference = big_crawl(site, redis_server, tmp_path)
    assert sorted(reference) == sorted(f"{n}-{i} 页" for n in range(40) for i in range(1000))
    out = tmp_path / "out.jsonl"
    kills = 0
    for round_ in range(6):
        export = scraper(tmp_path, "export", "big", "--redis", redis_server.url, "-o", "out.jsonl")
        time.sleep(0.15 + 0.1 * round_)
        if export.poll() is None:
            export.send_signal(signal.SIGKILL)
            kills += 1
        export.wait()
        lines = out.read_bytes().split(b"\n") if out.exists() else [b""]
        assert all(json.loads(line) for line in lines[:-1])  # whole lines only
    assert kills >= 2, "the export ran too fast to be killed mid-way"
    code, _, err = finish(
        scraper(tmp_path, "export", "big", "--redis", redis_server.url, "-o", "out.jsonl")
    )
    assert code == 0, err
    assert items(out) == reference


def test_lines_written_after_the_saved_offset_are_cut_back_on_restart(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    reference = big_crawl(site, redis_server, tmp_path)
    out = tmp_path / "out.jsonl"
    first = finish(
        scraper(tmp_path, "export", "big", "--redis", redis_server.url, "-o", "out.jsonl")
    )
    assert first[0] == 0
    offset = json.loads((tmp_path / "out.jsonl.redis-offset").read_text(encoding="utf-8"))
    assert offset["size"] == out.stat().st_size
    # Killed after writing a batch, before saving its offset: the batch is in the file twice
    # over what the offset says, and half a line too.
    with out.open("ab") as file:
        file.write(out.read_bytes()[-5000:] + b'{"item": "half')
    again = scraper(tmp_path, "export", "big", "--redis", redis_server.url, "-o", "out.jsonl")
    assert finish(again)[0] == 0
    assert items(out) == reference


def test_the_offset_is_saved_at_most_every_second_and_on_close(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Between two saves the output runs ahead of its offset: an exporter that dies
    there (never closed) leaves lines that the next one cuts back and writes again."""
    reference = big_crawl(site, redis_server, tmp_path)
    spider = load_spiders(tmp_path / "spiders.yaml").get("big")
    out = tmp_path / "out.jsonl"
    offset_file = tmp_path / "out.jsonl.redis-offset"

    async def export(close: bool) -> None:
        crawl = RedisCrawl(await RedisCrawl.open_client(redis_server.url), "big")
        exporter = RecordExporter(crawl, "big", out, spider)
        try:
            assert await exporter.run(until_now=True) == len(reference)
            if close:
                exporter.close()
        finally:
            await crawl.close()

    asyncio.run(export(close=False))
    assert items(out) == reference  # written, but within a second of the offset's last save
    assert json.loads(offset_file.read_text(encoding="utf-8"))["size"] == 0
    asyncio.run(export(close=True))  # cuts the output back to 0 bytes and writes it again
    assert items(out) == reference
    offset = json.loads(offset_file.read_text(encoding="utf-8"))
    assert offset["size"] == out.stat().st_size


def test_export_now_writes_what_is_there_and_another_crawls_output_is_refused(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    reference = big_crawl(site, redis_server, tmp_path)
    now = scraper(tmp_path, "export", "big", "--redis", redis_server.url, "--now", "-o", "o.jsonl")
    assert finish(now)[0] == 0
    assert items(tmp_path / "o.jsonl") == reference
    other = scraper(
        tmp_path, "export", "big", "--redis", redis_server.url, "--crawl", "x", "-o", "o.jsonl"
    )
    code, _, err = finish(other)
    assert code == 2
    assert err == (
        "scraper: error: o.jsonl holds the records of crawl 'big', not 'x': "
        "choose another -o PATH, or give --crawl the crawl it holds.\n"
    )


# -- --dedup bloom ----------------------------------------------------------------------------


def test_a_crawl_started_with_dedup_bloom_is_joined_as_it_is_and_refuses_dedup_set(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path, missing=7)
    site.hold = 0.02
    url = redis_server.url
    writer = scraper(tmp_path, "run", "shop", "--redis", url, "--dedup", "bloom", "-o", "o.jsonl")
    time.sleep(0.5)  # the first process chooses; this one has no --dedup and follows it
    crawler = scraper(tmp_path, "run", "shop", "--redis", url)
    (code, _, err), (other_code, _, other_err) = finish(writer), finish(crawler)
    assert {code, other_code} <= {0, 1} and 1 in {code, other_code}, err + other_err

    assert sorted(items(tmp_path / "o.jsonl")) == sorted(expected)
    assert fetched_twice(site) == []
    assert len(site.requests) == LISTS + ITEMS
    code, out, err = finish(scraper(tmp_path, "status", "shop", "--redis", url))
    assert code == 0, err
    assert f"already seen:    {LISTS * 12 - ITEMS} (links and start URLs not queued)\n" in out
    per_url = out.split("dedup memory:    ")[1].split(" bytes per URL")[0]
    assert float(per_url) > 10_000  # the first filter is made whole: 2 MB for 69 URLs
    assert out.endswith(
        " bytes per URL (--dedup bloom: a URL never seen is taken for seen with a chance "
        "under 1 in 1,000)\n"
    )

    code, out, err = finish(scraper(tmp_path, "run", "shop", "--redis", url, "--dedup", "set"))
    assert (code, out) == (2, "")
    assert err == (
        "scraper: error: the crawl 'shop' in Redis keeps its seen URLs with --dedup bloom, "
        "chosen by the process that started it, not --dedup set: leave out --dedup to join "
        "it as it is, or delete the crawl with 'scraper reset' to start it anew with "
        "--dedup set.\n"
    )


def test_two_workers_with_dedup_bloom_write_every_record_once(
    site: FixtureSite, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path)
    run = scraper(tmp_path, "run", "shop", "--workers", "2", "--dedup", "bloom", "-o", "o.jsonl")
    code, _, err = finish(run)
    assert code == 0, err
    assert sorted(items(tmp_path / "o.jsonl")) == sorted(expected)
    assert fetched_twice(site) == []
    assert f"records written: {len(expected)}\n" in err


# -- --workers N ------------------------------------------------------------------------------


def test_two_workers_fetch_no_page_twice_and_write_every_record_once(
    site: FixtureSite, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path, missing=7)
    site.hold = 0.02
    code, out, err = finish(scraper(tmp_path, "run", "shop", "--workers", "2", "-o", "out.jsonl"))
    assert code == 1, err  # the 404
    assert out == ""
    assert sorted(items(tmp_path / "out.jsonl")) == sorted(expected)
    assert fetched_twice(site) == []
    assert len(site.requests) == LISTS + ITEMS
    assert f"pages fetched:   {LISTS + ITEMS - 1}\n" in err
    assert "pages failed:    1 (http 404: 1)\n" in err
    assert f"records written: {len(expected)}\n" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "spiders.yaml"]


def test_run_with_o_stopped_and_started_again_continues_its_output(
    site: FixtureSite, redis_server: RedisServer, tmp_path: Path
) -> None:
    expected = build_shop(site, tmp_path)
    site.hold = 0.05
    spiders = tmp_path / "spiders.yaml"
    spiders.write_text(spiders.read_text(encoding="utf-8") + "    concurrency: 2\n", "utf-8")
    out = tmp_path / "out.jsonl"
    first = scraper(tmp_path, "run", "shop", "--redis", redis_server.url, "-o", "out.jsonl")
    deadline = time.monotonic() + 20
    while not (out.exists() and out.stat().st_size > 1000):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    code, _, err = finish(first)
    assert code == 143, err
    assert 0 < len(items(out)) < len(expected)

    second = scraper(tmp_path, "run", "shop", "--redis", redis_server.url, "-o", "out.jsonl")
    code, _, err = finish(second)
    assert code == 0, err
    assert sorted(items(out)) == sorted(expected)
    assert fetched_twice(site) == []
