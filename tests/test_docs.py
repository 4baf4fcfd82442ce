"""README.md keeps up with the code: commands, settings, processors, examples, cassettes.

In the manner of sqlite-utils' tests/test_docs.py: what the code offers is read from the
code, and each piece must be in the README (and the README's examples must work).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

import pytest

import scraper
from scraper.cassette import cassette_transport, default_cassette
from scraper.cli import _parser
from scraper.console import EXIT_BY_SIGNAL, EXIT_FAILURES, EXIT_OK, EXIT_USAGE
from scraper.crawler import Crawler
from scraper.fields import PROCESSORS
from scraper.models import Record
from scraper.pagespec import PAGE_KEYS
from scraper.spec import SPIDER_KEYS, CrawlSettings, load_spiders, parse_spiders

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """README's text under the heading ``title``, up to the next heading of its level or up."""
    lines = README.splitlines()
    fence = False
    start: int | None = None
    level = 0
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        heading = None if fence else re.match(r"(#+) (.*)", line)
        if heading is None:
            continue
        if start is None and heading.group(2) == title:
            start, level = number + 1, len(heading.group(1))
        elif start is not None and len(heading.group(1)) <= level:
            return "\n".join(lines[start:number])
    if start is None:
        raise AssertionError(f"README.md has no heading {title!r}")
    return "\n".join(lines[start:])


def first_column(table_text: str) -> list[str]:
    """The first cell of every body row of the Markdown tables in ``table_text``."""
    cells = []
    for line in table_text.splitlines():
        if line.startswith("|") and not re.match(r"\|\s*-", line):
            cells.append(line.split("|")[1].strip())
    return cells[1:] if cells else []  # the first row is the header


def code_names(cells: Iterable[str]) -> set[str]:
    """The names in backticks in ``cells``: `sub: [pattern, replacement]` -> sub."""
    return {span.split(":")[0].strip() for cell in cells for span in re.findall(r"`([^`]+)`", cell)}


def yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", README, flags=re.M | re.S)


def spider_examples() -> list[str]:
    """The ```yaml blocks that are a spider file, or spiders under ``spiders:``."""
    return [b for b in yaml_blocks() if re.match(r"spiders:|  \w+:\n", b)]


COMMANDS = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
"""The ``scraper COMMAND`` subparsers action: ``choices`` by name, each with its help."""


def test_the_commands_are_the_documented_ones() -> None:
    assert list(COMMANDS.choices) == [
        "list",
        "check",
        "run",
        "try",
        "learn",
        "test",
        "export",
        "status",
        "reset",
    ]


@pytest.mark.parametrize("command", COMMANDS.choices)
def test_command_is_in_the_command_line_section(command: str) -> None:
    assert re.search(rf"^scraper {command}\b", section("Command line"), flags=re.M), (
        f"README.md, 'Command line', does not show 'scraper {command}'"
    )


@pytest.mark.parametrize("command", COMMANDS.choices)
def test_command_has_help_text(command: str) -> None:
    listed = {choice.dest: choice.help for choice in COMMANDS._choices_actions}
    assert listed[command], f"scraper {command} has no help in 'scraper --help'"
    subparser = COMMANDS.choices[command]
    assert subparser.description
    for option in subparser._actions:
        assert option.help, f"scraper {command} {option.option_strings or option.dest}: no help"


def test_every_run_option_is_documented() -> None:
    text = section("Command line")
    for option in COMMANDS.choices["run"]._actions:
        if option.help == argparse.SUPPRESS:
            continue  # --shard, --stats-to: how --workers talks to its workers
        for name in option.option_strings:
            if name not in ("-h", "--help"):
                assert name in text, f"scraper run {name} is not in README.md, 'Command line'"


def test_exit_codes_are_documented() -> None:
    documented = {int(code) for code in first_column(section("Exit codes"))}
    assert documented == {EXIT_OK, EXIT_FAILURES, EXIT_USAGE, *EXIT_BY_SIGNAL.values()}


def test_every_setting_is_in_the_settings_table() -> None:
    documented = code_names(first_column(section("Settings")))
    assert documented == {f.name for f in fields(CrawlSettings)}


def test_every_spider_key_is_in_the_spider_table() -> None:
    documented = code_names(first_column(section("A spider")))
    assert set(SPIDER_KEYS) - documented == set()


def test_every_page_key_is_in_the_page_kind_table() -> None:
    documented = code_names(first_column(section("A page kind")))
    assert set(PAGE_KEYS) - documented == set()


def test_every_processor_is_in_the_processors_table() -> None:
    documented = code_names(first_column(section("Processors")))
    assert set(PROCESSORS) <= documented
    assert documented - set(PROCESSORS) == {"raw"}  # raw is read by the spec loader


def test_every_shipped_spider_has_a_cassette() -> None:
    spider_file = ROOT / "spiders.yaml"
    for name in load_spiders(spider_file).spiders:
        assert default_cassette(spider_file, name).is_file(), f"no cassette for {name}"


def test_all_is_sorted_and_every_name_exists() -> None:
    assert scraper.__all__ == sorted(scraper.__all__)
    assert scraper.__all__ == [
        *("CallbackError", "CassetteError", "FetchError", "OutputError", "Page", "Record"),
        *("Request", "RunResult", "ScraperError", "SpecError", "SpiderNotFound", "Spiders"),
        *("__version__", "acrawl", "crawl", "load_spiders", "run"),
    ]
    for name in scraper.__all__:
        assert hasattr(scraper, name), name


@pytest.mark.parametrize(
    "block", spider_examples(), ids=lambda b: re.search(r"^  (\w+):", b, re.M).group(1)
)
def test_spider_examples_load(block: str) -> None:
    text = block if block.startswith("spiders:") else "spiders:\n" + block
    assert parse_spiders(text, "README.md").spiders


class Collected:
    """A record sink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        self.records.extend(records)
        return Counter()


def test_the_maoyan_positional_fields_example_works_on_the_shipped_cassette() -> None:
    after = README.index("How a match becomes a record")
    block = next(b for b in yaml_blocks() if b.startswith("  maoyan:") and README.index(b) > after)
    spider = parse_spiders("spiders:\n" + block, "README.md").get("maoyan")
    assert spider.pages["main"].fields[:2] == ("index", "title")
    sink = Collected()
    cassette = ROOT / "spiders" / "cassettes" / "maoyan.yaml"
    with cassette_transport(cassette, record=False) as transport:
        stats = asyncio.run(Crawler(spider, sink, transport=transport).run())
    assert stats.failures == 0
    assert len(sink.records) == 100
    assert sorted(r["index"] for r in sink.records) == list(range(1, 101))
    first = next(r for r in sink.records if r["index"] == 1)
    assert (first["title"], first["score"]) == ("海镇来客", 9.7)
    assert set(first) == {"index", "title", "actor", "time", "score"}


def test_every_test_the_guarantees_table_names_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", section("Guarantees"))
    assert named
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert not name or f"def {name}(" in source, f"README names {path}::{name}"
