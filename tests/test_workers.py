"""scraper run --workers N: several processes share one crawl and one output file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server import FixtureSite
from tests.test_cli import stop_once_writing

SPIDER = """
spiders:
  pages:
    start: {base}/page/{{n}}
    vars:
      n: {{range: [0, 40]}}
    robots: false
    pattern: '<li>(?P<item>[^<]+)</li>'
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scraper", "run", "pages", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_two_workers_write_every_record_once(site: FixtureSite, tmp_path: Path) -> None:
    for n in range(40):
        items = "".join(f"<li>{n}-{i} 页</li>" for i in range(50))
        site.add(f"/page/{n}", f"<ul>{items}</ul>")
    site.add("/page/7", "gone", status=404)
    (tmp_path / "spiders.yaml").write_text(SPIDER.format(base=site.base), encoding="utf-8")

    done = run(tmp_path, "-o", "out.jsonl", "--workers", "2")

    assert done.returncode == 1  # the 404
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line)["item"] for line in lines]
    expected = [f"{n}-{i} 页" for n in range(40) if n != 7 for i in range(50)]
    assert sorted(items) == sorted(expected)
    assert site.count("/page/3") == 1
    assert "pages fetched:   39\n" in done.stderr
    assert "pages failed:    1 (http 404: 1)\n" in done.stderr
    assert "records written: 1950\n" in done.stderr
    hosts = {r.headers.get("User-Agent") for r in site.requests}
    assert len(hosts) == 1


def test_workers_need_an_output_file(tmp_path: Path) -> None:
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(base="http://127.0.0.1:9"), encoding="utf-8"
    )
    done = run(tmp_path, "--workers", "2")
    assert done.returncode == 2
    assert done.stderr == "scraper: error: --workers needs an output file: add -o PATH.\n"


def test_workers_share_the_output_their_parent_claims(site: FixtureSite, tmp_path: Path) -> None:
    for n in range(40):
        site.add(f"/page/{n}", "<ul>" + "".join(f"<li>{n}-{i}</li>" for i in range(5)) + "</ul>")
    site.hold = 0.1  # 20 pages a worker, one at a time: 2 s
    spider = SPIDER.replace("robots: false", "robots: false\n    concurrency: 1")
    (tmp_path / "spiders.yaml").write_text(spider.format(base=site.base), encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "pages", "-o", "out.jsonl", "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = tmp_path / "out.jsonl"
        deadline = time.monotonic() + 20
        while not (out.exists() and out.stat().st_size):
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        other = run(tmp_path, "-o", "out.jsonl")
        assert parent.poll() is None, "the workers ended before the other run started"
        _, stderr = parent.communicate(timeout=60)
    finally:
        parent.kill()
        parent.wait()
    assert other.returncode == 2
    assert other.stderr == (
        f"scraper: error: out.jsonl is being written by another scraper run (pid {parent.pid}); "
        "wait for it to finish or choose another -o PATH.\n"
    )
    assert parent.returncode == 0, stderr
    assert "records written: 200\n" in stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 200


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_to_the_parent_stops_every_worker(
    site: FixtureSite, tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    site.hold = 0.3
    for n in range(40):
        site.add(f"/page/{n}", "".join(f"<li>{n}-{i}</li>" for i in range(5)))
    spider = SPIDER.format(base=site.base) + "    concurrency: 2\n"
    (tmp_path / "spiders.yaml").write_text(spider, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "pages", "-o", "out.jsonl", "--workers", "2"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    err, took = stop_once_writing(process, out, signum)
    assert process.returncode == exit_code
    assert took < 5
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1].startswith("elapsed:")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert 5 <= len(lines) < 200
    assert len(lines) % 5 == 0  # whole pages, whole lines
    assert len(site.requests) < 40
