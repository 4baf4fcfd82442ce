"""The Python API (scraper/api.py) as a program uses it: records, results, errors, closing.

Crawls run against a real server on 127.0.0.1 (``tests/server.py``) or replay the
shipped maoyan cassette. ``SITE`` in a spider's YAML stands for the server's base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import scraper
from scraper.embed import WAITING_RECORDS
from tests.server import FixtureSite
from tests.test_cli import ENV, ROOT

SPIDER = """
spiders:
  items:
    start: 'SITE/p/{n}'
    vars: {n: {range: [0, PAGES]}}
    pattern: '<li>(?P<item>[^<]+)</li>'
"""


def item_site(site: FixtureSite, pages: int, per_page: int = 10) -> str:
    """``pages`` pages of ``per_page`` items each; the YAML text of a spider that reads them."""
    for n in range(pages):
        items = "".join(f"<li>{n}-{i}</li>" for i in range(per_page))
        site.add(f"/p/{n}", f"<html><body><ul>{items}</ul></body></html>")
    return SPIDER.replace("SITE", site.base).replace("PAGES", str(pages))


def items(pages: int, per_page: int = 10) -> list[str]:
    return sorted(f"{n}-{i}" for n in range(pages) for i in range(per_page))


def page_requests(site: FixtureSite) -> int:
    return sum(1 for r in site.requests if r.path != "/robots.txt")


def crawl_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("scraper")]


def open_connections(port: int) -> int:
    """This process's TCP connections to ``port`` that are open on our side."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                remote, state = line.split()[2:4]
                # 01 established, 08 close-wait: a socket we have not closed
                if int(remote.rsplit(":", 1)[1], 16) == port and state in ("01", "08"):
                    count += 1
    return count


def eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- records ------------------------------------------------------------------------------


def test_crawl_yields_the_records_of_a_spider_given_as_yaml_text(site: FixtureSite) -> None:
    spiders = item_site(site, 5)
    records = list(scraper.crawl(spiders, "items"))
    assert sorted(r["item"] for r in records) == items(5)
    assert records[0] == {"item": records[0]["item"]}


def test_offline_replays_the_shipped_maoyan_cassette() -> None:
    records = list(scraper.crawl(ROOT / "spiders.yaml", "maoyan", offline=True))
    assert len(records) == 100
    assert sorted(r["index"] for r in records) == list(range(1, 101))
    first = next(r for r in records if r["index"] == 1)
    assert (first["title"], first["score"]) == ("海镇来客", 9.7)


def test_a_spider_loaded_once_serves_several_crawls() -> None:
    spiders = scraper.load_spiders(ROOT / "spiders.yaml")
    assert list(spiders) == ["maoyan", "douban", "books"]
    assert spiders["maoyan"].settings.concurrency == 16
    assert len(list(scraper.crawl(spiders, "maoyan", offline=True))) == 100
    assert len(list(scraper.crawl(spiders, "douban", offline=True))) == 250


def test_a_dict_loads_as_the_same_yaml_would(site: FixtureSite) -> None:
    spiders = item_site(site, 3)
    import yaml

    as_dict = yaml.safe_load(spiders)
    records = list(scraper.crawl(as_dict, "items"))
    assert sorted(r["item"] for r in records) == items(3)


# -- settings per call --------------------------------------------------------------------


def test_settings_given_as_keywords_override_the_spiders(site: FixtureSite) -> None:
    spiders = item_site(site, 20)
    records = list(scraper.crawl(spiders, "items", max_pages=3, concurrency=1))
    assert page_requests(site) == 3
    assert len(records) == 30
    assert scraper.load_spiders(spiders)["items"].settings.max_pages is None  # for this call only


