"""The progress line: shown on a terminal's stderr, never mixed into the records."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.server import FixtureSite


def test_a_terminal_sees_a_progress_line_and_the_records_stay_clean(
    site: FixtureSite, tmp_path: Path
) -> None:
    for n in range(12):
        site.add(f"/p/{n}", f"<h1>Page {n}</h1>")
    site.hold = 0.1  # about 0.6 s of crawling at 2 at once: several progress updates
    (tmp_path / "spiders.yaml").write_text(
        "spiders:\n"
        "  pages:\n"
        f"    start: '{site.base}/p/{{n}}'\n"
        "    vars: {n: {range: [0, 12]}}\n"
        "    concurrency: 2\n"
        "    robots: false\n"
        "    pattern: '<h1>(?P<title>[^<]+)</h1>'\n",
        encoding="utf-8",
    )
    terminal, stderr = pty.openpty()
    run = subprocess.Popen(
        [sys.executable, "-m", "scraper", "run", "pages"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    os.close(stderr)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out, _ = run.communicate(timeout=30)
    os.close(terminal)
    assert run.returncode == 0
    text = shown.decode()
    assert "\r\x1b[K" in text
    assert " pages, " in text and " records, " in text and " pages/s" in text
    assert "records written: 12" in text
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert sorted(r["title"] for r in records) == sorted(f"Page {n}" for n in range(12))
