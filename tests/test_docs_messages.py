"""README.md quotes what scraper prints, word for word: errors, warnings, summaries, output.

Each message README shows is either made again by the command that prints it and
compared (``PRINTED``, the run summaries, ``scraper status``), or found among the texts
the code makes (every string, f-string and %-format in scraper/, its fields matching
any text). A message changed in the code and not in README fails here.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import regex

from scraper.cli import main
from scraper.redisrun import status_lines
from scraper.stats import CrawlStats

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

MESSAGE = re.compile(r"scraper: (?:error|WARNING|INFO): ")
"""How a message starts on stderr: an error (``cli.main``) or a log line."""


def code_blocks() -> list[list[str]]:
    """The lines of each fenced code block of README.md, its indentation taken off."""
    blocks: list[list[str]] = []
    indent: int | None = None
    for line in README.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```") and indent is None:
            indent = len(line) - len(stripped)
            blocks.append([])
        elif stripped.startswith("```"):
            indent = None
        elif indent is not None:
            blocks[-1].append(line[indent:])
    return blocks


def code_spans() -> list[str]:
    """README's `spans` outside code blocks, on one line each, as Markdown shows them."""
    prose = re.sub(r"^ *```.*?^ *```", "", README, flags=re.M | re.S)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def quoted(marker: str) -> list[str]:
    """The lines of the one code block, or the one span, of README holding ``marker``."""
    found = [block for block in code_blocks() if marker in "\n".join(block)]
    found += [[span] for span in code_spans() if marker in span]
    assert len(found) == 1, f"README.md quotes {marker!r} {len(found)} times, not once"
    return found[0]


def shown_in(quote: list[str], printed: str) -> bool:
    """Whether ``printed`` holds what README quotes, line for line. A quoted line ``...``
    leaves out printed lines, one ending in ``...`` the end of a line; ``$`` lines are
    the command. A span is compared as Markdown shows it, on one line."""
    if len(quote) == 1:
        return " ".join(quote[0].removesuffix("...").split()) in " ".join(printed.split())
    pieces: list[list[str]] = [[]]
    for line in quote:
        if line.strip() == "...":
            pieces.append([])
        elif not line.startswith("$ "):
            pieces[-1].append(line)
    lines, at = printed.splitlines(), 0
    for piece in filter(None, pieces):
        for start in range(at, len(lines) - len(piece) + 1):
            if all(
                line == have or (line.endswith("...") and have.startswith(line[:-3]))
                for line, have in zip(piece, lines[start:], strict=False)
            ):
                at = start + len(piece)
                break
        else:
            return False
    return True


BOARD = ROOT / "tests" / "sites" / "maoyan" / "board4_offset0.html"
NEAR_MISS = '<dd>.*?board-index.*?>(\\d+)</i>.*?title="(.*?)".*?class="stars">(.*?)</p>'
"""A pattern whose first 61 characters of 73 match on ``BOARD``."""
BOARD_2019 = ROOT.parent / "shared" / "corpus" / "maoyan" / "board4_offset0_2019.html"


@dataclass(frozen=True)
class Printed:
    """A message README quotes (the block or span holding ``marker``) and the command
    that prints it: ``argv``, else the ``$ scraper ...`` line of the block."""

    marker: str
    spider: str = ""
    """spiders.yaml: the README example holding this text, this YAML, or (empty) the
    shipped file; its cassettes are beside it."""
    typo: tuple[str, str] = ("", "")
    """Made in the spider file first (``old``, ``new``): the fault the message names."""
    argv: tuple[str, ...] = ()
    files: tuple[tuple[str, Path], ...] = ()
    masks: tuple[tuple[str, str], ...] = ()
    """What differs from run to run (a time, a temporary path): (regex, README's text)."""

    def spider_file(self) -> str:
        if self.spider.startswith("spiders:"):
            text = self.spider
        elif self.spider:
            text = "\n".join(quoted(self.spider)) + "\n"
        else:
            text = (ROOT / "spiders.yaml").read_text(encoding="utf-8")
        old, new = self.typo
        assert old in text
        return text.replace(old, new, 1)


