"""The example record on the page, and the other records labelled like it.

Steps 2 and 3 of ``scraper learn`` (see ``scraper.learn``): of the places each
example value is found, the ones whose smallest common element, lifted to the
ancestor repeated most often among its siblings, labels the most records (with
further examples found among them first, text before attributes); then each
value's place, a path of (tag, first class, n-th of those) steps from the
record's element and the n-th text node there, is followed in every element of
the same kind, on every page given. A label in the example's text node (``主演：``)
is expected in the others; a value in the middle of a text node ends where the
example's next word begins.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

from scraper.learnpage import Element, HtmlPage, Occurrence, TextNode, normalize
from scraper.learnwrap import Label, Record

MAX_OCCURRENCES = 60
"""Places of the first field's value tried as the start of the example record."""

Path = tuple[tuple[str, str, int], ...]
"""From a record's element to a value's: (tag, first class, n-th such child) steps."""


@dataclass
class Anchor:
    """Where one field's value is, relative to the record's element."""

    field: str
    kind: str  # "attr" or "text"
    path: Path
    attr: str = ""
    urljoined: bool = False
    text_index: int = 0
    end_path: Path = ()
    end_text_index: int = 0
    pieces: int = 1
    prefix: str = ""  # the text before the value in its first text node
    suffix: str = ""  # and after it in its last
    alone: bool = False  # the value is the only text of an element with no child elements


def _path(container: Element, element: Element) -> Path:
    steps: list[tuple[str, str, int]] = []
    node = element
    while node is not container and node.parent is not None:
        parent = node.parent
        same = [c for c in parent.children if c.tag == node.tag and c.cls == node.cls]
        steps.append((node.tag, node.cls, same.index(node)))
        node = parent
    return tuple(reversed(steps))


def _resolve(container: Element, path: Path) -> Element | None:
    node = container
    for tag, cls, nth in path:
        same = [c for c in node.children if c.tag == tag and c.cls == cls]
        if nth >= len(same):
            return None
        node = same[nth]
    return node


def _anchor(page: HtmlPage, container: Element, name: str, place: Occurrence) -> Anchor:
    if place.attr is not None:
        return Anchor(name, "attr", _path(container, place.element), place.attr, place.urljoined)
    first, last = place.first, place.last
    assert first is not None and last is not None
    shown_first = page.shown[first.shown_start : first.shown_end]
    shown_last = page.shown[last.shown_start : last.shown_end]
    value_start = next(i for i, span in enumerate(page.shown_spans) if span[0] >= place.start)
    value_end = max(i for i, span in enumerate(page.shown_spans) if span[1] <= place.end) + 1
    prefix = shown_first[: value_start - first.shown_start].strip()
    suffix = shown_last[value_end - last.shown_start :].strip()
    return Anchor(
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
        alone=first is last and first.parent.texts == [first] and not first.parent.children,
    )


def _label(page: HtmlPage, container: Element, anchor: Anchor) -> Label | None:
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


def _label_text(page: HtmlPage, node: TextNode, anchor: Anchor) -> Label | None:
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
    raw = page.text[span[0] : span[1]]
    loose = not text.startswith(anchor.prefix)
    return Label(value, "inner", (span,), raw, inner=span, loose=loose)


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


def choose_record(
    pages: list[HtmlPage],
    places: dict[str, list[Occurrence]],
    examples: Sequence[Mapping[str, str]],
) -> tuple[list[Anchor], list[Record], list[list[Label | None]], list[str]] | None:
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
        scores = [_place_score(column, i) for i, column in enumerate(columns)]
        pick = max(range(len(options)), key=lambda i: scores[i])
        anchors.append(options[pick])
        others = [i for i in range(len(options)) if i != pick]
        if others and not (scores[pick][1] and not any(scores[i][1] for i in others)):
            differ = sum(1 for column in values for other in values if column != other)
            how = "; they differ in some records" if differ else ""
            notes.append(
                f"{name}: the value is in {len(options)} places in the record{how}; the "
                f"pattern takes {_where(ranked[pick])}"
            )
    records, labels = _label_all(pages, container, anchors)
    return anchors, records, labels, notes


def _place_score(column: list[list[Label | None]], rank: int) -> tuple[int, bool, int, int, int]:
    """How well one place of a value labels the records, the best place the highest.

    Found in the most records; then a place whose values vary from record to record
    (a poster's ``width="100"`` is the same in every record, the rank "100" of the
    100th film is not); then found after the example's whole label (``/ 塞尔玛与路易丝 /``
    is one film's, not a label); then the longest values (a full title rather than a
    truncated one); then text before attributes, in page order."""
    found = [row[0] for row in column if row[0] is not None]
    varies = len({label.value for label in found}) > 1
    exact = sum(1 for label in found if not label.loose)
    return len(found), varies, exact, sum(len(label.value) for label in found), -rank


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
                label is not None and label.value == normalize(other[n])
                for n, label in zip(names, row, strict=True)
                if n in other
            )
            for row in labels
        )
    )


def _where(place: Occurrence) -> str:
    if place.attr is not None:
        return f"the {place.attr} attribute of <{place.element.tag}>"
    return f"the text of <{place.element.tag}>"


def _label_all(
    pages: list[HtmlPage], container: Element, anchors: list[Anchor]
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
