"""The harness: one invocation's settings and report, the clients, and the rounds they run.

``run_rounds`` runs every client once a round, round-robin (so that a slow spell of the
machine hits all clients alike), each as a separate process measured by ``measure``, and
checks each run's records against the ground truth.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from measure import Record, Sample, Series, check_records, measure
from sitegen import write_board_site

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
CONCURRENCY = 16
"""Requests at once in the throughput and scale scenarios (and the profile)."""


@dataclass
class Bench:
    """One invocation: the interpreters, the temp folder, the options, and what was said."""

    scraper_python: Path
    bench_python: Path
    work: Path
    rounds: int
    pages: int
    seed: int
    scale_urls: int
    goals: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        """Print ``text`` and keep it for the saved report."""
        print(text, flush=True)
        self.lines.append(text)

    def goal(
        self, name: str, value: float, target: float, unit: str, *, below: bool = False
    ) -> None:
        """Say whether ``value`` meets the issue's goal for ``name`` (at least, or below,
        ``target``), and keep the verdict for the summary."""
        met = value < target if below else value >= target
        sign = "<" if below else ">="
        verdict = f"{name}: {value:.2f}{unit} (goal {sign} {target:g}{unit}) "
        verdict += "met" if met else "NOT met"
        self.say(f"goal  {verdict}")
        self.goals.append(verdict)

    @cached_property
    def board_site(self) -> tuple[Path, list[Record]]:
        """The board site (generated on first use) and its ground truth."""
        root = self.work / "site"
        self.say(f"generating {self.pages} board pages (seed {self.seed}) in {root} ...")
        truth = write_board_site(root, self.pages, self.seed)
        size = sum(p.stat().st_size for p in (root / "board").iterdir()) / self.pages / 1024
        self.say(f"  {len(truth)} records, {size:.1f} KB a page on average")
        return root, truth

    def ours(
        self,
        label: str,
        spider: str,
        spider_file: Path,
        pages: int,
        truth: TruthSource,
        *options: str,
    ) -> Client:
        """``scraper run`` of ``spider`` (with ``options``) as a client."""
        output = self.work / f"out-{slug(label)}.jsonl"
        command = [str(self.scraper_python), "-m", "scraper", "run", spider]
        command += ["-f", str(spider_file), "-o", str(output), "-q", *options]
        return Client(label, command, output, pages, truth)

    def other(
        self,
        label: str,
        module: str,
        site: str,
        base: str,
        pages: int,
        concurrency: int,
        truth: TruthSource,
    ) -> Client:
        """A client from ``bench/clients`` (Scrapy, the aiohttp loop) in the bench virtualenv."""
        output = self.work / f"out-{slug(label)}.jsonl"
        command = [str(self.bench_python), "-m", f"clients.{module}", "--site", site]
        command += ["--base", base, "--pages", str(pages), "--concurrency", str(concurrency)]
        command += ["-o", str(output)]
        env = {**os.environ, "PYTHONPATH": str(BENCH)}
        return Client(label, command, output, pages, truth, env=env)


TruthSource = Callable[[], Iterable[Record]]


@dataclass(frozen=True)
class Client:
    """A command to measure, the records it must write, and hooks around each run."""

    label: str
    command: Sequence[str]
    output: Path
    pages: int
    truth: TruthSource
    env: Mapping[str, str] | None = None
    before: Callable[[], None] | None = None
    after: Callable[[], Mapping[str, float]] | None = None


def run_rounds(bench: Bench, clients: Sequence[Client]) -> list[Series]:
    """Run every client once a round, ``bench.rounds`` rounds; check every run's records.

    Odd rounds run the clients in the order given, even rounds in reverse (ABBA), so
    that no client always follows the same one (Scrapy's 10 s of full CPU, say) and
    clients listed next to each other are always measured back to back.
    """
    series = [Series(c.label) for c in clients]
    logs = bench.work / "logs"
    logs.mkdir(exist_ok=True)
    for round_number in range(1, bench.rounds + 1):
        order = list(zip(clients, series, strict=True))
        for client, samples in order if round_number % 2 else reversed(order):
            client.output.unlink(missing_ok=True)
            if client.before:
                client.before()
            log = logs / f"{slug(client.label)}-{round_number}.log"
            wall, cpu, rss, code = measure(client.command, log=log, cwd=bench.work, env=client.env)
            problem = check_records(client.output, client.truth())
            if code:
                problem = f"exit code {code}, {problem or 'records ok'}: {tail(log)}"
            extra = client.after() if client.after else {}
            sample = Sample(wall, cpu, rss, client.pages, problem, extra)
            samples.samples.append(sample)
            if problem:
                bench.failures.append(f"{client.label}, round {round_number}: {problem}")
            bench.say(
                f"  round {round_number}  {client.label:<30} {wall:7.2f} s "
                f"{sample.pages_per_s:8.1f} pages/s {sample.cpu_ms_per_page:7.3f} CPU ms/page "
                f"{rss:6.1f} MB  {'records ok' if not problem else 'FAILED: ' + problem}"
            )
    for client in clients:
        client.output.unlink(missing_ok=True)
    return series


def runs_ok(series: Series) -> str:
    """``"ok/all"``: the runs whose records were right and whose exit code was 0."""
    return f"{len(series.samples) - len(series.problems)}/{len(series.samples)}"


# The columns of the tables, as functions for ``Series.median``.
def pages_per_s(s: Sample) -> float:
    return s.pages_per_s


def cpu_ms_per_page(s: Sample) -> float:
    return s.cpu_ms_per_page


def rss_mb(s: Sample) -> float:
    return s.rss_mb


def ratio(a: Series, b: Series, value: Callable[[Sample], float]) -> float:
    """``a``'s median ``value`` over ``b``'s."""
    return a.median(value) / b.median(value)


def paired_ratio(a: Series, b: Series, value: Callable[[Sample], float]) -> float:
    """The median over rounds of ``a``'s ``value`` over ``b``'s in the same round.

    The machine's speed drifts (a shared VM: the same run varies by 20-40 %);
    clients measured back to back in one round see nearly the same machine, so
    the ratio of each round is steadier than the ratio of the medians.
    """
    ratios = [value(x) / value(y) for x, y in zip(a.samples, b.samples, strict=True)]
    return statistics.median(ratios)


def slug(label: str) -> str:
    """``label`` as a file-name part: ``"scraper run, template"`` -> ``scraper-run-template``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def tail(log: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of ``log``, on one line (for failure messages)."""
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return " / ".join(text[-lines:])