PRINTED = [
    Printed("in spider 'quotes'", "one record per quote", ("pattern:", "pattren:"), ("check",)),
    Printed(
        r"\d is not an escape",
        'spiders:\n  books:\n    start: https://books.example/\n    pattern: "<b>(\\d+)</b>"\n',
        argv=("check",),
    ),
    Printed(
        "'compnay_name'",
        "attributes: json",
        (" company_name:", " compnay_name:"),
        ("check",),
    ),
    Printed("'address..city'", "Job offers", ("address.city", "address..city"), ("check",)),
    Printed(
        "field 'titel'", "month: {range: [1, 13]}", ("[date, title]", "[date, titel]"), ("check",)
    ),
    Printed("in spider 'maoyan'", typo=("    pattern:", "    pattren:"), argv=("check",)),
    Printed("--example 'Casablanca'", argv=("learn", "page.html", "--example", "Casablanca")),
    Printed("output out/books.csv", argv=("run", "books", "-o", "out/books.csv")),
    Printed(
        "URL: not JSON",
        "Job offers",
        argv=("try", "api", "--url", "page.html"),
        files=(("page.html", BOARD),),
        masks=((r"file://\S+?page\.html", "URL"),),
    ),
    Printed(
        "10 matches (0 dropped) in 0.41 ms",
        files=(("board.html", BOARD),),
        masks=((r"in [\d.]+ ms", "in 0.41 ms"), (r"file://\S+?html", "file:///home/me/board.html")),
    ),
    Printed(
        "Nothing matched.",
        argv=("try", "board.html", "--flags", "DOTALL", "--pattern", NEAR_MISS),
        files=(("board.html", BOARD),),
    ),
    Printed("record 1:", masks=((r"in [\d.]+ ms", "in 0.66 ms"),)),
    Printed("2 passed, 1 failed", typo=('<article class="product_pod">', "<article>")),
    Printed(
        "records: 10 on file:",
        files=(("board.html", BOARD_2019),),  # ../shared/corpus: skipped where it is absent
        masks=((r"file://\S+?html", "file:///tmp/board.html"),),
    ),
]


@pytest.mark.parametrize("case", PRINTED, ids=lambda case: case.marker)
def test_readme_quotes_what_the_command_prints(
    case: Printed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quote = quoted(case.marker)
    commands = [shlex.split(line[2:])[1:] for line in quote if line.startswith("$ scraper ")]
    argv = list(case.argv) or commands[0]
    for name, source in case.files:
        if not source.is_file():
            pytest.skip(f"{source} is absent")
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / "spiders.yaml").write_text(case.spider_file(), encoding="utf-8")
    (tmp_path / "spiders").symlink_to(ROOT / "spiders")
    monkeypatch.chdir(tmp_path)
    main(argv)
    out, err = capsys.readouterr()
    printed = out + err
    for pattern, shown in case.masks:
        printed = re.sub(pattern, shown, printed)
    assert shown_in(quote, printed), (
        f"README.md quotes\n{chr(10).join(quote)}\nbut scraper {shlex.join(argv)} prints\n{printed}"
    )


def test_the_summaries_and_the_status_readme_shows_are_what_the_code_prints() -> None:
    run = CrawlStats(pages=49, records=980, started=0, finished=50 / 212.7)
    run.failed["http 404"], run.skipped["offsite"] = 1, 3
    recrawl = CrawlStats(pages=3, records=2, incremental=True, not_modified=1, done_before=5)
    recrawl.started, recrawl.finished = 0, 4 / 164
    rows = CrawlStats(pages=10, records=100, rows=Counter(new=0, updated=100))
    status = {"finished": 0, "queued": 31, "in_flight": 0, "done": 134, "failed": {}}
    status |= {"dead": 0, "records": 290, "dropped": {}, "hosts_waiting": 1, "processes": 2}
    status |= {"already_seen": 112, "dedup_bytes_per_url": 96.5}
    shown = status_lines("redis://:s3cret@127.0.0.1:16399/0", "shop", status)
    for marker, printed in [
        ("records written: 980", run.summary()),
        ("pages unchanged: 1", recrawl.summary()),
        ("rows:            0 new, 100 updated", rows.summary()),
        ("dedup memory:", "\n".join(shown)),
    ]:
        assert shown_in(quoted(marker), printed), f"README.md's {marker!r}; the code's\n{printed}"