def test_an_unknown_keyword_is_a_type_error_listing_the_settings() -> None:
    with pytest.raises(TypeError) as caught:
        scraper.crawl(ROOT / "spiders.yaml", "maoyan", concurency=4)
    assert str(caught.value) == (
        "crawl() got an unexpected keyword argument 'concurency'; did you mean "
        "'concurrency'? Its settings are concurrency, per_host, timeout, retries, delay, "
        "jitter, robots, headers, proxy, max_bytes, max_redirects, content_types, "
        "extract_timeout, callback_timeout, allowed_domains, only, skip, max_depth, "
        "max_pages, wire (see README.md, 'Settings')."
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"concurrency": 0}, "crawl(): concurrency must be at least 1, not 0."),
        ({"delay": "1s"}, "crawl(): delay must be a number, not '1s'."),
        ({"robots": "no"}, "crawl(): robots must be true or false, not 'no'."),
        (
            {"proxy": "socks5://127.0.0.1:1080"},
            "crawl(): proxy must be an http:// or https:// URL such as http://host:3128, "
            "not 'socks5://127.0.0.1:1080'; SOCKS and other proxies are not supported.",
        ),
    ],
)
def test_a_bad_setting_is_refused_with_the_spider_files_message(
    setting: dict[str, Any], message: str
) -> None:
    with pytest.raises(scraper.SpecError) as caught:
        scraper.crawl(ROOT / "spiders.yaml", "maoyan", **setting)
    assert str(caught.value) == message


def test_a_setting_python_cannot_write_as_yaml_is_a_type_error() -> None:
    with pytest.raises(TypeError) as caught:
        scraper.run(ROOT / "spiders.yaml", "maoyan", headers={"X-Id": object})
    assert str(caught.value) == (
        "run(): <class 'object'> is not a setting's value: give text, numbers, "
        "True/False, lists or dicts of them."
    )


# -- errors ---------------------------------------------------------------------------------


def test_a_spec_error_in_yaml_text_names_the_string_line_and_column() -> None:
    text = "spiders:\n  films:\n    start: https://example.org/\n    pattren: '<b>(?P<t>.*)</b>'\n"
    with pytest.raises(scraper.SpecError) as caught:
        scraper.load_spiders(text)
    assert str(caught.value) == (
        "<string>:4:5: unknown key 'pattren' in spider 'films'; did you mean 'pattern'?"
    )


def test_a_spec_error_in_a_dict_names_the_dict() -> None:
    spiders = {"spiders": {"films": {"start": "https://example.org/", "concurrency": -1}}}
    with pytest.raises(scraper.SpecError) as caught:
        scraper.crawl(spiders, "films")
    assert str(caught.value) == ("<dict>: spider 'films': concurrency must be at least 1, not -1.")


def test_a_spec_error_in_a_file_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "spiders.yaml"
    path.write_text("spiders:\n  films:\n    start: 7\n    pattern: x\n", encoding="utf-8")
    with pytest.raises(scraper.SpecError) as caught:
        scraper.crawl(path, "films")
    assert str(caught.value).startswith(f"{path}:3:12: ")


def test_an_unknown_spider_names_the_ones_there_are() -> None:
    with pytest.raises(scraper.SpiderNotFound) as caught:
        scraper.run(ROOT / "spiders.yaml", "maoyam")
    assert str(caught.value) == (
        f"no spider named 'maoyam' in {ROOT / 'spiders.yaml'} (it defines: maoyan, douban, "
        "books); did you mean 'maoyan'?"
    )


def test_a_missing_cassette_is_the_clis_cassette_error(tmp_path: Path, site: FixtureSite) -> None:
    spiders = scraper.load_spiders(item_site(site, 1), base=tmp_path)
    with pytest.raises(scraper.CassetteError) as caught:
        list(scraper.crawl(spiders, "items", offline=True))
    cassette = tmp_path / "spiders" / "cassettes" / "items.yaml"
    assert str(caught.value) == (
        f"no cassette at {cassette}: record one first with 'scraper run items --record' "
        "(needs the network), or name another with --cassette PATH."
    )
    assert crawl_threads() == []


# -- run ------------------------------------------------------------------------------------


