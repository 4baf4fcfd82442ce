"""A learned pattern run as a spider would run it, and compared with the labels.

``scraper learn`` never proposes silently: the pattern goes through
``scraper.spec.parse_spiders`` and ``scraper.extract`` on every page given, and
each difference from what the pages show (a count, a value, a field missing
from some records, an example not extracted) becomes a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import yaml

from scraper.extract import extract
from scraper.learnpage import HtmlPage, normalize
from scraper.learnwrap import Label, Record, Wrapper
from scraper.models import Page, Request
from scraper.spec import parse_spiders

SHOWN_DIFFERENCES = 3
"""Records whose values differ named one by one; the rest are counted."""


def as_page(url: str, text: str) -> Page:
    """A decoded page as ``scraper.extract`` takes it."""
    return Page(url, 200, (), text.encode("utf-8", "replace"), text, "utf-8", Request(url))


def check_proposal(
    pages: list[HtmlPage],
    wrapper: Wrapper,
    clean: dict[str, list[Any]],
    formats: dict[str, str],
    records: list[Record],
    labels: list[list[Label | None]],
    names: list[str],
    examples: Sequence[Mapping[str, str]],
) -> tuple[list[int], list[dict[str, Any]], list[str]]:
    """Records per page, the first page's records, and every difference found."""
    block: dict[str, Any] = {"pattern": wrapper.pattern, "flags": ["DOTALL"]}
    if formats:
        block["format"] = formats
    if clean:
        block["clean"] = clean
    extracted, problems = run_block(pages, block)
    counts = [len(rows) for rows in extracted]
    differences: list[str] = []
    for number, rows in enumerate(extracted):
        expected = [
            row for record, row in zip(records, labels, strict=True) if record.page == number
        ]
        if len(rows) != len(expected):
            problems.append(
                f"page {number + 1}: the pattern extracts {len(rows)} records; the page has "
                f"{len(expected)} like the example"
            )
        for index, (row, wanted) in enumerate(zip(rows, expected, strict=False)):
            for name, label in zip(names, wanted, strict=False):
                if not _same(row.get(name), None if label is None else label.value):
                    differences.append(
                        f"page {number + 1}, record {index + 1}: {name} is {row.get(name)!r}; "
                        f"the page shows {None if label is None else label.value!r}"
                    )
    problems += differences[:SHOWN_DIFFERENCES]
    if len(differences) > SHOWN_DIFFERENCES:
        problems.append(f"... and {len(differences) - SHOWN_DIFFERENCES} more values differ")
    for index, name in enumerate(names):
        lacking = sum(1 for row in labels if index < len(row) and row[index] is None)
        if lacking:
            problems.append(
                f"{name}: missing from {lacking} of {len(labels)} records (optional in the "
                "pattern: null there)"
            )
    every = [row for rows in extracted for row in rows]
    # With two examples each is looked for, in the order given: either may be the one
    # that gave the places (the one with every field).
    for number, other in enumerate(examples if len(examples) > 1 else [], 1):
        if not any(all(_same(row.get(k), normalize(v)) for k, v in other.items()) for row in every):
            problems.append(f"example record {number} is not among the records extracted")
    return counts, extracted[0] if extracted else [], problems


class _Page(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def text(self) -> str: ...


def run_block(
    pages: Sequence[_Page], block: Mapping[str, Any]
) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """The records a spider of ``block`` (pattern, flags, format, clean) extracts from each
    page, as ``scraper run`` would, and the records it drops, as warnings."""
    whole = {"start": "https://example.invalid/", **block}
    text = yaml.safe_dump({"spiders": {"learned": whole}}, allow_unicode=True, sort_keys=False)
    spider = parse_spiders(text, "learned.yaml").spiders["learned"]
    spec = spider.pages[spider.first_page]
    extracted: list[list[dict[str, Any]]] = []
    problems: list[str] = []
    for number, page in enumerate(pages):
        result = extract(as_page(page.url, page.text), spec, spider)
        extracted.append(result.records)
        for reason, count in result.dropped.items():
            problems.append(f"page {number + 1}: {count} records dropped ({reason})")
    return extracted, problems


def _same(value: Any, shown: str | None) -> bool:
    if shown is None or value is None:
        return value is None and shown is None
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        try:
            return float(shown.replace(",", "")) == float(value)
        except ValueError:
            return False
    return normalize(str(value)) == normalize(shown)
