"""The start-up scenario: ``scraper list`` against ``scrapy list``, and bare interpreters.

``scraper list`` reads the project's spiders.yaml; ``scrapy list`` runs in a Scrapy
project written here with the same three spiders (their start URLs and patterns), as
someone moving those spiders to Scrapy would have it.
"""

from __future__ import annotations

from pathlib import Path

from harness import PROJECT, Bench, ratio, rss_mb, runs_ok, slug, tail
from measure import Sample, Series, measure, table

STARTUP_RUNS = 10

SCRAPY_CFG = "[settings]\ndefault = benchproject.settings\n"
SCRAPY_SETTINGS = """\
BOT_NAME = "benchproject"
SPIDER_MODULES = ["benchproject.spiders"]
NEWSPIDER_MODULE = "benchproject.spiders"
ROBOTSTXT_OBEY = False
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_TIMEOUT = 20
RETRY_TIMES = 2
FEED_EXPORT_ENCODING = "utf-8"
"""
SCRAPY_SPIDER = """\
import re

import scrapy

ITEM = re.compile({pattern!r}, re.DOTALL)
NEXT = re.compile({next!r})


class {cls}(scrapy.Spider):
    name = "{name}"
    start_urls = ["{start}"]

    def parse(self, response):
        for match in ITEM.finditer(response.text):
            yield {{key: value.strip() for key, value in match.groupdict().items() if value}}
        for href in NEXT.findall(response.text):
            yield response.follow(href, callback=self.parse)
"""
SCRAPY_SPIDERS = {
    "maoyan": (
        "https://maoyan.com/board/4?offset=0",
        r'<dd>\s*<i class="board-index[^"]*">(?P<index>\d+)</i>.*?<p class="name"><a[^>]*>'
        r"(?P<title>.*?)</a></p>",
        r'<a class="page_\d+" href="([^"]+)">下一页</a>',
    ),
    "douban": (
        "https://movie.douban.com/top250",
        r'<div class="item">.*?<em[^>]*>(?P<rank>\d+)</em>.*?<span class="title">(?P<title>[^<]*)'
        r'</span>.*?<span class="rating_num"[^>]*>(?P<score>[\d.]+)</span>',
        r'<a href="([^"]+)"\s*>后页',
    ),
    "books": (
        "https://books.toscrape.com/",
        r'<article class="product_pod">.*?<h3><a href="(?P<url>[^"]+)" title="(?P<title>[^"]*)">'
        r'.*?<p class="price_color">\D*(?P<price>\d+\.\d+)</p>',
        r'<li class="next"><a href="([^"]+)">',
    ),
}


def write_scrapy_project(root: Path) -> Path:
    """A Scrapy project with the three spiders of the project's spiders.yaml; returns its folder."""
    package = root / "benchproject"
    (package / "spiders").mkdir(parents=True, exist_ok=True)
    (root / "scrapy.cfg").write_text(SCRAPY_CFG)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SCRAPY_SETTINGS)
    (package / "spiders" / "__init__.py").write_text("")
    for name, (start, pattern, next_link) in SCRAPY_SPIDERS.items():
        source = SCRAPY_SPIDER.format(
            pattern=pattern, next=next_link, cls=name.title() + "Spider", name=name, start=start
        )
        (package / "spiders" / f"{name}.py").write_text(source, encoding="utf-8")
    return root


def startup(bench: Bench) -> None:
    """``scraper list`` against ``scrapy list`` (and bare interpreters), wall time of each."""
    bench.say()
    bench.say(f"## Start-up: listing spiders, median of {STARTUP_RUNS} runs, round-robin")
    project = write_scrapy_project(bench.work / "scrapyproject")
    scraper_script = bench.scraper_python.parent / "scraper"
    scraper = (
        [str(scraper_script)]
        if scraper_script.exists()
        else [str(bench.scraper_python), "-m", "scraper"]
    )
    spiders_yaml = PROJECT / "spiders.yaml"
    commands: list[tuple[str, list[str], Path]] = [
        ("scraper list", [*scraper, "list", "-f", str(spiders_yaml)], bench.work),
        ("scrapy list (3 spiders)", [str(bench.bench_python.parent / "scrapy"), "list"], project),
        (
            "python -c pass (scraper's python)",
            [str(bench.scraper_python), "-c", "pass"],
            bench.work,
        ),
        ("python -c pass (bench venv)", [str(bench.bench_python), "-c", "pass"], bench.work),
    ]
    series = [Series(label) for label, _, _ in commands]
    logs = bench.work / "logs"
    logs.mkdir(exist_ok=True)
    for run in range(STARTUP_RUNS):
        for (label, command, cwd), samples in zip(commands, series, strict=True):
            log = logs / f"{slug(label)}-{run}.log"
            wall, cpu, rss, code = measure(command, log=log, cwd=cwd)
            problem = f"exit code {code}: {tail(log)}" if code else None
            if problem:
                bench.failures.append(f"{label}: {problem}")
            samples.samples.append(Sample(wall, cpu, rss, 1, problem))
    for label, _, _ in commands[:2]:
        listed = (logs / f"{slug(label)}-0.log").read_text(errors="replace").split("\n")
        bench.say(
            f"  {label} printed: {' | '.join(line.strip() for line in listed if line.strip())}"
        )

    def wall_ms(s: Sample) -> float:
        return 1000 * s.wall

    def cpu_ms(s: Sample) -> float:
        return 1000 * s.cpu

    rows = [
        [
            s.label,
            f"{s.median(wall_ms):.0f}",
            f"{min(wall_ms(x) for x in s.samples):.0f}",
            f"{s.median(cpu_ms):.0f}",
            f"{s.median(rss_mb):.1f}",
            runs_ok(s),
        ]
        for s in series
    ]
    bench.say()
    bench.say(table(["command", "wall ms", "best ms", "CPU ms", "peak RSS MB", "runs ok"], rows))
    ours, scrapy = series[0], series[1]
    bench.say(f"scraper list / scrapy list: {ratio(ours, scrapy, wall_ms):.2f}x wall time")
    bench.goal(
        "start-up, scraper list wall time", ours.median(wall_ms) / 1000, 0.3, " s", below=True
    )
