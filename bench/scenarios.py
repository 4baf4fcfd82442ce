"""The scenarios: what runs against what, how it is measured, and the table it makes.

- ``throughput``: the board site on nginx; ``scraper run`` (template and follow-next
  spiders), Scrapy and a bare aiohttp loop, 16 requests at once.
- ``latency``: a server that answers each request 100 ms late, board pages and tiny
  pages; ours and the aiohttp loop, 64 at once, against the ideal of 64 / 0.1 s = 640
  pages/s.
- ``scale``: 10 %, 50 % and 100 % of ``--scale-urls`` tiny pages from one template on
  nginx: how ``scraper run``'s peak RSS grows with the URLs it is given and crawls.
- ``startup``: ``scraper list`` on the project's spiders.yaml against ``scrapy list`` on
  an equivalent 3-spider Scrapy project, and each interpreter doing nothing.
- ``profile``: one ``scraper run`` of the throughput work under py-spy.

``startup`` lives in startup.py, ``profile`` in profiling.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from harness import (
    CONCURRENCY,
    Bench,
    cpu_ms_per_page,
    pages_per_s,
    paired_ratio,
    ratio,
    rss_mb,
    run_rounds,
    runs_ok,
)
from measure import Record, Sample, Series, table
from profiling import profile
from servers import delay_server, nginx
from startup import startup
from workload import write_board_spiders, write_tiny_spider

LATENCY_CONCURRENCY = 64
LATENCY_DELAY = 0.1


def throughput(bench: Bench) -> None:
    """Ours, Scrapy and the aiohttp loop on the board site served by nginx, 16 at once."""
    root, truth = bench.board_site
    bench.say()
    bench.say(
        f"## Throughput: {bench.pages} pages from nginx, {CONCURRENCY} at once, "
        f"median of {bench.rounds} rounds"
    )
    with nginx(root, bench.work / "nginx") as base:
        spider_file = bench.work / "board.yaml"
        write_board_spiders(spider_file, base, bench.pages, CONCURRENCY)
        # The headline pair first and side by side: measured back to back every round.
        clients = [
            bench.ours("scraper run, template", "board", spider_file, bench.pages, lambda: truth),
            bench.other(
                "aiohttp loop",
                "aiohttp_loop",
                "board",
                base,
                bench.pages,
                CONCURRENCY,
                lambda: truth,
            ),
            bench.ours(
                "scraper run, template, 2 workers",
                "board",
                spider_file,
                bench.pages,
                lambda: truth,
                "--workers",
                "2",
            ),
            bench.ours(
                "scraper run, follow next", "board_follow", spider_file, bench.pages, lambda: truth
            ),
            bench.other(
                "Scrapy", "scrapy_spider", "board", base, bench.pages, CONCURRENCY, lambda: truth
            ),
        ]
        series = run_rounds(bench, clients)
    _say_rates(bench, series, cpu_digits=2)
    ours, floor, two_workers, _, scrapy = series
    for other in (scrapy, floor):
        bench.say(
            f"ours (template) / {other.label}: {ratio(ours, other, pages_per_s):.2f}x pages/s "
            f"(median of per-round ratios: {paired_ratio(ours, other, pages_per_s):.2f}x), "
            f"{ratio(ours, other, cpu_ms_per_page):.2f}x CPU ms/page, "
            f"{ratio(ours, other, rss_mb):.2f}x peak RSS"
        )
        bench.say(
            f"ours (2 workers) / {other.label}: {ratio(two_workers, other, pages_per_s):.2f}x "
            f"pages/s (per-round: {paired_ratio(two_workers, other, pages_per_s):.2f}x)"
        )
    bench.goal(
        "throughput, ours/Scrapy pages/s (per-round)",
        paired_ratio(ours, scrapy, pages_per_s),
        5,
        "x",
    )
    bench.goal(
        "throughput, ours/aiohttp loop pages/s (per-round)",
        paired_ratio(ours, floor, pages_per_s),
        0.8,
        "x",
    )


def latency(bench: Bench) -> None:
    """Ours and the aiohttp loop, 64 at once, against a server adding 100 ms to each page:
    on the board pages, and on tiny pages (where CPU cannot be what limits the rate)."""
    root, truth = bench.board_site
    ideal = LATENCY_CONCURRENCY / LATENCY_DELAY
    bench.say()
    bench.say(
        f"## Latency: {bench.pages} pages, each answered {LATENCY_DELAY * 1000:.0f} ms late, "
        f"{LATENCY_CONCURRENCY} at once (ideal {ideal:.0f} pages/s), "
        f"median of {bench.rounds} rounds"
    )
    with delay_server(bench.bench_python, root, LATENCY_DELAY, bench.work / "delay") as server:
        board_file = bench.work / "latency-board.yaml"
        write_board_spiders(board_file, server.url, bench.pages, LATENCY_CONCURRENCY)
        tiny_file = bench.work / "latency-tiny.yaml"
        write_tiny_spider(tiny_file, server.url, bench.pages, LATENCY_CONCURRENCY)

        def tiny_truth() -> Iterable[Record]:
            return ({"path": f"/tiny/{n}"} for n in range(bench.pages))

        def served() -> Mapping[str, float]:
            stats = server.served()
            span = stats["span"]
            return {**stats, "served_rate": stats["responses"] / span if span else 0.0}

        clients = [
            bench.ours("scraper run, board pages", "board", board_file, bench.pages, lambda: truth),
            bench.other(
                "aiohttp loop, board pages",
                "aiohttp_loop",
                "board",
                server.url,
                bench.pages,
                LATENCY_CONCURRENCY,
                lambda: truth,
            ),
            bench.ours("scraper run, tiny pages", "tiny", tiny_file, bench.pages, tiny_truth),
            bench.other(
                "aiohttp loop, tiny pages",
                "aiohttp_loop",
                "tiny",
                server.url,
                bench.pages,
                LATENCY_CONCURRENCY,
                tiny_truth,
            ),
        ]
        clients = [replace(c, before=server.reset, after=served) for c in clients]
        series = run_rounds(bench, clients)

    def seen(s: Sample) -> float:
        return s.extra["served_rate"]

    def mean_in_flight(s: Sample) -> float:
        return s.extra["mean_in_flight"]

    def max_in_flight(s: Sample) -> float:
        return s.extra["max_in_flight"]

    def outside(s: Sample) -> float:
        return s.wall - s.extra["span"]

    rows = [
        [
            s.label,
            f"{s.median(seen):.0f}",
            f"{s.median(seen) / ideal:.2f}",
            f"{s.median(pages_per_s):.0f}",
            f"{s.median(pages_per_s) / ideal:.2f}",
            f"{s.median(outside):.2f}",
            f"{s.median(mean_in_flight):.1f} / {s.median(max_in_flight):.0f}",
            f"{s.median(cpu_ms_per_page):.2f}",
            f"{s.median(rss_mb):.1f}",
            runs_ok(s),
        ]
        for s in series
    ]
    bench.say()
    headers = ["client", "server-seen pages/s", "x ideal", "whole-process pages/s", "x ideal"]
    headers += ["s outside", "in flight mean / max", "CPU ms/page", "peak RSS MB", "runs ok"]
    bench.say(table(headers, rows))
    bench.say(
        "server-seen: pages / (last response - first request) as the server saw them: the "
        "crawl's rate, which the ideal is a rate of. whole-process: pages / wall time from "
        "fork to exit; 's outside' is the wall time outside that span (interpreter start, "
        "imports, set-up, shutdown), which no crawl rate can win back: with "
        f"{bench.pages:,} pages the ideal span is {bench.pages / ideal:.2f} s. in flight: "
        "requests inside the server, mean over the span and most at once."
    )
    for ours in (series[0], series[2]):
        kind = ours.label.split(", ")[1]
        bench.goal(
            f"latency, {kind}, ours/ideal server-seen pages/s", ours.median(seen) / ideal, 0.9, "x"
        )


def scale(bench: Bench) -> None:
    """Peak RSS of ``scraper run`` for 10 %, 50 % and 100 % of ``--scale-urls`` tiny pages."""
    sizes = sorted(
        {max(1, bench.scale_urls // 10), max(1, bench.scale_urls // 2), bench.scale_urls}
    )
    bench.say()
    bench.say(
        f"## Scale: {', '.join(f'{n:,}' for n in sizes)} URLs from one template, tiny pages "
        f"from nginx, {CONCURRENCY} at once, median of {bench.rounds} rounds"
    )
    empty = bench.work / "empty"
    empty.mkdir(exist_ok=True)
    with nginx(empty, bench.work / "nginx-scale") as base:
        clients = []
        for count in sizes:
            spider_file = bench.work / f"tiny-{count}.yaml"
            write_tiny_spider(spider_file, base, count, CONCURRENCY)

            def truth(count: int = count) -> Iterable[Record]:
                return ({"path": f"/tiny/{n}"} for n in range(count))

            clients.append(
                bench.ours(f"scraper run, {count:,} URLs", "tiny", spider_file, count, truth)
            )
            clients.append(
                bench.other(
                    f"aiohttp loop, {count:,} URLs",
                    "aiohttp_loop",
                    "tiny",
                    base,
                    count,
                    CONCURRENCY,
                    truth,
                )
            )
        series = run_rounds(bench, clients)
    _say_rates(bench, series, cpu_digits=3)
    ours = series[0::2]
    smallest, largest = ours[0].median(rss_mb), ours[-1].median(rss_mb)
    if len(ours) > 1:
        per_1000 = (largest - smallest) / ((sizes[-1] - sizes[0]) / 1000)
        bench.say(
            f"ours: peak RSS grows {largest - smallest:.1f} MB from {sizes[0]:,} to "
            f"{sizes[-1]:,} URLs ({per_1000 * 1024:.1f} KB per 1,000 URLs)"
        )
    bench.goal(f"scale, ours peak RSS at {sizes[-1]:,} URLs", largest, 150, " MB", below=True)


def _say_rates(bench: Bench, series: list[Series], cpu_digits: int) -> None:
    """The table of pages/s, CPU ms/page and peak RSS, one row per client."""
    rows = [
        [
            s.label,
            f"{s.median(pages_per_s):.0f}",
            f"{s.median(cpu_ms_per_page):.{cpu_digits}f}",
            f"{s.median(rss_mb):.1f}",
            runs_ok(s),
        ]
        for s in series
    ]
    bench.say()
    bench.say(table(["client", "pages/s", "CPU ms/page", "peak RSS MB", "runs ok"], rows))


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "throughput": throughput,
    "latency": latency,
    "scale": scale,
    "startup": startup,
    "profile": profile,
}
"""Every scenario by name; ``all`` runs all but ``profile``."""
