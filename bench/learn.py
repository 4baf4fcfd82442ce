"""How often ``scraper learn`` proposes an exact pattern from one record's values.

    python bench/learn.py                      # needs ../shared/corpus; skips without it
    python bench/learn.py --site douban --pages 3
    python bench/learn.py --oracle --site douban   # checks the harness: a right pattern scores 100%

For each saved real page of ``../shared/corpus`` and several field sets (a number,
a value with a label such as ``主演：``, an optional value, an attribute-only value,
a table row), the values of one record are given to ``scraper.learn.learn`` as a
person reads them; the proposal, loaded as a spider and run through
``scraper.extract``, must give every record of the page exactly (no extra record,
every value equal after entity and whitespace normalisation). The same proposal,
unchanged, is run on every other page of the same site and markup ("cross-page").
The example is record 1, the middle record and the last record (among the records
that have every field of the set), then the first and last records together.

The ground truth is computed here with plain ``re`` per site, one block per record,
as the corpus README's column "checked with plain re" describes. Also counted:
proposals that are not exact on their own page yet give no warning and a count
equal to the page's (silently wrong), patterns ``scraper check`` warns about, and
patterns slower than 50 ms on a mutated near-miss page.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))

import regex  # noqa: E402
import yaml  # noqa: E402

from scraper.extract import extract  # noqa: E402
from scraper.lint import backtracking_warnings  # noqa: E402
from scraper.models import Page  # noqa: E402
from scraper.regexspec import flag_value  # noqa: E402
from scraper.spec import CrawlSettings, parse_spiders  # noqa: E402
from scraper.trial import load_page  # noqa: E402

Record = dict[str, str | None]
SLOW_MS = 50.0
ALSO = 10
GROUPS = {
    "first": "one record (first, middle, last)",
    "middle": "one record (first, middle, last)",
    "last": "one record (first, middle, last)",
    "two": "two records (first and last)",
    "also": "one record, 9 --also pages",
}
"""Pages given to learn in the "also" variant: the page and the next 9 of its site."""


def _text(value: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(value)).strip()


def _after(label: str, value: str) -> str:
    value = _text(value)
    return value[len(label) :].strip() if value.startswith(label) else value


def _blocks(text: str, start: str, end: str | None = None) -> list[str]:
    """The text of each record: from each ``start`` to the next (or to ``end``)."""
    parts = text.split(start)[1:]
    return [p.split(end)[0] if end else p for p in parts]


def _find(pattern: str, block: str, group: int = 1) -> str | None:
    found = re.search(pattern, block, re.S)
    return None if found is None else found.group(group)


def maoyan_board(text: str) -> list[Record]:
    records = []
    for block in _blocks(text, "<dd>", "</dd>"):
        score = re.search(r'<i class="integer">([^<]*)</i><i class="fraction">([^<]*)</i>', block)
        records.append(
            {
                "index": _find(r"board-index[^>]*>(\d+)</i>", block),
                "title": _text(_find(r'<p class="name"><a [^>]*>([^<]*)</a>', block) or ""),
                "link": _find(r'<p class="name"><a href="([^"]+)"', block),
                "actor": _after("主演：", _find(r'<p class="star">(.*?)</p>', block) or ""),
                "time": _after(
                    "上映时间：", _find(r'<p class="releasetime">(.*?)</p>', block) or ""
                ),
                "score": score.group(1) + score.group(2) if score else None,
            }
        )
    return records


def maoyan_films(text: str) -> list[Record]:
    records = []
    for block in _blocks(text, "<dd>", "</dd>"):
        tail = block[block.index("movie-item-title") :]
        score = re.search(r'<i class="integer">([^<]*)</i><i class="fraction">([^<]*)</i>', tail)
        records.append(
            {
                "title": _text(_find(r'movie-item-title" title="([^"]*)"', block) or ""),
                "link": _find(r'movie-item-title"[^>]*>\s*<a href="([^"]+)"', block),
                "score": score.group(1) + score.group(2) if score else None,  # 暂无评分: none
            }
        )
    return records


def douban(text: str) -> list[Record]:
    return [
        {
            "rank": _find(r"<em[^>]*>(\d+)</em>", block),
            "title": _text(_find(r'<span class="title">([^<]*)</span>', block) or ""),
            "link": _find(r'<a href="([^"]+)"', block),
            "rating": _find(r'<span class="rating_num"[^>]*>([^<]*)</span>', block),
            "quote": (lambda q: None if q is None else _text(q))(
                _find(r'<span class="inq">([^<]*)</span>', block)
            ),
        }
        for block in _blocks(text, '<div class="item">')
    ]


def books(text: str) -> list[Record]:
    records = []
    for block in _blocks(text, '<article class="product_pod">', "</article>"):
        link = re.search(r"""<h3><a href=(["'])(.*?)\1 title=(["'])(.*?)\3""", block, re.S)
        assert link is not None
        records.append(
            {
                "title": _text(link.group(4)),
                "link": link.group(2),
                "price": _find(r'<p class="price_color">([^<]*)</p>', block),
                "rating": _find(r'<p class="star-rating (\w+)">', block),
                "availability": _text(_find(r"availability\">.*?</i>(.*?)</p>", block) or ""),
            }
        )
    return records


def ygdy8(text: str) -> list[Record]:
    return [
        {
            "title": _text(_find(r'class="ulink">([^<]*)</a>', block) or ""),
            "link": _find(r'<a href="([^"]+)" class="ulink"', block),
            "date": _find(r"日期：(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", block),
        }
        for block in _blocks(text, 'class="tbspan"', "</table>")
    ]


@dataclass(frozen=True)
class Site:
    """Pages of one site and markup, the plain-re ground truth, and the field sets tried."""

    name: str
    pages: tuple[str, ...]
    truth: Callable[[str], list[Record]]
    field_sets: tuple[tuple[str, ...], ...]
    extra: tuple[tuple[str, ...], ...] = ()
    """Field sets shown but not counted in the totals: values a person does not read on
    the page (a rating that is only a class token, ``star-rating Three``)."""


def sites() -> list[Site]:
    book_pages = ["books/site/index.html"] + [
        f"books/site/catalogue/page-{n}.html" for n in range(2, 50)
    ]
    return [
        Site(
            "maoyan board",
            tuple(
                f"maoyan/{n}.html"
                for n in (
                    "board4_offset0_2019",
                    "board4_offset0_2025",
                    "board4_offset90_2025",
                    "board7_2018",
                )
            ),
            maoyan_board,
            (
                ("index", "title"),
                ("title", "actor", "time"),
                ("title", "score"),
                ("link", "title"),
                ("index", "title", "actor", "time", "score"),
            ),
        ),
        Site(
            "maoyan films",
            ("maoyan/films_hot_2020.html", "maoyan/films_classic_2020_gbk_bytes_utf8_label.html"),
            maoyan_films,
            (("title", "link"), ("title", "score")),
        ),
        Site(
            "douban 2019",
            tuple(f"douban/top250_start{n}.html" for n in range(0, 250, 25)),
            douban,
            (
                ("rank", "title"),
                ("title", "rating"),
                ("title", "quote"),
                ("link", "title"),
                ("rank", "title", "rating", "quote"),
            ),
        ),
        Site(
            "douban 2017",
            ("douban/top250_start0_2017.html",),
            douban,
            (("rank", "title"), ("title", "rating", "quote")),
        ),
        Site(
            "books",
            tuple(book_pages),
            books,
            (("title", "price"), ("link", "title"), ("title", "availability")),
            extra=(("title", "rating"),),
        ),
        Site(
            "gbk list",
            ("gbk/ygdy8_list_gb2312.html",),
            ygdy8,
            (("title", "link"), ("title", "date")),
        ),
    ]


@dataclass
class Tally:
    """Counts of one (site, field set, example choice)."""

    exact: int = 0
    pages: int = 0
    cross: int = 0
    pairs: int = 0
    silent: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    none: int = 0


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def same(found: Any, truth: str | None, page_url: str, name: str) -> bool:
    """Whether an extracted value equals the truth after normalisation."""
    if truth is None or truth == "":
        return found is None or found == "" or found == []
    if found is None:
        return False
    if isinstance(found, list):
        parts = [p for p in re.split(r"\s*[,/／、]\s*", truth) if p]
        return [_text(str(v)) for v in found] == parts
    if isinstance(found, (int, float)) and not isinstance(found, bool):
        numbers = NUMBER.findall(truth)
        return len(numbers) == 1 and float(numbers[0]) == float(found)
    if name == "link":
        return urljoin(page_url, _text(str(found))) == urljoin(page_url, _text(truth))
    return _text(str(found)) == _text(truth)


def exact(
    records: Sequence[dict[str, Any]], truth: list[Record], fields: Sequence[str], url: str
) -> bool:
    return len(records) == len(truth) and all(
        all(same(r.get(name), t[name], url, name) for name in fields)
        for r, t in zip(records, truth, strict=True)
    )


def load(name: str, settings: CrawlSettings) -> Page:
    """A corpus page decoded as ``scraper run`` decodes a file, at the URL the site served it."""
    routes = json.loads((CORPUS / "routes.json").read_text(encoding="utf-8"))
    urls = {route["file"]: url for url, route in routes.items()}
    page = load_page(str(CORPUS / name), settings)
    return replace(page, url=urls.get(name, f"https://corpus.invalid/{name}"))


def spider_of(block: dict[str, Any], url: str) -> Any:
    text = yaml.safe_dump({"spiders": {"bench": {**block, "start": url}}}, allow_unicode=True)
    return parse_spiders(text, "bench.yaml").spiders["bench"]


def run_spider(spider: Any, page: Page) -> list[dict[str, Any]]:
    return list(extract(page, spider.pages[spider.first_page], spider).records)


def safety(block: dict[str, Any], page: Page) -> str | None:
    """Why the proposed pattern is unsafe (a check warning, slow on a near miss), or None."""
    pattern = block.get("pattern") or block.get("from")
    if pattern is None:
        return None
    flags = 0
    for name in block.get("flags", ()):
        flags |= flag_value(name) or 0
    warnings = backtracking_warnings(pattern, flags)
    if warnings:
        return f"check warns: {warnings[0]}"
    compiled = regex.compile(pattern, flags | regex.VERSION0)
    for mutated in (re.sub(r"</(\w+)>", "", page.text), page.text * 20):
        spent = min(_milliseconds(compiled, mutated) for _ in range(3))  # best of 3: not noise
        if spent > SLOW_MS:
            return f"{spent:.0f} ms on a mutated page"
    return None


def _milliseconds(compiled: regex.Pattern[str], text: str) -> float:
    started = time.perf_counter()
    for _ in compiled.finditer(text, timeout=1.0):
        pass
    return (time.perf_counter() - started) * 1000


def examples_of(truth: list[Record], fields: Sequence[str]) -> dict[str, list[Record]]:
    """The example records: first, middle, last, first and last, and first again (learnt
    with ``--also`` pages), among the records that have every field."""
    complete = [r for r in truth if all(r[f] not in (None, "") for f in fields)]
    if not complete:
        return {}
    pick = [{f: str(r[f]) for f in fields} for r in complete]
    middle = pick[len(pick) // 2]
    return {
        "first": [pick[0]],
        "middle": [middle],
        "last": [pick[-1]],
        "two": [pick[0], pick[-1]] if len(pick) > 1 else [pick[0]],
        "also": [pick[0]],
    }


Learner = Callable[
    [list[Page], list[Record], str], tuple[dict[str, Any] | None, list[str], list[int]]
]


def learner(oracle: bool) -> Learner:
    """A function (pages, examples, site) -> (spider block, warnings, counts per page)."""
    if oracle:

        def truth_block(pages: list[Page], examples: list[Record], site: str) -> Any:
            return ORACLE.get(site), [], []

        return truth_block
    from scraper.learn import LearnPage, learn

    def learnt(pages: list[Page], examples: list[Record], site: str) -> Any:
        proposal = learn([LearnPage(page.url, page.text) for page in pages], examples)
        if proposal.pattern is None and proposal.json_page is None:
            return None, proposal.warnings, proposal.counts
        return proposal.spider("bench", pages[0].url), proposal.warnings, proposal.counts

    return learnt


ORACLE: dict[str, dict[str, Any]] = {
    "douban 2019": {
        "pattern": r'<div class="item">.*?<em[^>]*>(?P<rank>\d+)</em>\s*<a href="(?P<link>[^"]+)"'
        r'.*?<span class="title">(?P<title>[^<]*)</span>.*?<span class="rating_num"[^>]*>'
        r'(?P<rating>[^<]*)</span>(?:(?:(?!<div class="item">).)*?<span class="inq">'
        r"(?P<quote>[^<]*)</span>)?",
        "flags": ["DOTALL"],
    },
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", help="only sites whose name contains this")
    parser.add_argument("--pages", type=int, default=0, help="at most N pages a site (0: all)")
    parser.add_argument("--oracle", action="store_true", help="score the ground truth itself")
    args = parser.parse_args(argv)
    print(
        "$ " + shlex.join(["python", "bench/learn.py", *(sys.argv[1:] if argv is None else argv)])
    )
    if not CORPUS.is_dir():
        print(f"skipped: no corpus at {CORPUS} (see its README.md)")
        return 0
    learn_one = learner(args.oracle)
    settings = CrawlSettings()
    totals = {group: Tally() for group in dict.fromkeys(GROUPS.values())}
    problems: list[str] = []
    started = time.perf_counter()
    for site in sites():
        if args.site and args.site not in site.name:
            continue
        names = site.pages[: args.pages] if args.pages else site.pages
        pages = [load(name, settings) for name in names]
        truths = [site.truth(page.text) for page in pages]
        for name, truth in zip(names, truths, strict=True):
            assert truth, f"no ground truth records in {name}"
        print(f"\n{site.name}: {len(pages)} pages, {sum(map(len, truths))} records")
        variants = ("first", "middle", "last", "two", "also")
        print(f"  {'fields':<34}" + "".join(f"{v + ': pages, cross':>24}" for v in variants))
        for fields in site.field_sets + site.extra:
            scores: dict[str, list[bool]] = {}
            unsafe_patterns: dict[str, str | None] = {}
            tallies = {v: Tally() for v in variants}
            for index, (page, truth) in enumerate(zip(pages, truths, strict=True)):
                for variant, examples in examples_of(truth, fields).items():
                    tally = tallies[variant]
                    tally.pages += 1
                    also = [
                        pages[(index + n) % len(pages)] for n in range(1, min(len(pages), ALSO))
                    ]
                    given = [page, *also] if variant == "also" else [page]
                    block, warnings, counts = learn_one(given, examples, site.name)
                    if block is None:
                        tally.none += 1
                        tally.pairs += len(pages) - 1
                        continue
                    spider = spider_of(block, page.url)
                    records = run_spider(spider, page)
                    key = json.dumps(block, sort_keys=True, ensure_ascii=False)
                    if key not in scores:  # the same proposal from other pages: scored once
                        scores[key] = [
                            exact(run_spider(spider, p), t, fields, p.url)
                            for p, t in zip(pages, truths, strict=True)
                        ]
                    if exact(records, truth, fields, page.url):
                        tally.exact += 1
                    elif not warnings and (counts[:1] or [len(records)])[0] == len(truth):
                        tally.silent.append(f"{names[index]} {variant}")
                    unsafe = unsafe_patterns.setdefault(key, safety(block, page))
                    if unsafe:
                        tally.unsafe.append(f"{names[index]} {variant}: {unsafe}")
                    tally.pairs += len(pages) - 1
                    tally.cross += sum(scores[key]) - scores[key][index]
            cells = "".join(
                f"{f'{t.exact}/{t.pages}, {t.cross}/{t.pairs}':>24}" for t in tallies.values()
            )
            counted = fields not in site.extra
            print(f"  {'+'.join(fields) + ('' if counted else ' (not counted)'):<34}{cells}")
            for variant, tally in tallies.items():
                if counted:
                    total = totals[GROUPS[variant]]
                    total.exact += tally.exact
                    total.pages += tally.pages
                    total.cross += tally.cross
                    total.pairs += tally.pairs
                where = f"{site.name} {'+'.join(fields)} {variant}"
                for what, cases in (("silently wrong", tally.silent), ("unsafe", tally.unsafe)):
                    if cases:
                        problems.append(f"{what}: {where}: {len(cases)} pages, e.g. {cases[0]}")
                if tally.none:
                    problems.append(f"no proposal: {where}: {tally.none} pages")
    print(f"\nall sites, counted field sets ({time.perf_counter() - started:.0f} s):")
    for group, total in totals.items():
        pct = 100 * total.exact / max(total.pages, 1)
        cross = 100 * total.cross / max(total.pairs, 1)
        print(
            f"  {group:<34} pages exact {total.exact}/{total.pages} ({pct:.1f}%), "
            f"cross-page exact {total.cross}/{total.pairs} ({cross:.1f}%)"
        )
    for problem in problems:
        print("  " + problem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
