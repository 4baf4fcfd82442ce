"""Measuring a client: one whole process, timed and weighed by the kernel; its records checked.

``measure(command)`` runs the command under ``launch.py``, which forks it from a small
process and reaps it with ``os.wait4``: that gives the command's own resource usage,
user + system CPU time and peak resident set size (``ru_maxrss``, KiB on Linux). Wall
time runs from just before the fork to the reaping, so interpreter start-up, imports and
shutdown are all counted, as a user waits for them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]
LAUNCHER = Path(__file__).with_name("launch.py")


@dataclass(frozen=True)
class Sample:
    """One run of one client: seconds of wall and CPU time, peak RSS, pages, what went wrong."""

    wall: float
    cpu: float
    rss_mb: float
    pages: int
    problem: str | None = None
    extra: Mapping[str, float] = field(default_factory=dict)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu / self.pages if self.pages else 0.0


@dataclass
class Series:
    """The samples of one client in one scenario; tables show their medians."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples)

    @property
    def problems(self) -> list[str]:
        return [s.problem for s in self.samples if s.problem]


def measure(
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> tuple[float, float, float, int]:
    """Run ``command`` to its end; return wall seconds, CPU seconds, peak RSS MB, exit code.

    It runs under ``launch.py`` (see there why), its stdout and stderr going to ``log``;
    it is killed after ``timeout`` seconds.
    """
    result = log.with_name(log.name + ".usage.json")
    result.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", str(LAUNCHER), str(result), str(timeout), "--"]
    with open(log, "wb") as out:
        subprocess.run(
            [*launcher, *command], stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env
        )
    if not result.exists():
        raise RuntimeError(f"launch.py failed for {command[0]}; see {log}")
    usage = json.loads(result.read_text())
    return usage["wall"], usage["cpu"], usage["max_rss_kb"] / 1024, usage["exit_code"]


def check_records(path: Path, truth: Iterable[Record]) -> str | None:
    """``None`` if the JSON Lines file at ``path`` holds exactly ``truth`` (in any order);
    else what differs."""
    expected = Counter(_key(r) for r in truth)
    try:
        with open(path, encoding="utf-8") as lines:
            found = Counter(_key(json.loads(line)) for line in lines if line.strip())
    except (OSError, ValueError) as exc:
        return f"unreadable output: {exc}"
    if found == expected:
        return None
    missing, extra = expected - found, found - expected
    detail = f"{found.total()} records, expected {expected.total()}"
    if missing:
        detail += f"; {missing.total()} missing, e.g. {next(iter(missing))}"
    if extra:
        detail += f"; {extra.total()} unexpected, e.g. {next(iter(extra))}"
    return detail


def _key(record: Record) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table (Markdown pipe syntax): first column left-aligned, others right."""
    rows = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])
