r"""``scraper learn``: a pattern proposed from the values of one record.

Wrapper induction labelled by the page's own repetition (Kushmerick's LR
wrappers, with the records found as IEPAD and MDR find them):

1. every place each example value is on the page (``scraper.learnpage``): in
   the rendered text, even split by tags, or as a whole attribute;
2. the example record: the places whose smallest common element, lifted to the
   ancestor that repeats most often among its siblings with the values in it,
   labels the most records (text before attributes, then the tightest); of a
   value's places in the record, the one whose values vary from record to record;
3. the other records: each value's place, as a path of (tag, class, n-th) steps
   from the record's element and the n-th text node there, followed in every
   element of the same kind, on every page given; a value missing from some
   records becomes optional, and so does a field one of two examples leaves out
   (the example with every field gives the places) and, learnt from one page, the
   last field when it is free text in an element of its own (``_trailing_free_text``);
4. LR delimiters (``scraper.learnwrap``) learned over all labelled records.

Values in a JSON blob of the page get a JSON page kind (``scraper.learnjson``) and,
where it reads the same records, a pattern of ``"key"\s*:\s*"..."`` delimiters
with ``json_string`` in ``clean:``.

The result is checked as a spider would run it: the pattern is read by
``scraper.spec.parse_spiders`` and run by ``scraper.extract``, and any record it
does not give exactly as labelled is a warning, never a silent difference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scraper.errors import ScraperError
from scraper.learnpage import HtmlPage, normalize
from scraper.learnrecords import Anchor, choose_record
from scraper.learnwrap import Label, Slot, induce

if TYPE_CHECKING:
    from scraper.learnjson import JsonProposal

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
    from_json: bool = False
    """The values are in JSON on the page: ``json_page`` reads them, and ``pattern`` (with
    ``json_string`` in ``clean``) reads the same records from the JSON text."""

    def spider(self, name: str, url: str) -> dict[str, Any]:
        """A spider block ``spiders.yaml`` accepts as it is (``name`` is its key): the
        JSON page kind where the values are in JSON, else the pattern."""
        if self.json_page is not None and (self.pattern is None or self.from_json):
            return {"start": url, **self.json_page}
        return self.pattern_spider(url)

    def pattern_spider(self, url: str) -> dict[str, Any]:
        """A spider block reading the records with ``pattern``."""
        block: dict[str, Any] = {"start": url}
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
    json_found = _json_proposal(pages[0].text, examples)
    json_page = None if json_found is None else json_found.kind
    primary = next((e for e in examples if all(name in e for name in names)), None)
    if primary is None:
        return Proposal(
            None,
            json_page=json_page,
            warnings=[
                "no example gives every field; give them all in one example (a field "
                "another example leaves out is then optional)"
            ],
        )
    ordered = [primary, *(e for e in examples if e is not primary)]
    parsed = [HtmlPage(page.url, page.text) for page in pages]
    example = {name: normalize(value) for name, value in primary.items()}
    places = {name: parsed[0].find(value) for name, value in example.items()}
    missing = [name for name, found in places.items() if not found]
    if missing:
        if json_found is not None:
            from_json = _json_pattern(pages, json_found, names)
            if from_json is not None:
                return from_json
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
    chosen = choose_record(parsed, places, ordered)
    if chosen is None:
        return Proposal(
            None,
            json_page=json_page,
            warnings=["the values are on the page, but no element holds them all"],
        )
    anchors, records, labels, notes = chosen
    optional = {name for name in names if any(name not in e for e in examples)}
    guessed = _trailing_free_text(anchors, labels, optional) if len(pages) == 1 else set()
    slots, formats = _slots(anchors, labels, optional | guessed)
    wrapper = induce([p.text for p in parsed], records, slots, list(example.values()))
    if guessed and not (wrapper.pattern and wrapper.exact):
        # Optional, it lets in what is not a record: it marks a record, so it is required.
        slots, formats = _slots(anchors, labels, optional)
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


def _json_proposal(text: str, examples: Sequence[Mapping[str, str]]) -> JsonProposal | None:
    from scraper.learnjson import propose_json

    return propose_json(text, examples)


def _json_pattern(
    pages: Sequence[LearnPage], found: JsonProposal, names: list[str]
) -> Proposal | None:
    """The JSON page kind, with a pattern reading the same records from the JSON text."""
    from scraper.learncheck import run_block
    from scraper.learnjson import string_pattern

    block = string_pattern(pages[0].text, found)
    if block is None:
        return None
    extracted, problems = run_block(pages, block)
    return Proposal(
        block["pattern"],
        tuple(block["flags"]),
        tuple(names),
        block["clean"],
        {},
        [len(rows) for rows in extracted],
        extracted[0],
        problems,
        found.kind,
        from_json=True,
    )


def _trailing_free_text(
    anchors: list[Anchor], labels: list[list[Label | None]], optional: set[str]
) -> set[str]:
    """The field a record may lack although no record on the one page given does.

    One page where every record has a value says little about records elsewhere: a
    free-text value after a record's other fields in an element of its own (a film's
    one-line quote, a product's note, ``<span class="inq">``) is the kind a record leaves
    out, by leaving out its element. Made optional, a record without it gives null there
    instead of being lost; a record with it is matched as before, since the gap to it
    never runs into the next record. Other fields stay required: a rank, a title or a
    link before it marks a record, and a required field keeps what is not a record out.
    The field: the last in page order, a whole text node that is its element's only
    content, with no label around it, whose values have letters and differ; at least
    one other field is required."""
    complete = next((row for row in labels if all(label is not None for label in row)), None)
    if complete is None or len(anchors) < 2:
        return set()
    last = max(range(len(anchors)), key=lambda i: complete[i].spans[0][0])  # type: ignore[union-attr]
    anchor = anchors[last]
    column = [row[last] for row in labels]
    values = [label.value for label in column if label is not None]
    required = [a for a in anchors if a is not anchor and a.field not in optional]
    if (
        anchor.kind != "text"
        or not anchor.alone
        or anchor.prefix
        or anchor.suffix
        or anchor.pieces != 1
        or len(values) < len(column)
        or len(set(values)) < 2
        or not all(any(char.isalpha() for char in value) for value in values)
        or not required
    ):
        return set()
    return {anchor.field}


def _slots(
    anchors: list[Anchor], labels: list[list[Label | None]], optional: set[str]
) -> tuple[list[Slot], dict[str, str]]:
    """The groups of the pattern: one per field, one per piece of a split value; a field
    in ``optional`` may be missing from a record although none of the labelled ones lacks it."""
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
                slots.append(Slot(name, "whole", spans, anchor.field in optional))
            continue
        kind = "inner" if "inner" in kinds else kinds.pop()
        if kind == "inner":
            spans = [None if label is None else _inner_span(label) for label in column]
        else:
            spans = [None if label is None else label.spans[0] for label in column]
        slots.append(Slot(anchor.field, kind, spans, anchor.field in optional))
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
