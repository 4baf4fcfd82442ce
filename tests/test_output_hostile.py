"""Outputs a busy operator gives a run: shared, piped, closed, full; none costs a record.

Each case is a real ``python -m scraper run`` process against a FixtureSite, with its
standard streams set up as a shell would (closed with ``>&-``, a FIFO, /dev/full).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.server import FixtureSite
from tests.test_cli import ENV

PAGES, PER_PAGE = 20, 5

SPIDER = """
spiders:
  items:
    start: SITE/page/{n}
    vars: {n: {range: [0, PAGES]}}
    concurrency: 2
    robots: false
    pattern: '<li>(?P<item>[^<]+)</li>'
"""


@pytest.fixture
def project(tmp_path: Path, site: FixtureSite) -> Path:
    """``tmp_path`` with spiders.yaml for 20 pages of 5 items each, served by ``site``."""
    for n in range(PAGES):
        site.add(f"/page/{n}", "<ul>" + "".join(f"<li>{n}-{i}</li>" for i in range(PER_PAGE)))
    text = SPIDER.replace("SITE", site.base).replace("PAGES", str(PAGES))
    (tmp_path / "spiders.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "scraper", "run", "items", *args]


def shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``line`` in sh (``SCRAPER`` is ``python -m scraper run items``), as a user would."""
    scraper = f"{sys.executable} -m scraper run items"
    return subprocess.run(
        ["sh", "-c", line.replace("SCRAPER", scraper)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def items(text: str) -> list[str]:
    return sorted(json.loads(line)["item"] for line in text.splitlines())


ALL_ITEMS = sorted(f"{n}-{i}" for n in range(PAGES) for i in range(PER_PAGE))


# -- one output, one run ---------------------------------------------------------------------


def start_slow_run(project: Path, site: FixtureSite, *args: str) -> subprocess.Popen[str]:
    """A run that takes a few seconds, started and writing when this returns."""
    site.hold = 0.25  # 20 pages, 2 at a time: 2.5 s, time for a second run to start
    run = subprocess.Popen(
        command("-o", "out.jsonl", *args),
        cwd=project,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    out = project / "out.jsonl"
    while not (out.exists() and out.stat().st_size):
        assert run.poll() is None, run.stderr.read() if run.stderr else ""
        assert time.monotonic() < deadline, "the first run wrote nothing in 20 s"
        time.sleep(0.02)
    return run


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_on_the_same_output_is_refused_naming_the_first(
    project: Path, site: FixtureSite, resume: bool
) -> None:
    extra = ["--resume"] if resume else []
    first = start_slow_run(project, site, *extra)
    try:
        second = subprocess.run(
            command("-o", "out.jsonl", *extra),
            cwd=project,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert first.poll() is None, "the first run ended before the second started"
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2
    assert second.stderr == (
        f"scraper: error: out.jsonl is being written by another scraper run (pid {first.pid}); "
        "wait for it to finish or choose another -o PATH.\n"
    )
    assert items((project / "out.jsonl").read_text(encoding="utf-8")) == ALL_ITEMS
    assert not (project / "out.jsonl.lock").exists()  # the first run took its lock away


def test_the_state_is_claimed_too(project: Path, site: FixtureSite) -> None:
    first = start_slow_run(project, site, "--resume")
    try:
        second = subprocess.run(
            command("-o", "other.jsonl", "--resume", "--state", "out.jsonl.state"),
            cwd=project,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2
    assert second.stderr == (
        f"scraper: error: out.jsonl.state is being written by another scraper run "
        f"(pid {first.pid}); wait for it to finish or choose another --state PATH.\n"
    )
    assert items((project / "out.jsonl").read_text(encoding="utf-8")) == ALL_ITEMS


def test_a_killed_run_does_not_hold_the_output(project: Path, site: FixtureSite) -> None:
    first = start_slow_run(project, site)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    if first.stderr:
        first.stderr.close()
    assert (project / "out.jsonl.lock").exists()  # left behind, but no longer locked
    site.hold = 0
    again = subprocess.run(
        command("-o", "out.jsonl"), cwd=project, env=ENV, capture_output=True, timeout=60
    )
    assert again.returncode == 0
    assert items((project / "out.jsonl").read_text(encoding="utf-8")) == ALL_ITEMS


# -- pipes, FIFOs, closed and full streams ---------------------------------------------------


def test_output_to_a_fifo(project: Path) -> None:
    fifo = project / "records.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = subprocess.run(
        command("-o", str(fifo)), cwd=project, env=ENV, capture_output=True, text=True, timeout=60
    )
    reader.join(timeout=10)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert items(received[0].decode("utf-8")) == ALL_ITEMS


def test_output_to_dev_stdout_in_a_pipe(project: Path) -> None:
    done = shell("SCRAPER -o /dev/stdout | cat", project)
    assert done.returncode == 0, done.stderr
    assert "records written: 100\n" in done.stderr
    assert items(done.stdout) == ALL_ITEMS


def test_a_closed_stdout_without_output_is_refused_before_the_crawl(
    project: Path, site: FixtureSite
) -> None:
    done = shell("SCRAPER >&-", project)
    assert done.returncode == 2
    assert done.stderr == (
        "scraper: error: stdout is closed, so the records have nowhere to go: "
        "give them a file with -o PATH (or run without closing stdout).\n"
    )
    assert site.requests == []


def test_a_closed_stdout_with_an_output_file_changes_nothing(project: Path) -> None:
    done = shell("SCRAPER -o out.jsonl >&-", project)
    assert done.returncode == 0, done.stderr
    assert items((project / "out.jsonl").read_text(encoding="utf-8")) == ALL_ITEMS


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_a_closed_or_full_stderr_costs_no_record(
    project: Path, site: FixtureSite, redirect: str
) -> None:
    site.add("/page/3", "gone", status=404)  # a warning to log, and exit 1 for it
    done = shell(f"SCRAPER -o out.jsonl {redirect}", project)
    assert done.returncode == 1
    expected = [item for item in ALL_ITEMS if not item.startswith("3-")]
    assert items((project / "out.jsonl").read_text(encoding="utf-8")) == expected
    assert done.stderr == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_full_stderr_keeps_exit_0(project: Path) -> None:
    done = shell("SCRAPER -o out.jsonl 2>/dev/full", project)
    assert done.returncode == 0
    assert items((project / "out.jsonl").read_text(encoding="utf-8")) == ALL_ITEMS
