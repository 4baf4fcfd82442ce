"""The profile scenario: one ``scraper run`` of the throughput work under py-spy.

py-spy (from the bench virtualenv) samples the process from outside, only while it is
on CPU, and writes its stacks collapsed ("raw"); they are summed here into self time by
package and by function, and inclusive time by function.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from harness import CONCURRENCY, Bench, tail
from measure import check_records, measure, table
from servers import nginx
from workload import write_board_spiders

PROFILE_RATE = 250
"""py-spy samples a second."""


def profile(bench: Bench) -> None:
    """One ``scraper run`` of the throughput work under py-spy: where its CPU goes."""
    root, truth = bench.board_site
    bench.say()
    bench.say(
        f"## Profile: scraper run, template, {bench.pages} pages, py-spy at {PROFILE_RATE} Hz"
    )
    py_spy = bench.bench_python.parent / "py-spy"
    raw = bench.work / "profile.txt"
    with nginx(root, bench.work / "nginx-profile") as base:
        spider_file = bench.work / "board.yaml"
        write_board_spiders(spider_file, base, bench.pages, CONCURRENCY)
        ours = bench.ours("scraper run, template", "board", spider_file, bench.pages, lambda: truth)
        command = [str(py_spy), "record", "--rate", str(PROFILE_RATE), "--format", "raw"]
        command += ["--output", str(raw), "--", *ours.command]
        log = bench.work / "logs-profile.log"
        wall, _, _, code = measure(command, log=log, cwd=bench.work)
    problem = check_records(ours.output, truth)
    if code or problem or not raw.exists():
        bench.failures.append(f"profile: exit code {code}, {problem}: {tail(log)}")
        bench.say(f"profile FAILED: exit code {code}, {problem}: {tail(log)}")
        return
    self_time, total_time, by_package, samples = _summarise_stacks(raw)
    bench.say(f"{samples} samples in {wall:.1f} s (the process is sampled only while on CPU)")

    def share(counter: Counter[str], top: int) -> list[list[str]]:
        return [[name, f"{100 * n / samples:.1f}"] for name, n in counter.most_common(top)]

    bench.say()
    bench.say(table(["package (self time)", "% of samples"], share(by_package, 12)))
    bench.say()
    bench.say(table(["function (self time)", "% of samples"], share(self_time, 20)))
    bench.say()
    bench.say(table(["function (inclusive time)", "% of samples"], share(total_time, 25)))


_WRAPPERS = frozenset({"asyncio", "<frozen runpy>", "runpy"})
"""Packages whose frames sit under everything (the event loop, ``-m``): left out of the
inclusive table, where they would only say 100 %."""
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _summarise_stacks(raw: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """From py-spy's raw (collapsed) stacks: self time by function, inclusive time by
    function, self time by top-level package, and the number of samples."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        samples += count
        self_time[frames[-1][0]] += count
        by_package[frames[-1][1]] += count
        for name in {name for name, package in frames if package not in _WRAPPERS}:
            total_time[name] += count
    return self_time, total_time, by_package, samples


def _frame_name(frame: str) -> tuple[str, str]:
    """``"function (path/module.py:12)"`` -> (``"module.function"``, top-level package).

    py-spy already writes paths relative to ``sys.path``; the import machinery's frames
    (``<frozen importlib._bootstrap>``) count as the package ``(imports)``.
    """
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip(), "?"
    path = found["file"]
    if path.startswith("<frozen importlib"):
        return f"{path}.{found['function']}", "(imports)"
    module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    return f"{module}.{found['function']}", module.split(".", 1)[0] or "?"
