"""A spider's ``expect:`` block, and checking a run against it, for ``scraper test``.

``ExpectationCheck`` is a record sink: the crawl writes into it as into a
JSON Lines file, and it keeps only what the checks need (counts, the values
of ``unique`` fields, which samples were seen), never the records themselves.

A sample value matches a record's value as the JSON output shows them: ``0.1``
(a number, as YAML reads it) is not ``"0.1"`` (text), nor ``true`` ``1``. For a
sample no record matches, the check keeps the closest record's values (the
first with the most fields of the sample) so the message can say which field
differed and how, types included.
"""

from __future__ import annotations

import json
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
        # per sample not found yet: (fields alike, record number, its values of the sample's fields)
        self._closest: list[tuple[int, int, dict[str, Any]]] = [(-1, 0, {})] * len(expect.samples)

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
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
                if self._samples_found[index]:
                    continue
                alike = sum(1 for k, v in sample.items() if _same(record.get(k), v))
                if alike == len(sample):
                    self._samples_found[index] = True
                elif alike > self._closest[index][0]:
                    values = {k: record[k] for k in sample if k in record}
                    self._closest[index] = (alike, self.count, values)
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
        for number, (sample, seen) in enumerate(
            zip(expect.samples, self._samples_found, strict=True), 1
        ):
            if not seen:
                found.append(self._sample_problem(number, sample))
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

    def _sample_problem(self, number: int, sample: Mapping[str, Any]) -> str:
        """Why sample ``number`` matched no record: what the closest record has instead."""
        head = f"no record matches sample {number} {_json(dict(sample))}"
        _, record_number, values = self._closest[number - 1]
        if not record_number:
            return f"{head}: there are no records"
        differences = []
        for name, wanted in sample.items():
            if name not in values:
                differences.append(f"no field {name!r}")
            elif not _same(values[name], wanted):
                have = values[name]
                if _kind(have) == _kind(wanted):
                    differences.append(f"{name} {_json(have)}, not {_json(wanted)}")
                else:
                    hint = (
                        ": quote it in the sample to expect text" if _kind(have) == "text" else ""
                    )
                    differences.append(
                        f"{name} {_json(have)} ({_kind(have)}), "
                        f"not {_json(wanted)} ({_kind(wanted)}{hint})"
                    )
        return f"{head}; the closest, record {record_number}, has {'; '.join(differences)}"


def _same(value: Any, wanted: Any) -> bool:
    """Whether two values are equal as JSON shows them: ``1`` is ``1.0`` but not
    ``true`` or ``"1"``."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(value, list) and isinstance(wanted, list):
        return len(value) == len(wanted) and all(map(_same, value, wanted))
    if isinstance(value, dict) and isinstance(wanted, dict):
        return value.keys() == wanted.keys() and all(_same(value[k], wanted[k]) for k in value)
    if isinstance(value, (list, dict)) or isinstance(wanted, (list, dict)):
        return False
    return bool(value == wanted)


def _kind(value: Any) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "a mapping"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict, set)):
        return repr(value)
    return value
