"""A spider's ``expect:`` block, and checking a run against it, for ``scraper test``.

``ExpectationCheck`` is a record sink: the crawl writes into it as into a
JSON Lines file, and it keeps only what the checks need (counts, the values
of ``unique`` fields, which samples were seen), never the records themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from scraper.models import Record
from scraper.stats import CrawlStats
from scraper.yamlnodes import NodeReader

EXPECT_KEYS = (
    "min_records",
    "max_records",
    "required",
    "unique",
    "sample",
    "max_failed_pages",
    "max_empty_pages",
)


@dataclass(frozen=True, kw_only=True)
class Expectations:
    """What ``scraper test`` checks a replayed run against (``expect:`` in the YAML)."""

    min_records: int = 1
    max_records: int | None = None
    required: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()
    samples: tuple[Mapping[str, Any], ...] = ()
    max_failed_pages: int = 0
    max_empty_pages: int = 0


def read_expectations(reader: NodeReader, node: yaml.Node, where: str) -> Expectations:
    """Read an ``expect:`` mapping."""
    changes: dict[str, Any] = {}
    for key, (_, value) in reader.mapping(node, where, EXPECT_KEYS).items():
        label = f"{where}: {key}"
        if key in ("min_records", "max_records", "max_failed_pages", "max_empty_pages"):
            changes[key] = reader.number(value, label, int, 0)
        elif key in ("required", "unique"):
            changes[key] = tuple(reader.strings(value, label))
        elif key == "sample":
            samples = []
            for item in reader.sequence(value, label):
                sample = reader.value(item)
                if not isinstance(sample, dict) or not sample:
                    raise reader.error(
                        item, f"{label} must be a mapping of field: value, or a list of them."
                    )
                samples.append(sample)
            changes["samples"] = tuple(samples)
    return Expectations(**changes)


class ExpectationCheck:
    """Receives a run's records; ``problems(stats)`` says what differed from ``expect``."""

    def __init__(self, expect: Expectations) -> None:
        self.expect = expect
        self.count = 0
        self.size = 0  # a RecordSink with no file
        self._missing: Counter[str] = Counter()
        self._first_missing: dict[str, int] = {}
        self._seen: dict[str, set[Any]] = {name: set() for name in expect.unique}
        self._duplicates: dict[str, list[Any]] = {name: [] for name in expect.unique}
        self._samples_found = [False] * len(expect.samples)

    def write(self, records: Iterable[Record]) -> Counter[str]:
        """Take in the records of one page (none is left out)."""
        for record in records:
            self.count += 1
            for name in self.expect.required:
                if record.get(name) in (None, ""):
                    self._missing[name] += 1
                    self._first_missing.setdefault(name, self.count)
            for name, seen in self._seen.items():
                value = _hashable(record.get(name))
                if value in seen:
                    self._duplicates[name].append(value)
                seen.add(value)
            for index, sample in enumerate(self.expect.samples):
                if not self._samples_found[index] and all(
                    record.get(k) == v for k, v in sample.items()
                ):
                    self._samples_found[index] = True
        return Counter()

    def problems(self, stats: CrawlStats) -> list[str]:
        """Each expectation the run did not meet, as a sentence; empty when all hold."""
        expect = self.expect
        found: list[str] = []
        if self.count < expect.min_records:
            found.append(f"expected at least {expect.min_records} records, got {self.count}")
        if expect.max_records is not None and self.count > expect.max_records:
            found.append(f"expected at most {expect.max_records} records, got {self.count}")
        for name, missing in self._missing.items():
            found.append(
                f"{missing} records lack required field {name!r} "
                f"(the first is record {self._first_missing[name]})"
            )
        for name, duplicates in self._duplicates.items():
            if duplicates:
                shown = ", ".join(repr(v) for v in duplicates[:3])
                found.append(f"{len(duplicates)} duplicate values of {name!r} (e.g. {shown})")
        for sample, seen in zip(expect.samples, self._samples_found, strict=True):
            if not seen:
                found.append(f"no record matches the sample {dict(sample)!r}")
        if stats.failures > expect.max_failed_pages:
            reasons = ", ".join(f"{r}: {n}" for r, n in stats.failed.most_common())
            found.append(
                f"{stats.failures} pages failed ({reasons}); "
                f"expected at most {expect.max_failed_pages}"
            )
        empty = sum(stats.empty_pages.values())
        if empty > expect.max_empty_pages:
            kinds = "; ".join(
                f"page kind {kind!r}: {n}, e.g. {stats.empty_urls[kind][0]}"
                for kind, n in stats.empty_pages.most_common()
            )
            found.append(
                f"{empty} pages where the pattern matched nothing ({kinds}): "
                "has the markup changed?"
            )
        return found


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict, set)):
        return repr(value)
    return value