def test_run_writes_the_output_and_returns_the_counts(site: FixtureSite, tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    result = scraper.run(item_site(site, 4), "items", output=out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["item"] for line in lines) == items(4)
    assert (result.pages, result.records, result.failures, result.exit_status) == (4, 40, 0, 0)
    assert (result.spider, result.output, result.failed) == ("items", out, {})
    assert result.summary.splitlines()[:3] == [
        "pages fetched:   4",
        "pages failed:    0",
        "records written: 40",
    ]
    assert not (tmp_path / "items.jsonl.lock").exists()


def test_a_run_with_failing_pages_has_exit_status_1(site: FixtureSite) -> None:
    spiders = item_site(site, 3)
    site.add_fault("/p/1", "status", status=404)
    result = scraper.run(spiders, "items", retries=0)
    assert (result.pages, result.records, result.exit_status) == (2, 20, 1)
    assert result.failed == {"http 404": 1}


def test_run_resume_continues_an_output(site: FixtureSite, tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    spiders = item_site(site, 6)
    first = scraper.run(spiders, "items", output=out, resume=True, max_pages=2, concurrency=1)
    again = scraper.run(spiders, "items", output=out, resume=True)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["item"] for line in lines) == items(6)
    assert (first.pages, again.pages) == (2, 4)


def test_run_into_sqlite_counts_new_and_updated_rows(site: FixtureSite, tmp_path: Path) -> None:
    out = tmp_path / "items.db"
    spiders = item_site(site, 3)
    first = scraper.run(spiders, "items", output=out, key="item")
    again = scraper.run(spiders, "items", output=out, key=["item"])
    assert (first.rows, again.rows) == ({"new": 30, "updated": 0}, {"new": 0, "updated": 30})
    assert "rows:            0 new, 30 updated" in again.summary.splitlines()
    with contextlib.closing(sqlite3.connect(out)) as db:
        stored = [row[0] for row in db.execute("select item from items order by item")]
    assert stored == items(3)


def test_run_chooses_the_format_by_extension_or_format(site: FixtureSite, tmp_path: Path) -> None:
    spiders = item_site(site, 2)
    scraper.run(spiders, "items", output=tmp_path / "items.csv")
    scraper.run(spiders, "items", output=tmp_path / "items.txt", format="json")
    with (tmp_path / "items.csv").open(encoding="utf-8", newline="") as file:
        assert sorted(row["item"] for row in csv.DictReader(file)) == items(2)
    array = json.loads((tmp_path / "items.txt").read_text(encoding="utf-8"))
    assert sorted(record["item"] for record in array) == items(2)


def test_run_to_stdout_writes_json_lines(
    site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    result = scraper.run(item_site(site, 2), "items", output="-")
    lines = capsys.readouterr().out.splitlines()
    assert sorted(json.loads(line)["item"] for line in lines) == items(2)
    assert (result.output, result.rows) == (None, None)


def test_an_output_that_cannot_be_written_is_an_output_error(
    site: FixtureSite, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "items.jsonl"
    with pytest.raises(scraper.OutputError) as caught:
        scraper.run(item_site(site, 2), "items", output=out)
    assert str(caught.value) == (
        f"cannot write the output {out}: No such file or directory. "
        "Choose a path in a writable folder with -o PATH."
    )
    assert page_requests(site) == 0


# -- two crawls in one process --------------------------------------------------------------


def test_a_crawl_runs_twice_in_one_process(site: FixtureSite) -> None:
    spiders = item_site(site, 5)
    for _ in range(2):
        assert sorted(r["item"] for r in scraper.crawl(spiders, "items")) == items(5)
    assert page_requests(site) == 10


def test_two_crawls_read_side_by_side_in_one_thread(site: FixtureSite) -> None:
    spiders = item_site(site, 30)
    both = zip(scraper.crawl(spiders, "items"), scraper.crawl(spiders, "items"), strict=True)
    pairs = list(both)
    assert len(pairs) == 300
    assert sorted(a["item"] for a, _ in pairs) == sorted(b["item"] for _, b in pairs)


def test_two_crawls_at_once_in_two_threads(site: FixtureSite) -> None:
    spiders = item_site(site, 40)
    site.hold = 0.01
    results: dict[str, list[str]] = {}

    def crawl(name: str, **settings: Any) -> None:
        results[name] = sorted(r["item"] for r in scraper.crawl(spiders, "items", **settings))

    threads = [
        threading.Thread(target=crawl, args=("a",), kwargs={"concurrency": 2}),
        threading.Thread(target=crawl, args=("b",), kwargs={"concurrency": 3}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": items(40), "b": items(40)}
    assert page_requests(site) == 80
    assert crawl_threads() == []


def test_two_acrawl_tasks_on_one_loop(site: FixtureSite) -> None:
    spiders = scraper.load_spiders(item_site(site, 40))
    site.hold = 0.01

    async def crawl(concurrency: int) -> list[str]:
        return sorted(
            [r["item"] async for r in scraper.acrawl(spiders, "items", concurrency=concurrency)]
        )

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(crawl(2), crawl(3)))

    assert asyncio.run(both()) == [items(40), items(40)]
    assert page_requests(site) == 80


def test_crawl_works_inside_a_running_event_loop(site: FixtureSite) -> None:
    spiders = item_site(site, 5)

    async def notebook_cell() -> list[str]:
        # As in Jupyter: plain code in a coroutine, calling the sync generator.
        return sorted(r["item"] for r in scraper.crawl(spiders, "items"))

    assert asyncio.run(notebook_cell()) == items(5)
    with pytest.raises(RuntimeError):  # the loop asyncio.run made is gone
        asyncio.get_running_loop()


def test_a_second_offline_crawl_at_once_is_refused_saying_why() -> None:
    path = ROOT / "spiders.yaml"

    async def two_at_once() -> str:
        first = scraper.acrawl(path, "maoyan", offline=True)
        await anext(first)  # the first replays; this loop is held while the second starts
        with pytest.raises(scraper.ScraperError) as caught:
            next(scraper.crawl(path, "douban", offline=True))
        await first.aclose()
        return str(caught.value)

    assert asyncio.run(two_at_once()) == (
        "another offline crawl is running in this process, and two cannot run at once: a "
        "cassette is replayed by patching the HTTP libraries of the whole process. Finish or "
        "close the first one, or run this one online."
    )
    assert len(list(scraper.crawl(path, "douban", offline=True))) == 250


# -- stopping early -------------------------------------------------------------------------


def test_breaking_out_of_the_loop_stops_the_crawl(site: FixtureSite) -> None:
    spiders = item_site(site, 400)
    site.hold = 0.02
    taken = []
    for record in scraper.crawl(spiders, "items", concurrency=4):
        taken.append(record)
        if len(taken) == 15:
            break
    assert crawl_threads() == []
    assert eventually(lambda: open_connections(site.port) == 0)
    time.sleep(0.2)  # a request sent just before may still be on its way to the server
    asked = page_requests(site)
    time.sleep(0.5)
    assert page_requests(site) == asked < 400


def test_closing_an_acrawl_stops_the_crawl_while_the_loop_goes_on(site: FixtureSite) -> None:
    spiders = item_site(site, 400)
    site.hold = 0.02

    async def first_records() -> tuple[int, int, int]:
        async with contextlib.aclosing(scraper.acrawl(spiders, "items", concurrency=4)) as records:
            async for record in records:
                if record["item"].endswith("-9"):
                    break
        connections = open_connections(site.port)
        await asyncio.sleep(0.2)  # a request sent just before may still be on its way
        asked = page_requests(site)
        await asyncio.sleep(0.5)
        return connections, asked, page_requests(site)

    connections, asked, later = asyncio.run(first_records())
    assert connections == 0
    assert later == asked < 400


def test_breaking_out_of_an_acrawl_stops_the_crawl_soon_after(site: FixtureSite) -> None:
    spiders = item_site(site, 400)
    site.hold = 0.02

    async def first_records() -> tuple[int, int]:
        async for record in scraper.acrawl(spiders, "items", concurrency=4):
            if record["item"].endswith("-9"):
                break
        # Python closes an async generator left early when it is collected, in a task.
        await asyncio.sleep(0.3)
        asked = page_requests(site)
        await asyncio.sleep(0.5)
        return asked, page_requests(site)

    asked, later = asyncio.run(first_records())
    assert later == asked < 400


def test_a_slow_reader_holds_the_crawl(site: FixtureSite) -> None:
    pages = 3 * WAITING_RECORDS // 10
    spiders = item_site(site, pages)
    records = scraper.crawl(spiders, "items", concurrency=4)
    first = next(records)
    time.sleep(1.0)
    held = page_requests(site)
    # At most WAITING_RECORDS wait, and the pages in flight when the reader fell behind.
    assert held <= WAITING_RECORDS // 10 + 4 + 1
    rest = list(records)
    assert sorted([first["item"], *(r["item"] for r in rest)]) == items(pages)


BREAK_EARLY = """
import asyncio, contextlib, gc, sys, threading
import scraper
from tests.server import FixtureSite

with FixtureSite() as site:
    for n in range(300):
        site.add(f"/p/{n}", "<ul>" + "".join(f"<li>{n}-{i}</li>" for i in range(10)) + "</ul>")
    site.hold = 0.02
    spiders = scraper.load_spiders(SPIDER.replace("SITE", site.base).replace("PAGES", "300"))
    for record in scraper.crawl(spiders, "items", concurrency=8):
        break
    records = scraper.crawl(spiders, "items")
    next(records)
    del records

    async def main():
        async for record in scraper.acrawl(spiders, "items", concurrency=8):
            break
        async with contextlib.aclosing(scraper.acrawl(spiders, "items")) as records:
            async for record in records:
                break
        task = asyncio.ensure_future(anext(scraper.acrawl(spiders, "items")))
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.1)

    asyncio.run(main())
    gc.collect()
    names = [t.name for t in threading.enumerate() if t.name.startswith("scraper")]
    assert names == [], names
print("ok")
"""


def test_stopping_early_leaves_no_warning_behind(tmp_path: Path) -> None:
    script = tmp_path / "early.py"
    script.write_text(f"SPIDER = {SPIDER!r}\n{BREAK_EARLY}", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_breaking_out_leaves_nothing_for_the_garbage_collector(site: FixtureSite) -> None:
    spiders = item_site(site, 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in scraper.crawl(spiders, "items"):
            break
        gc.collect()
    assert [str(w.message) for w in caught] == []


# -- signals --------------------------------------------------------------------------------


def test_acrawl_leaves_the_host_programs_signal_handlers_alone(site: FixtureSite) -> None:
    spiders = item_site(site, 5)
    seen: list[object] = []

    def host_handler(signum: int, frame: object) -> None:
        pass

    async def host() -> list[str]:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
        records = []
        async for record in scraper.acrawl(spiders, "items"):
            seen.append(signal.getsignal(signal.SIGINT))
            records.append(record["item"])
        seen.append(asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM))
        return sorted(records)

    previous = signal.signal(signal.SIGINT, host_handler)
    try:
        assert asyncio.run(host()) == items(5)
        assert signal.getsignal(signal.SIGINT) is host_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert set(map(id, seen[:-1])) == {id(host_handler)}
    assert seen[-1] is True  # the host's SIGTERM handler was still there to remove


INTERRUPTED = """
import json, os, signal, sys, threading, time
import scraper
from tests.server import FixtureSite

with FixtureSite() as site:
    for n in range(200):
        site.add(f"/p/{n}", "<ul>" + "".join(f"<li>{n}-{i}</li>" for i in range(10)) + "</ul>")
    site.hold = 0.05
    spiders = SPIDER.replace("SITE", site.base).replace("PAGES", "200")
    threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        if sys.argv[1] == "crawl":
            for record in scraper.crawl(spiders, "items", concurrency=2):
                pass
        else:
            scraper.run(spiders, "items", output=sys.argv[2], concurrency=2)
    except KeyboardInterrupt:
        time.sleep(0.2)  # a request sent just before may still be on its way to the server
        asked = len(site.requests)
        time.sleep(0.5)
        names = [t.name for t in threading.enumerate() if t.name.startswith("scraper")]
        print(json.dumps({"names": names, "more": len(site.requests) - asked}))
"""


@pytest.mark.parametrize("function", ["crawl", "run"])
def test_ctrl_c_is_a_keyboard_interrupt_that_stops_the_crawl(function: str, tmp_path: Path) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(f"SPIDER = {SPIDER!r}\n{INTERRUPTED}", encoding="utf-8")
    out = tmp_path / "items.jsonl"
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script), function, str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"names": [], "more": 0}
    if function == "run":
        lines = out.read_text(encoding="utf-8").splitlines()
        assert 0 < len(lines) < 2000
        assert all(json.loads(line)["item"] for line in lines)  # whole lines only


# -- the README's examples ------------------------------------------------------------------


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Using scraper from Python\n(.*?)(?=^## )", text, re.M | re.S)
    if section is None:
        return ["raise AssertionError('README.md has no section \"Using scraper from Python\"')"]
    return re.findall(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)


@pytest.mark.parametrize("example", readme_examples())
def test_the_readme_examples_run_offline(
    example: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy(ROOT / "spiders.yaml", tmp_path)
    shutil.copytree(ROOT / "spiders", tmp_path / "spiders")
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(example), "README.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out
