"""The scenarios: what runs against what, how it is measured, and the table it makes.

- ``throughput``: the board site on nginx; ``scraper run`` (template and follow-next
  spiders), Scrapy, Crawlee, a bare aiohttp loop and a bare pycurl loop (the machine
  limit), 16 requests at once.
- ``latency``: a server that answers each request 100 ms late, board pages and tiny
  pages; ours and the aiohttp loop, 64 at once, against the ideal of 64 / 0.1 s = 640
  pages/s.
- ``scale``: 10 %, 50 % and 100 % of ``--scale-urls`` tiny pages from one template on
  nginx: how ``scraper run``'s peak RSS grows with the URLs it is given and crawls.
- ``startup``: ``scraper list`` on the project's spiders.yaml against ``scrapy list`` on
  an equivalent 3-spider Scrapy project, and each interpreter doing nothing.
- ``scaleout``: one crawl shared through Redis (``scraper run --redis``) by 1, 2 and 4
  processes on the throughput site, against one in-memory process: pages/s, CPU ms/page,
  Redis CPU and Redis calls per page; and 4 processes x 64 in flight on the latency site.
- ``profile``: one ``scraper run`` of the throughput work under py-spy.

``startup`` lives in startup.py, ``profile`` in profiling.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from harness import (
    BENCH,
    CONCURRENCY,
    Bench,
    Client,
    TruthSource,
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
from servers import RedisProbe, delay_server, nginx, redis_server
from startup import startup
from workload import write_board_parts, write_board_spiders, write_tiny_spider

LATENCY_CONCURRENCY = 64
LATENCY_DELAY = 0.1
SCALEOUT_PROCESSES = (1, 2, 4)


def throughput(bench: Bench) -> None:
    """Ours, Scrapy, Crawlee, the aiohttp loop and the pycurl loop on the board site served
    by nginx, 16 at once."""
    root, truth = bench.board_site
    bench.say()
    bench.say(
        f"## Throughput: {bench.pages} pages from nginx, {CONCURRENCY} at once, "
        f"median of {bench.rounds} rounds"
    )
    with (
        nginx(root, bench.work / "nginx") as base,
        nginx(root, bench.work / "nginx-h2", http2=True) as base_h2,
    ):
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
            bench.other(
                "pycurl loop", "pycurl_loop", "board", base, bench.pages, CONCURRENCY, lambda: truth
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
                "Crawlee", "crawlee_http", "board", base, bench.pages, CONCURRENCY, lambda: truth
            ),
            bench.other(
                "Scrapy", "scrapy_spider", "board", base, bench.pages, CONCURRENCY, lambda: truth
            ),
        ]
        # Issue 15: the template spider on the aiohttp wire (the default is curl).
        clients.append(
            bench.ours(
                "scraper run, aiohttp wire",
                "board_aiohttp",
                spider_file,
                bench.pages,
                lambda: truth,
            )
        )
        # Issue 15: libcurl from asyncio (curl_cffi), and HTTP/2 multiplexing on one connection.
        clients.append(
            bench.other(
                "curl_cffi loop",
                "curl_cffi_loop",
                "board",
                base,
                bench.pages,
                CONCURRENCY,
                lambda: truth,
            )
        )
        clients.append(
            bench.other(
                "pycurl loop, HTTP/2",
                "pycurl_h2_loop",
                "board",
                base_h2,
                bench.pages,
                CONCURRENCY,
                lambda: truth,
            )
        )
        series = run_rounds(bench, clients)
    _say_rates(bench, series, cpu_digits=2)
    *series, aiohttp_wire, cffi, http2 = series
    for other, than in ((cffi, series[1]), (http2, series[2])):
        bench.say(
            f"{other.label} / {than.label}: {ratio(other, than, pages_per_s):.2f}x pages/s "
            f"(per-round: {paired_ratio(other, than, pages_per_s):.2f}x), "
            f"{ratio(other, than, cpu_ms_per_page):.2f}x CPU ms/page"
        )
    bench.say(
        f"ours (curl wire) / ours (aiohttp wire): "
        f"{ratio(series[0], aiohttp_wire, pages_per_s):.2f}x pages/s "
        f"(per-round: {paired_ratio(series[0], aiohttp_wire, pages_per_s):.2f}x), "
        f"{ratio(series[0], aiohttp_wire, cpu_ms_per_page):.2f}x CPU ms/page"
    )
    ours, floor, machine, two_workers, _, crawlee, scrapy = series
    for other in (scrapy, crawlee, floor, machine):
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
    bench.goal(
        "throughput, ours/aiohttp loop pages/s (per-round, issue 15)",
        paired_ratio(ours, floor, pages_per_s),
        1.5,
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


def scaleout(bench: Bench) -> None:
    """One crawl shared through Redis by 1, 2 and 4 ``scraper run --redis`` processes, on
    the throughput site (against one in-memory process) and on the latency site."""
    root, truth = bench.board_site
    bench.say()
    bench.say(
        f"## Scale-out: {bench.pages} pages from nginx shared through Redis by 1, 2 and 4 "
        f"processes ({CONCURRENCY} at once each), median of {bench.rounds} rounds"
    )
    with (
        nginx(root, bench.work / "nginx-scaleout") as base,
        redis_server(bench.scraper_python, bench.work / "redis") as redis,
    ):
        narrow_file = bench.work / "scaleout-board-narrow.yaml"
        write_board_spiders(narrow_file, base, bench.pages, CONCURRENCY)
        # per_host holds for the whole shared crawl. One process never has more than its
        # concurrency (16) in flight, so per_host 32 changes nothing for it, and lets 2
        # processes keep 16 each, as 2 separate crawls do; "per_host 16" holds 2 processes
        # to 16 in flight in all, as one process has.
        spider_file = bench.work / "scaleout-board.yaml"
        spider_file.write_text(
            narrow_file.read_text(encoding="utf-8").replace(
                f"per_host: {CONCURRENCY}", f"per_host: {2 * CONCURRENCY}", 1
            ),
            encoding="utf-8",
        )
        parts_file = bench.work / "scaleout-board-parts.yaml"
        write_board_parts(parts_file, base, bench.pages, CONCURRENCY, 2)
        narrow = f"per_host {CONCURRENCY}"
        clients = [
            bench.ours("in memory, 1 process", "board", spider_file, bench.pages, lambda: truth),
            _split(bench, 2, "board_part{i}", parts_file, lambda: truth),
            *(
                _shared(bench, redis, n, "board", spider_file, lambda: truth)
                for n in SCALEOUT_PROCESSES
            ),
            _shared(bench, redis, 2, "board", narrow_file, lambda: truth, narrow),
            _shared(bench, redis, 2, "board", spider_file, lambda: truth, "--dedup bloom", BLOOM),
        ]
        series = run_rounds(bench, clients)
    _say_shared(bench, series)
    memory, limit = series[0], series[1]
    for other in series[1:]:
        bench.say(
            f"{other.label} / in memory: {paired_ratio(other, memory, pages_per_s):.2f}x "
            f"pages/s; / machine limit: {paired_ratio(other, limit, pages_per_s):.2f}x "
            f"(medians of per-round ratios)"
        )
    two = next(s for s in series if s.label == "redis, 2 processes")
    bench.goal(
        "scale-out, 2 processes through Redis / 1 in-memory process, pages/s (per-round)",
        paired_ratio(two, memory, pages_per_s),
        1.5,
        "x",
    )

    ideal = LATENCY_CONCURRENCY / LATENCY_DELAY
    bench.say()
    bench.say(
        f"## Scale-out, latency: {bench.pages} pages answered {LATENCY_DELAY * 1000:.0f} ms "
        f"late, per_host {LATENCY_CONCURRENCY} for the whole crawl, 4 processes x "
        f"{LATENCY_CONCURRENCY} in flight (ideal {ideal:.0f} pages/s), median of "
        f"{bench.rounds} rounds"
    )
    with (
        delay_server(bench.bench_python, root, LATENCY_DELAY, bench.work / "delay-so") as server,
        redis_server(bench.scraper_python, bench.work / "redis-latency") as redis,
    ):
        board_file = bench.work / "scaleout-latency.yaml"
        write_board_spiders(board_file, server.url, bench.pages, LATENCY_CONCURRENCY)

        def served() -> Mapping[str, float]:
            stats = server.served()
            return {**stats, "served_rate": stats["responses"] / stats["span"]}

        memory_client = bench.ours(
            "in memory, 1 process x 64", "board", board_file, bench.pages, lambda: truth
        )
        shared_client = _shared(bench, redis, 4, "board", board_file, lambda: truth)
        clients = [
            replace(memory_client, before=server.reset, after=served),
            _chain(shared_client, server.reset, served),
        ]
        series = run_rounds(bench, clients)
    rows = [
        [
            s.label,
            f"{s.median(lambda x: x.extra['served_rate']):.0f}",
            f"{s.median(lambda x: x.extra['served_rate']) / ideal:.2f}",
            f"{s.median(pages_per_s):.0f}",
            f"{s.median(lambda x: x.extra['max_in_flight']):.0f}",
            f"{s.median(cpu_ms_per_page):.2f}",
            runs_ok(s),
        ]
        for s in series
    ]
    bench.say()
    headers = ["client", "server-seen pages/s", "x ideal", "whole-process pages/s"]
    headers += ["max in flight", "CPU ms/page", "runs ok"]
    bench.say(table(headers, rows))
    bench.goal(
        "scale-out latency, 4 processes / ideal, server-seen pages/s",
        series[1].median(lambda x: x.extra["served_rate"]) / ideal,
        0.9,
        "x",
    )


def _split(
    bench: Bench, processes: int, spider: str, spider_file: Path, truth: TruthSource
) -> Client:
    """``processes`` in-memory ``scraper run`` processes, each crawling its own part of the
    site (``spider`` with ``{i}`` for the part), nothing shared: what the machine gives N
    processes when sharing costs nothing, the ceiling for N processes of a shared crawl."""
    label = f"machine limit: {processes} separate processes, 1/{processes} of the site each"
    output = bench.work / f"out-split-{processes}.jsonl"
    command = [sys.executable, str(BENCH / "swarm.py"), "--split", str(processes), str(output)]
    command += ["--", str(bench.scraper_python), "-m", "scraper", "run", spider]
    command += ["-f", str(spider_file), "-q"]
    return Client(label, command, output, bench.pages, truth)


BLOOM = ("--dedup", "bloom")


def _shared(
    bench: Bench,
    redis: RedisProbe,
    processes: int,
    spider: str,
    spider_file: Path,
    truth: TruthSource,
    note: str = "",
    options: Sequence[str] = (),
) -> Client:
    """``processes`` copies of ``scraper run SPIDER --redis URL [OPTIONS]`` started together
    by ``swarm.py`` (the first with ``-o``), measured as one client; before each run Redis is
    emptied and its statistics reset, after it the Redis CPU and calls of the run are read."""
    label = f"redis, {processes} process{'es' if processes > 1 else ''}"
    label += f", {note}" if note else ""
    output = bench.work / f"out-{spider_file.stem}-{processes}{''.join(options)}.jsonl"
    offset = output.with_name(output.name + ".redis-offset")
    command = [sys.executable, str(BENCH / "swarm.py"), str(processes), str(output), "--"]
    command += [str(bench.scraper_python), "-m", "scraper", "run", spider]
    command += ["-f", str(spider_file), "-q", "--redis", redis.url, "--crawl", "bench"]
    command += options
    cpu_before = [0.0]

    def before() -> None:
        offset.unlink(missing_ok=True)  # a new crawl: its export starts from the first record
        redis.command("FLUSHALL")
        redis.command("CONFIG", "RESETSTAT")
        cpu_before[0] = redis.cpu_seconds()

    def after() -> Mapping[str, float]:
        return {
            "redis_cpu": redis.cpu_seconds() - cpu_before[0],
            "redis_calls": float(redis.calls()),
        }

    return Client(label, command, output, bench.pages, truth, before=before, after=after)


def _chain(
    client: Client, before: Callable[[], None], after: Callable[[], Mapping[str, float]]
) -> Client:
    """``client`` with one more hook on each side (its own run first)."""
    first_before, first_after = client.before, client.after

    def both_before() -> None:
        if first_before:
            first_before()
        before()

    def both_after() -> Mapping[str, float]:
        return {**(first_after() if first_after else {}), **after()}

    return replace(client, before=both_before, after=both_after)


def _say_shared(bench: Bench, series: list[Series]) -> None:
    """Pages/s, CPU and Redis's work per page, one row per client."""

    def per_page(key: str, scale: float) -> Callable[[Sample], float]:
        return lambda s: scale * s.extra.get(key, 0.0) / s.pages

    rows = [
        [
            s.label,
            f"{s.median(pages_per_s):.0f}",
            f"{s.median(pages_per_s) / series[0].median(pages_per_s):.2f}",
            f"{s.median(cpu_ms_per_page):.2f}",
            f"{s.median(per_page('redis_cpu', 1000)):.3f}" if s.label.startswith("redis") else "-",
            f"{s.median(per_page('redis_calls', 1)):.1f}" if s.label.startswith("redis") else "-",
            f"{s.median(rss_mb):.1f}",
            runs_ok(s),
        ]
        for s in series
    ]
    bench.say()
    headers = ["client", "pages/s", "x in memory", "CPU ms/page (clients)"]
    headers += ["Redis CPU ms/page", "Redis calls/page", "peak RSS MB (largest)", "runs ok"]
    bench.say(table(headers, rows))
    bench.say(
        "CPU ms/page: user + system time of every scraper process of the run over the pages. "
        "Redis CPU: the server's used_cpu_user + used_cpu_sys over the run (INFO cpu); Redis "
        "calls: INFO commandstats over the run, the commands inside Lua scripts included."
    )


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
    "scaleout": scaleout,
    "profile": profile,
}
"""Every scenario by name; ``all`` runs all but ``profile``."""
