"""``scraper learn``: a pattern proposed from the values of one record.

Wrapper induction labelled by the page's own repetition (Kushmerick's LR
wrappers, with the records found as IEPAD and MDR find them):

1. every place each example value is on the page (``scraper.learnpage``): in
   the rendered text, even split by tags, or as a whole attribute;
2. the example record: the places whose smallest common element, lifted to the
   ancestor that repeats most often among its siblings with the values in it,
   labels the most records (text before attributes, then the tightest);
3. the other records: each value's place, as a path of (tag, class, n-th) steps
   from the record's element and the n-th text node there, followed in every
   element of the same kind, on every page given; a value missing from some
   records becomes optional;
4. LR delimiters (``scraper.learnwrap``) learned over all labelled records.

The result is checked as a spider would run it: the pattern is read by
``scraper.spec.parse_spiders`` and run by ``scraper.extract``, and any record it
does not give exactly as labelled is a warning, never a silent difference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scraper.errors import ScraperError
from scraper.learnpage import HtmlPage, normalize
from scraper.learnrecords import Anchor, choose_record
from scraper.learnwrap import Label, Slot, induce

_NUMBER = re.compile(r"[+-]?(?:0|[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d*)")
_DECIMAL = re.compile(r"[+-]?\d+\.\d+")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class LearnPage:
    """A decoded page: the labelled page first, then ``--also`` pages."""

    url: str
    text: str


@dataclass(frozen=True)
class Proposal:
    """What ``scraper learn`` proposes, and how it did on the pages given."""

    pattern: str | None
    flags: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    clean: dict[str, list[Any]] = field(default_factory=dict)
    format: dict[str, str] = field(default_factory=dict)
    counts: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    json_page: dict[str, Any] | None = None

    def spider(self, name: str, url: str) -> dict[str, Any]:
        """A spider block ``spiders.yaml`` accepts as it is (``name`` is its key)."""
        block: dict[str, Any] = {"start": url}
        if self.pattern is None and self.json_page is not None:
            block.update(self.json_page)
            return block
        block["pattern"] = self.pattern
        if self.flags:
            block["flags"] = list(self.flags)
        if self.format:
            block["format"] = dict(self.format)
        if self.clean:
            block["clean"] = {k: list(v) for k, v in self.clean.items()}
        return block


def learn(pages: Sequence[LearnPage], examples: Sequence[Mapping[str, str]]) -> Proposal:
    """Propose a pattern extracting every record like ``examples[0]`` from ``pages``.

    ``pages[0]`` holds the example record; further pages are unlabelled pages of the
    same kind. ``examples`` are records' values as a person reads them on the
    rendered page (entities decoded, whitespace collapsed); values of further
    records help choose among places and are checked to be extracted. The proposal's
    ``pattern`` is ``None`` when none could be learned; ``warnings`` say why, or
    where a proposed pattern is not exact.
    """
    if not pages or not examples:
        raise ScraperError("learning a pattern needs a page and the values of one record.")
    names = list(dict.fromkeys(name for example in examples for name in example))
    for name in names:
        if not _FIELD_NAME.fullmatch(name):
            raise ScraperError(
                f"{name!r} cannot name a field: use letters, digits and _, starting with a "
                "letter (a name starting with _ is a helper that is not written)."
            )
    json_page = _json_page(pages[0].text, examples)
    parsed = [HtmlPage(page.url, page.text) for page in pages]
    example = {name: normalize(value) for name, value in examples[0].items()}
    places = {name: parsed[0].find(value) for name, value in example.items()}
    missing = [name for name, found in places.items() if not found]
    if missing:
        where = "; a JSON page kind is proposed instead" if json_page else ""
        return Proposal(
            None,
            json_page=json_page,
            warnings=[
                f"{name}: {example[name]!r} is not on the page as text or as a whole "
                f"attribute value{where}"
                for name in missing
            ],
        )
    chosen = choose_record(parsed, places, examples)
    if chosen is None:
        return Proposal(
            None,
            json_page=json_page,
            warnings=["the values are on the page, but no element holds them all"],
        )
    anchors, records, labels, notes = chosen
    slots, formats = _slots(anchors, labels)
    wrapper = induce([p.text for p in parsed], records, slots, list(example.values()))
    warnings = notes + wrapper.warnings
    if wrapper.pattern is None:
        return Proposal(None, json_page=json_page, warnings=warnings)
    clean = _clean(anchors, labels, slots, formats)
    from scraper.learncheck import check_proposal

    counts, rows, problems = check_proposal(
        parsed, wrapper, clean, formats, records, labels, names, examples
    )
    return Proposal(
        wrapper.pattern,
        ("DOTALL",),
        tuple(names),
        clean,
        formats,
        counts,
        rows,
        warnings + problems,
        json_page,
    )


def _json_page(text: str, examples: Sequence[Mapping[str, str]]) -> dict[str, Any] | None:
    try:
        from scraper.learnjson import learn_json
    except ImportError:  # pragma: no cover - learnjson ships with learn
        return None
    return learn_json(text, examples)


def _slots(
    anchors: list[Anchor], labels: list[list[Label | None]]
) -> tuple[list[Slot], dict[str, str]]:
    """The groups of the pattern: one per field, one per piece of a split value."""
    slots: list[Slot] = []
    formats: dict[str, str] = {}
    for index, anchor in enumerate(anchors):
        column = [row[index] for row in labels]
        kinds = {label.kind for label in column if label is not None}
        if "split" in kinds:
            pieces = next(label for label in column if label is not None)
            names = [f"_{anchor.field}_{n + 1}" for n in range(len(pieces.spans))]
            joins = [*pieces.joins, ""]
            formats[anchor.field] = "".join(
                f"{{{name}}}{join}" for name, join in zip(names, joins, strict=True)
            )
            for n, name in enumerate(names):
                spans = [None if label is None else label.spans[n] for label in column]
                slots.append(Slot(name, "whole", spans))
            continue
        kind = "inner" if "inner" in kinds else kinds.pop()
        if kind == "inner":
            spans = [None if label is None else _inner_span(label) for label in column]
        else:
            spans = [None if label is None else label.spans[0] for label in column]
        slots.append(Slot(anchor.field, kind, spans))
    return slots, formats


def _inner_span(label: Label) -> tuple[int, int]:
    return label.inner or label.spans[0]


def _clean(
    anchors: list[Anchor],
    labels: list[list[Label | None]],
    slots: list[Slot],
    formats: dict[str, str],
) -> dict[str, list[Any]]:
    """Processors that turn what the groups capture into the values a person reads."""
    clean: dict[str, list[Any]] = {}
    inner = {slot.name for slot in slots if slot.kind == "inner"}
    for index, anchor in enumerate(anchors):
        present = [row[index] for row in labels if row[index] is not None]
        steps: list[Any] = []
        raws = [label.raw for label in present if label is not None]
        if anchor.urljoined:
            steps.append("urljoin")
        elif any(re.search(r"\S\s{2,}\S|[\n\t\r]|<", raw.strip()) for raw in raws) or (
            anchor.field in formats and any("&" in raw for raw in raws)
        ):
            steps.append("text")
        elif any(re.search(r"&#?\w+;", raw) for raw in raws):
            steps.append("unescape")
        if anchor.kind == "text" and anchor.field not in inner:
            if anchor.prefix:
                steps.append({"sub": [f"^{re.escape(anchor.prefix)}\\s*", ""]})
            if anchor.suffix:
                steps.append({"sub": [f"\\s*{re.escape(anchor.suffix)}$", ""]})
        values = [label.value for label in present if label is not None]
        if values and all(_NUMBER.fullmatch(v) for v in values):
            steps.append("int")
        elif values and all(_NUMBER.fullmatch(v) or _DECIMAL.fullmatch(v) for v in values):
            steps.append("float")
        if steps:
            clean[anchor.field] = steps
    return clean


def examples_from(options: Sequence[str], option: str) -> dict[str, str]:
    """One record's values from ``FIELD=VALUE`` options, in the order given."""
    example: dict[str, str] = {}
    for text in options:
        name, equals, value = text.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ScraperError(f"{option} {text!r} is not FIELD=VALUE, e.g. {option} title=Up.")
        if name in example:
            raise ScraperError(f"{option} gives {name!r} twice; give each field once.")
        if not normalize(value):
            raise ScraperError(f"{option} {text!r} has no value; give the value the page shows.")
        example[name] = value
    return example