QUOTED_BARE = [
    "HOST asks us to slow down: pausing it for Ns",
    "stopping: finishing the pages in flight (up to 3s)",
    "lost Redis at URL; retrying (REASON)",
    "Redis at URL is back",
    "URL was done by another process meanwhile (its lease ran out)",
    "the field 'director' came after the CSV header was written: its values are left out of "
    "films.csv (JSON Lines and SQLite outputs keep every field)",
    "resuming from books.jsonl.state: 60 pages done, none pending or failed; only start URLs "
    "not requested yet are fetched (none, if the crawl had finished)",
    "out.jsonl.state keeps the history of --incremental re-crawls of out.jsonl: add "
    "--incremental to add to it, or delete out.jsonl.state to start over ...",
    "--incremental is for single-process runs: it does not go with --redis or --workers ...",
    "the crawl 'shop' in Redis keeps its seen URLs with --dedup bloom, chosen by the process "
    "that started it, not --dedup set: ...",
    "run(): concurrency must be at least 1, not 0.",
    "N items (0 dropped) ...",
    "answered 404",
    "records dropped: 1 (duplicate: 1)",
    "records dropped: 1 (v: not finite: 1)",
    "pages unchanged: N (304 not modified)",
    "pages skipped: N (already done)",
    "records skipped: N (unchanged)",
    "rows: N new, M updated",
    "no match: N pages of kind 'K' (has the markup changed?)",
    "delete 811 keys of crawl shop at redis://:***@127.0.0.1:16399/0? [y/N]",
    "deleted 811 keys of crawl shop at redis://:***@127.0.0.1:16399/0.",
    'no record matches sample 1 {"version": 0.1}; the closest, record 1, has version "0.1" '
    "(text), not 0.1 (a number: quote it in the sample to expect text)",
]
"""Messages README quotes without their ``scraper: ...`` head, in prose."""


@functools.cache
def code_texts() -> list[regex.Pattern[str]]:
    """Each text scraper/ makes (a string, an f-string, a %-format, a sum of them) as a
    pattern: its fields match any text, its whitespace one space. Only those with a
    word of their own (5 letters): ``f"{a}: {b}"`` would match any message."""
    field = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[sdrf]")

    def parts(node: ast.expr) -> list[str | None]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [x for piece in field.split(node.value) for x in (piece, None)][:-1]
        if isinstance(node, ast.JoinedStr):
            return [v.value if isinstance(v, ast.Constant) else None for v in node.values]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return parts(node.left) + parts(node.right)
        return [None]

    patterns = []
    for path in sorted((ROOT / "scraper").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(n.value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp))
                and id(node) not in docstrings
            ):
                text = " ".join("".join("\0" if p is None else p for p in parts(node)).split())
                if sum(c.isalpha() for c in text) >= 5:
                    patterns.append(regex.compile(".*?".join(map(re.escape, text.split("\0")))))
    return patterns


@pytest.mark.parametrize(
    "quote",
    sorted(
        {
            *(line.strip() for line in README.splitlines() if MESSAGE.match(line.strip())),
            *(span for span in code_spans() if MESSAGE.match(span)),
            *QUOTED_BARE,
        }
    ),
)
def test_every_message_readme_quotes_is_one_the_code_makes(quote: str) -> None:
    assert " ".join(quote.split()) in " ".join(README.split())
    if any(quote in "\n".join(quoted(case.marker)) for case in PRINTED):
        return  # compared with what the command prints
    head = MESSAGE.match(quote)
    message = " ".join(quote[head.end() if head else 0 :].split())
    partial = message.endswith("...")
    message = message.removesuffix("...").rstrip()
    assert any(p.fullmatch(message, partial=partial) for p in code_texts()), (
        f"README.md quotes {quote!r}, which no string in scraper/ makes: make README say "
        "what the code prints (or add it to PRINTED with a command that prints it)"
    )
