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

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scraper.errors import ScraperError
from scraper.learnpage import Element, HtmlPage, Occurrence, TextNode, normalize
from scraper.learnwrap import Label, Record, Slot, induce

MAX_OCCURRENCES = 60
"""Places of the first field's value tried as the start of the example record."""

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


@dataclass
class _Anchor:
    """Where one field's value is, relative to the record's element."""

    field: str
    kind: str  # "attr" or "text"
    path: tuple[tuple[str, str, int], ...]
    attr: str = ""
    urljoined: bool = False
    text_index: int = 0
    end_path: tuple[tuple[str, str, int], ...] = ()
    end_text_index: int = 0
    pieces: int = 1
    prefix: str = ""  # the text before the value in its first text node
    suffix: str = ""  # and after it in its last


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
    chosen = _choose_record(parsed, places, examples)
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


def _path(container: Element, element: Element) -> tuple[tuple[str, str, int], ...]:
    steps: list[tuple[str, str, int]] = []
    node = element
    while node is not container and node.parent is not None:
        parent = node.parent
        same = [c for c in parent.children if c.tag == node.tag and c.cls == node.cls]
        steps.append((node.tag, node.cls, same.index(node)))
        node = parent
    return tuple(reversed(steps))


def _resolve(container: Element, path: tuple[tuple[str, str, int], ...]) -> Element | None:
    node = container
    for tag, cls, nth in path:
        same = [c for c in node.children if c.tag == tag and c.cls == cls]
        if nth >= len(same):
            return None
        node = same[nth]
    return node


def _anchor(page: HtmlPage, container: Element, name: str, place: Occurrence) -> _Anchor:
    if place.attr is not None:
        return _Anchor(name, "attr", _path(container, place.element), place.attr, place.urljoined)
    first, last = place.first, place.last
    assert first is not None and last is not None
    shown_first = page.shown[first.shown_start : first.shown_end]
    shown_last = page.shown[last.shown_start : last.shown_end]
    value_start = next(i for i, span in enumerate(page.shown_spans) if span[0] >= place.start)
    value_end = max(i for i, span in enumerate(page.shown_spans) if span[1] <= place.end) + 1
    prefix = shown_first[: value_start - first.shown_start].strip()
    suffix = shown_last[value_end - last.shown_start :].strip()
    return _Anchor(
        name,
        "text",
        _path(container, first.parent),
        text_index=first.parent.texts.index(first),
        end_path=_path(container, last.parent),
        end_text_index=last.parent.texts.index(last),
        pieces=last.index - first.index + 1,
        prefix=prefix,
        suffix=suffix,
        urljoined=False,
    )


def _label(page: HtmlPage, container: Element, anchor: _Anchor) -> Label | None:
    """The value at ``anchor`` in the record ``container``, or None where it has none."""
    element = _resolve(container, anchor.path)
    if element is None:
        return None
    if anchor.kind == "attr":
        attr = element.attrs.get(anchor.attr)
        if attr is None:
            return None
        value = page.attr_value(attr)
        if anchor.urljoined:
            from urllib.parse import urljoin

            value = urljoin(page.url, value)
        return Label(value, "attr", ((attr.start, attr.end),), page.text[attr.start : attr.end])
    if anchor.text_index >= len(element.texts):
        return None
    first = element.texts[anchor.text_index]
    end_element = _resolve(container, anchor.end_path)
    if end_element is None or anchor.end_text_index >= len(end_element.texts):
        return None
    last = end_element.texts[anchor.end_text_index]
    nodes = page.texts_between(first, last)
    if len(nodes) != anchor.pieces or not nodes:
        return None
    if anchor.pieces > 1:
        shown = normalize(page.shown[first.shown_start : last.shown_end])
        whole = _strip_labels(shown, anchor.prefix, anchor.suffix)
        if whole is None:
            return None
        spans = tuple((node.start, node.end) for node in nodes)
        raw = "".join(page.text[s:e] for s, e in spans)
        return Label(whole, "split", spans, raw, joins=_joins(page, nodes))
    return _label_text(page, first, anchor)


def _strip_labels(shown: str, prefix: str, suffix: str) -> str | None:
    if prefix and not shown.startswith(prefix):
        return None
    if suffix and not shown.endswith(suffix):
        return None
    return shown[len(prefix) : len(shown) - len(suffix)].strip()


def _joins(page: HtmlPage, nodes: list[TextNode]) -> tuple[str, ...]:
    """What stands between the pieces of a split value as a person reads it."""
    return tuple(
        " "
        if page.shown[a.shown_end : b.shown_start].strip() == "" and b.shown_start > a.shown_end
        else ""
        for a, b in itertools.pairwise(nodes)
    )


def _label_text(page: HtmlPage, node: TextNode, anchor: _Anchor) -> Label | None:
    shown = page.shown[node.shown_start : node.shown_end]
    lead = len(shown) - len(shown.lstrip())
    text = shown.strip()
    whole = _strip_labels(text, anchor.prefix, anchor.suffix)
    if whole is not None:
        start, end = len(anchor.prefix), len(text) - len(anchor.suffix)
    else:
        found = _after_label(text, anchor.prefix)
        if found is None:
            return None
        start = found
        stop = _before_label(text, anchor.suffix, start)
        if stop is None:
            return None
        end = stop
    value = text[start:end]
    start += len(value) - len(value.lstrip())
    value = value.strip()
    if not value:
        return None
    first = node.shown_start + lead + start
    span = (page.shown_spans[first][0], page.shown_spans[first + len(value) - 1][1])
    if whole is not None:
        raw = page.text[node.start : node.end]
        return Label(value, "whole", ((node.start, node.end),), raw, inner=span)
    return Label(value, "inner", (span,), page.text[span[0] : span[1]], inner=span)


