"""JSON Lines output: UTF-8 as is, one whole record a line, even when the run is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from scraper.errors import OutputError
from scraper.output.jsonl import JsonLinesWriter
from tests.server import FixtureSite

PROJECT = Path(__file__).resolve().parents[1]


def written(path: Path, *batches: list[dict[str, object]], append: bool = False) -> str:
    """Write each batch as one page's records; return the file's text."""
    writer = JsonLinesWriter(path, append=append)
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        writer.close()
    return path.read_text(encoding="utf-8")


def test_utf8_is_written_as_is(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    written(out, [{"title": "海镇来客", "cast": "林晚舟,苏一苇", "price": "£10.00"}])
    data = out.read_bytes()
    assert data == '{"title": "海镇来客", "cast": "林晚舟,苏一苇", "price": "£10.00"}\n'.encode()
    assert b"\\u" not in data


def test_one_json_object_per_line(tmp_path: Path) -> None:
    batches = [
        [{"n": 1, "text": "line\nbreak"}, {"n": 2, "text": 'quote " and \\'}],
        [],
        [{"n": 3, "text": "\u2028 separator"}],
    ]
    text = written(tmp_path / "out.jsonl", *batches)
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]  # not splitlines(): U+2028 is a line break to Python
    assert [json.loads(line) for line in lines] == [r for batch in batches for r in batch]


def test_count_and_dates(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    writer.write([{"tags": ("a", "b"), "when": date(2024, 5, 1), "none": None}])
    writer.write([])
    writer.write([{"n": 1}, {"n": 2}])
    assert writer.count == 3
    writer.close()
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"tags": ["a", "b"], "when": "2024-05-01", "none": None}


def test_a_record_json_cannot_hold_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    looped: dict[str, object] = {"name": "loop"}
    looped["self"] = looped
    page = [
        {"n": 1},
        {"n": 2, "v": float("nan")},
        {"n": 3, "v": float("inf")},
        {"n": 4, "tags": {"a"}},
        {"n": 5, "raw": b"bytes"},
        {"n": 6, "thing": object()},
        {"n": 7, "text": "half a pair \udc80"},
        looped,
        {"n": 8, ("a", "b"): 1},
        {"n": 9},
    ]
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    left_out = writer.write(page)
    writer.close()
    data = out.read_bytes()
    data.decode("utf-8")  # valid UTF-8 throughout
    assert [json.loads(line) for line in data.splitlines()] == [{"n": 1}, {"n": 9}]
    assert writer.count == 2
    assert left_out == writer.rejected  # the crawl counts them as dropped
    assert writer.rejected == {
        "v: not finite": 2,
        "tags: set is not JSON": 1,
        "raw: bytes is not JSON": 1,
        "thing: object is not JSON": 1,
        "text: lone surrogate": 1,
        "self: refers to itself": 1,
        "('a', 'b'): a field name that is not text": 1,
    }
    assert caplog.messages[:2] == [
        "not writing a record: v: not finite",
        "not writing a record: v: not finite",
    ]


def test_a_page_of_records_json_cannot_hold_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    written(out, [{"n": 1}])
    assert written(out, [{"v": float("nan")}], append=True) == '{"n": 1}\n'


def test_append_keeps_what_is_there(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    written(out, [{"run": 1}])
    text = written(out, [{"run": 2}], append=True)
    assert text == '{"run": 1}\n{"run": 2}\n'


def test_without_append_the_file_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    written(out, [{"run": 1}, {"run": 1}])
    assert written(out, [{"run": 2}]) == '{"run": 2}\n'


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("no-such-dir/out.jsonl", "No such file or directory"),
        ("file.txt/out.jsonl", "Not a directory"),
    ],
)
def test_unwritable_path_is_an_output_error(tmp_path: Path, where: str, reason: str) -> None:
    (tmp_path / "file.txt").write_text("a regular file, not a folder")
    path = tmp_path / where
    with pytest.raises(OutputError) as error:
        JsonLinesWriter(path)
    assert str(error.value) == (
        f"cannot write the output {path}: {reason}. "
        "Choose a path in a writable folder with -o PATH."
    )
    assert error.value.exit_code == 1


SPIDER = """\
spiders:
  many:
    start: 'SITE/page/{n}'
    vars: {n: {range: [0, 200]}}
    concurrency: 4
    pattern: '<li>(?P<title>[^<]+)</li>'
"""
RECORDS_PER_PAGE = 200


def test_killed_run_leaves_only_complete_lines(site: FixtureSite, tmp_path: Path) -> None:
    items = "".join(f"<li>第{i}部 海镇来客 {'x' * 60}</li>\n" for i in range(RECORDS_PER_PAGE))
    for n in range(200):
        site.add(f"/page/{n}", f"<ul>\n{items}</ul>")
    site.hold = 0.1  # 200 pages, 4 at a time: about 5 s if left alone
    spec = tmp_path / "spiders.yaml"
    spec.write_text(SPIDER.replace("SITE", site.base), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "many", "-f", str(spec), "-o", str(out), "-q"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not (out.exists() and out.stat().st_size > 3 * 20_000):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "no records came out"
            time.sleep(0.02)
        assert process.poll() is None  # still crawling when killed
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=5) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    assert 0 < len(records) < 200 * RECORDS_PER_PAGE
    assert len(records) % RECORDS_PER_PAGE == 0  # every page went out whole
    assert all(r["title"].endswith("x" * 60) and "海镇来客" in r["title"] for r in records)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_full_disk_stops_the_run_at_once_with_a_clear_error() -> None:
    root = Path(__file__).resolve().parents[1]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "scraper", "run", "maoyan", "--offline", "-o", "/dev/full"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "scraper: error: writing /dev/full failed: the disk is full. The 0 records before "
        "this page are in the file, complete."
    )
    assert time.monotonic() - started < 10