def _after_label(text: str, prefix: str) -> int | None:
    if not prefix:
        return 0
    tail = prefix.split()[-1]
    where = text.find(tail)
    return None if where < 0 else where + len(tail)


def _before_label(text: str, suffix: str, start: int) -> int | None:
    if not suffix:
        return len(text)
    head = suffix.split()[0]
    where = text.find(head, start)
    return None if where < 0 else where


def _containers(page: HtmlPage, model: Element) -> list[Element]:
    """The elements of ``page`` in the place ``model`` has on its own page."""
    chain = [(e.tag, e.cls) for e in model.ancestors()[1:4]]
    return [
        element
        for element in page.elements
        if element.tag == model.tag and [(e.tag, e.cls) for e in element.ancestors()[1:4]] == chain
    ]


def _choose_record(
    pages: list[HtmlPage],
    places: dict[str, list[Occurrence]],
    examples: Sequence[Mapping[str, str]],
) -> tuple[list[_Anchor], list[Record], list[list[Label | None]], list[str]] | None:
    """The example record's places, element and the records labelled like it."""
    page = pages[0]
    names = list(places)
    best: tuple[tuple[int, ...], Element, dict[str, list[Occurrence]]] | None = None
    seen: set[int] = set()
    for start in places[names[0]][:MAX_OCCURRENCES]:
        for lowest in start.element.ancestors():
            inside = {
                name: [p for p in found if lowest.start <= p.start and p.end <= lowest.end]
                for name, found in places.items()
            }
            if all(inside.values()):
                break
        else:
            continue
        if id(lowest) in seen:
            continue
        seen.add(id(lowest))
        chosen = {name: min(found, key=_preference) for name, found in inside.items()}
        for level, container in enumerate(lowest.ancestors()[:-1][:8]):
            anchors = [_anchor(page, container, n, chosen[n]) for n in names]
            records, labels = _label_all(pages, container, anchors)
            if not records:
                continue
            on_first = sum(1 for r in records if r.page == 0)
            texts = sum(1 for p in chosen.values() if p.attr is None)
            score = (_examples_found(names, labels, examples), on_first, texts, -level)
            if best is None or score > best[0]:
                best = (score, container, inside)
    if best is None:
        return None
    _, container, inside = best
    anchors, notes = [], []
    for name in names:
        ranked = sorted(inside[name], key=_preference)
        options = [_anchor(page, container, name, place) for place in ranked]
        columns = [_label_all(pages, container, [option])[1] for option in options]
        values = [[row[0].value if row[0] else None for row in column] for column in columns]
        pick = max(
            range(len(options)),
            key=lambda i: (
                sum(v is not None for v in values[i]),
                sum(len(v or "") for v in values[i]),
                -i,
            ),
        )
        anchors.append(options[pick])
        if len(options) > 1:
            differ = sum(1 for column in values for other in values if column != other)
            how = "; they differ in some records" if differ else ""
            notes.append(
                f"{name}: the value is in {len(options)} places in the record{how}; the "
                f"pattern takes {_where(ranked[pick])}"
            )
    records, labels = _label_all(pages, container, anchors)
    return anchors, records, labels, notes


def _preference(place: Occurrence) -> tuple[bool, int]:
    """Text as a person reads it first, then page order."""
    return place.attr is not None, place.start


def _examples_found(
    names: list[str], labels: list[list[Label | None]], examples: Sequence[Mapping[str, str]]
) -> int:
    """How many of the further examples are among the labelled records."""
    return sum(
        1
        for other in examples[1:]
        if any(
            all(
                label is not None and label.value == normalize(other.get(n, ""))
                for n, label in zip(names, row, strict=True)
            )
            for row in labels
        )
    )


def _where(place: Occurrence) -> str:
    if place.attr is not None:
        return f"the {place.attr} attribute of <{place.element.tag}>"
    return f"the text of <{place.element.tag}>"


def _label_all(
    pages: list[HtmlPage], container: Element, anchors: list[_Anchor]
) -> tuple[list[Record], list[list[Label | None]]]:
    records: list[Record] = []
    labels: list[list[Label | None]] = []
    needed = max(1, (len(anchors) + 1) // 2)
    parent = container.parent
    for number, page in enumerate(pages):
        if number == 0 and parent is not None:
            candidates = [c for c in parent.children if c.tag == container.tag]
        else:
            candidates = _containers(page, container)
        for element in candidates:
            found = [_label(page, element, anchor) for anchor in anchors]
            if sum(label is not None for label in found) >= needed:
                records.append(Record(number, element.start, element.end))
                labels.append(found)
    if not any(r.page == 0 and r.start == container.start for r in records):
        return [], []
    return records, labels


def _slots(
    anchors: list[_Anchor], labels: list[list[Label | None]]
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
    anchors: list[_Anchor],
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


def proposal_json(proposal: Proposal, name: str, url: str) -> str:
    """The proposal as one JSON object, as ``scraper learn --json`` prints it."""
    return json.dumps(
        {
            "pattern": proposal.pattern,
            "flags": list(proposal.flags),
            "fields": list(proposal.fields),
            "clean": proposal.clean,
            "format": proposal.format,
            "counts": proposal.counts,
            "rows": proposal.rows,
            "warnings": proposal.warnings,
            "json_page": proposal.json_page,
            "spider": proposal.spider(name, url)
            if proposal.pattern is not None or proposal.json_page is not None
            else None,
        },
        ensure_ascii=False,
        indent=2,
    )
