"""LR delimiters learned over labelled records: the pattern ``scraper learn`` proposes.

Given where each value is in every labelled record, the pattern is::

    START (?>GAP L1 (?P<f1>V1) R1) (?>(?:GAP L2 (?P<f2>V2) R2)?) ...

``START`` begins every record (``<dd\\b``, or more of the record's opening tag
when that much is needed never to occur inside a record); ``GAP`` is
``(?:[^<]++|<(?!dd\\b))*?``, so no field is ever taken from the next record, and a
record lacking an optional field (the ``?`` group) leaves it ``null`` instead of
stealing the next record's. Each field's group is atomic: its first place after
the previous field is the only one tried, which keeps the match linear on a near
miss, and is what an LR wrapper means.

Each ``L`` is the shortest end of what all records share before the value
(other attribute values generalised to either quoted string, numbers to ``\\d+``,
whitespace to ``\\s*+``), but never less than the whole tag before it, so that
the pattern extracts exactly the labelled records; ``R`` likewise at the start
of what follows. ``V`` is ``[^<]*`` for a whole text node, a quoted string for
an attribute, ``[^<]*?`` for a value inside a text node. A pattern is refused
when ``scraper check`` would warn about it, or when it takes longer than
``NEAR_MISS_SECONDS`` on pages made to almost match (closing tags removed, the
page repeated 20 times), the best of ``NEAR_MISS_RUNS`` runs, so that a busy
machine does not make a good pattern look slow.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field

import regex

from scraper.lint import backtracking_warnings

NEAR_MISS_SECONDS = 0.05
NEAR_MISS_RUNS = 3
"""A near-miss page's time is the best of this many runs (as ``bench/learn.py`` times it)."""
MAX_DELIMITER_TOKENS = 40
_RIGHT_LENGTHS = (0, 1, 2, 4, 8)
_CONTEXT = regex.compile(
    r"(?P<ws>\s+)|(?P<num>\d+)|(?P<q>\"[^\"<>]*\"|'[^'<>]*')|(?P<word>[^\W\d_]+)|(?P<other>.)",
    regex.S,
)
_QUOTED = "(?:\"[^\"]*\"|'[^']*')"
_WHITESPACE = r"\s*+"
_clock = time.perf_counter


@dataclass(frozen=True)
class Label:
    """A value of one record: as read, how it is found, its span(s) in the page."""

    value: str
    kind: str  # "attr", "whole" (a text node), "inner" (part of one), "split" (several)
    spans: tuple[tuple[int, int], ...]
    raw: str
    joins: tuple[str, ...] = ()  # between the pieces of a split value, as shown
    inner: tuple[int, int] | None = None  # the value itself within a whole text node
    loose: bool = False  # found after a word of the example's label, not after all of it


@dataclass(frozen=True)
class Record:
    """A labelled record: its page (index) and its element's span there."""

    page: int
    start: int
    end: int


@dataclass
class Slot:
    """One group of the pattern and what it must capture in each record."""

    name: str
    kind: str  # "attr", "whole" or "inner"
    spans: list[tuple[int, int] | None]
    may_lack: bool = False  # optional even if every labelled record has the value

    @property
    def optional(self) -> bool:
        """Whether some record lacks the value, or a record may lack it."""
        return self.may_lack or any(span is None for span in self.spans)

    def outer(self, record: int) -> tuple[int, int] | None:
        """The span the delimiters surround: an attribute's with its quotes."""
        span = self.spans[record]
        if span is None or self.kind != "attr":
            return span
        return span[0] - 1, span[1] + 1

    def value_pattern(self) -> str:
        """The group capturing the value."""
        name = self.name
        if self.kind == "attr":
            return f"(?:\"(?P<{name}>[^\"]*)\"|'(?P<{name}>[^']*)')"
        if self.kind == "whole":
            return f"(?P<{name}>[^<]*)"
        return f"(?P<{name}>[^<]*?)"


@dataclass
class Wrapper:
    """The learned pattern (``None`` when none could be), and what to warn about."""

    pattern: str | None
    warnings: list[str] = field(default_factory=list)
    exact: bool = False  # it matches exactly the labelled records, each as labelled


def induce(
    texts: list[str], records: list[Record], slots: list[Slot], values: list[str]
) -> Wrapper:
    """Learn the pattern extracting ``slots`` from ``records`` of the pages ``texts``."""
    warnings: list[str] = []
    order = sorted(range(len(slots)), key=lambda i: _first_span(slots[i]))
    slots = [slots[i] for i in order]
    keep = [i for i in range(len(records)) if _in_order(slots, i)]
    if len(keep) < len(records):
        warnings.append(
            f"{len(records) - len(keep)} records have their values in another order: "
            "the pattern cannot take them"
        )
        records = [records[i] for i in keep]
        for slot in slots:
            slot.spans = [slot.spans[i] for i in keep]
    start = _record_start(texts, records, slots)
    if start is None:
        return Wrapper(None, [*warnings, "nothing in the records' opening tags starts them all"])
    lefts = [_left_pieces(texts, records, slots, k, values) for k in range(len(slots))]
    rights = [_right_pieces(texts, records, slots, k, values) for k in range(len(slots))]
    chosen: list[tuple[str, str]] = []
    for k, slot in enumerate(slots):
        pair = _delimiters(texts, records, slots, k, start, chosen, lefts[k], rights[k], values)
        if pair is None:
            warnings.append(
                f"{slot.name.lstrip('_')}: no delimiters take it exactly from every record; "
                "the most specific ones are used"
            )
            pair = ("".join(lefts[k]), "".join(rights[k][:1]))
        chosen.append(pair)
    pattern = _assemble(start, slots, chosen)
    exact = _exact(texts, records, slots, pattern)
    if not exact:
        longest = [("".join(lefts[k]), chosen[k][1]) for k in range(len(slots))]
        specific = _assemble(start, slots, longest)
        literal = any(_has_value(before, values) for before, _ in longest)
        if not literal and _exact(texts, records, slots, specific):
            pattern, exact = specific, True
    risky = backtracking_warnings(pattern, regex.DOTALL)
    if risky:
        return Wrapper(None, [*warnings, f"the pattern would be warned about: {risky[0]}"])
    slow = near_miss_seconds(pattern, texts)
    if slow > NEAR_MISS_SECONDS:
        return Wrapper(
            None,
            [*warnings, f"the pattern takes {slow * 1000:.0f} ms on a near-miss page; refused"],
        )
    return Wrapper(pattern, warnings, exact)


def _first_span(slot: Slot) -> int:
    return next((span[0] for span in slot.spans if span is not None), 0)


def _in_order(slots: list[Slot], record: int) -> bool:
    ends = [s.spans[record] for s in slots if s.spans[record] is not None]
    return all(a[1] <= b[0] for a, b in itertools.pairwise(ends))  # type: ignore[index]


def _last_end(slots: list[Slot], record: int, before: int) -> int | None:
    for slot in reversed(slots[:before]):
        outer = slot.outer(record)
        if outer is not None:
            return outer[1]
    return None


def _record_start(texts: list[str], records: list[Record], slots: list[Slot]) -> str | None:
    """A regex that matches where every record starts and nowhere inside one."""
    tags = [regex.match(r"<([A-Za-z][\w:-]*)", texts[r.page][r.start :]) for r in records]
    if not tags or any(t is None for t in tags):
        return None
    opening = [texts[r.page][r.start : texts[r.page].find(">", r.start) + 1] for r in records]
    common = opening[0]
    for other in opening[1:]:
        while not other.startswith(common):
            common = common[:-1]
    name = tags[0].group(1)  # type: ignore[union-attr]
    candidates = [f"<{re.escape(name)}\\b"]
    for cut in (common.find(" ", len(name) + 2), len(common)):
        if cut > len(name) + 1 and "<" not in common[1:cut]:
            candidates.append(re.escape(common[:cut]))
    for candidate in candidates:
        compiled = regex.compile(candidate)
        inside = False
        for i, record in enumerate(records):
            end = _last_end(slots, i, len(slots)) or record.end
            if compiled.search(texts[record.page], record.start + 1, end):
                inside = True
                break
        if not inside:
            return candidate
    return None


def _tokens(text: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "other", m.group()) for m in _CONTEXT.finditer(text)]


def _general(column: list[tuple[str, str]], values: list[str]) -> str | None:
    """One regex piece for tokens in the same place in every record, or None.

    A token the same in every record is written literally, unless it is an example's
    value (``width="100"`` in every record, and the example's rank is 100): a number or
    a quoted string is then generalised, anything else ends the delimiter."""
    kinds = {kind for kind, _ in column}
    if kinds == {"ws"}:
        return _WHITESPACE
    texts = {text for _, text in column}
    if len(texts) == 1 and not ({column[0][1], column[0][1].strip("\"'")} & set(values)):
        return re.escape(column[0][1])
    if kinds == {"num"}:
        return r"\d+"
    if kinds == {"q"}:
        return _QUOTED
    return None


def _left_pieces(
    texts: list[str], records: list[Record], slots: list[Slot], k: int, values: list[str]
) -> list[str]:
    contexts = []
    for i, record in enumerate(records):
        outer = slots[k].outer(i)
        if outer is None:
            continue
        begin = _last_end(slots, i, k) or record.start
        contexts.append(_tokens(texts[record.page][begin : outer[0]])[::-1])
    return _shared_pieces(contexts, values)[::-1]


def _right_pieces(
    texts: list[str], records: list[Record], slots: list[Slot], k: int, values: list[str]
) -> list[str]:
    contexts = []
    for i, record in enumerate(records):
        outer = slots[k].outer(i)
        if outer is None:
            continue
        later = [s.outer(i) for s in slots[k + 1 :] if s.outer(i) is not None]
        end = later[0][0] if later else record.end  # type: ignore[index]
        contexts.append(_tokens(texts[record.page][outer[1] : max(end, outer[1])]))
    return _shared_pieces(contexts, values)


def _shared_pieces(contexts: list[list[tuple[str, str]]], values: list[str]) -> list[str]:
    """The regex pieces for the leading tokens every context shares (see ``_general``),
    at most MAX_DELIMITER_TOKENS; ``_left_pieces`` passes its contexts reversed."""
    pieces: list[str] = []
    for depth in range(MAX_DELIMITER_TOKENS):
        if any(len(c) <= depth for c in contexts):
            break
        piece = _general([c[depth] for c in contexts], values)
        if piece is None:
            break
        pieces.append(piece)
    return pieces


def _delimiters(
    texts: list[str],
    records: list[Record],
    slots: list[Slot],
    k: int,
    start: str,
    chosen: list[tuple[str, str]],
    left: list[str],
    right: list[str],
    values: list[str],
) -> tuple[str, str] | None:
    """The shortest (L, R) for slot ``k`` with which every record is taken exactly."""
    tag = max((i for i, piece in enumerate(left) if piece.startswith("<")), default=None)
    least = len(left) - tag if tag is not None else 1
    lengths = [n for n in _RIGHT_LENGTHS if n <= len(right)]
    if slots[k].kind == "inner":
        lengths = [n for n in lengths if n > 0] or [len(right)]
    for size in range(max(least, 1), len(left) + 1):
        before = "".join(left[len(left) - size :])
        if _has_value(before, values):
            continue
        for length in lengths:
            after = "".join(right[:length])
            if _has_value(after, values):
                continue
            pattern = _assemble(start, slots[: k + 1], [*chosen, (before, after)])
            if _takes_records(texts, records, slots[: k + 1], pattern):
                return before, after
    return None


def _assemble(start: str, slots: list[Slot], delimiters: list[tuple[str, str]]) -> str:
    # Runs without "<" are taken whole when the delimiter starts with a tag: ten times
    # faster than a character at a time, and they cannot hold the start of a record.
    parts = [start]
    for slot, (before, after) in zip(slots, delimiters, strict=True):
        gap = _gap(start, before)
        body = f"{gap}{before}{slot.value_pattern()}{after}"
        parts.append(f"(?>(?:{body})?)" if slot.optional else f"(?>{body})")
    return "".join(parts)


def _gap(start: str, before: str) -> str:
    """What may lie between two fields of a record: anything but the start of the next.

    Runs of characters that cannot begin the delimiter after the gap are taken whole
    (possessively), ten times faster than a character at a time; they cannot hold the
    start of a record, which begins with "<"."""
    first = before[:1]
    if first == "\\":  # an escaped character stands for itself; \d, \s for a class
        first = before[1:2] if not before[1:2].isalnum() else ""
    stop = start[1:]
    if first == "<":
        return f"(?:[^<]++|<(?!{stop}))*?"
    if first and not first.isspace() and (first.isalnum() or first in "\"'=:;&>/#@%!,"):
        return f"(?:[^<{first}]++|<(?!{stop})|{re.escape(first)})*?"
    return f"(?:[^<]|<(?!{stop}))*?"


def _spans(match: regex.Match[str], slots: list[Slot]) -> tuple[tuple[int, int] | None, ...]:
    return tuple(None if match.span(s.name) == (-1, -1) else match.span(s.name) for s in slots)


def _takes_records(
    texts: list[str], records: list[Record], slots: list[Slot], pattern: str
) -> bool:
    compiled = regex.compile(pattern, regex.DOTALL)
    for i, record in enumerate(records):
        try:
            match = compiled.match(texts[record.page], record.start, timeout=0.5)
        except TimeoutError:
            return False
        if match is None or _spans(match, slots) != tuple(s.spans[i] for s in slots):
            return False
    return True


def _exact(texts: list[str], records: list[Record], slots: list[Slot], pattern: str) -> bool:
    """Whether the pattern matches exactly the records, each taken as labelled."""
    compiled = regex.compile(pattern, regex.DOTALL)
    for page, text in enumerate(texts):
        expected = [
            tuple(s.spans[i] for s in slots) for i, r in enumerate(records) if r.page == page
        ]
        try:
            found = [_spans(m, slots) for m in compiled.finditer(text, timeout=1.0)]
        except TimeoutError:
            return False
        if found != expected:
            return False
    return True


def _has_value(fragment: str, values: list[str]) -> bool:
    """Whether an example value stands literally in ``fragment`` (a "1" inside "h1" does
    not: it is part of a longer word)."""
    for value in values:
        for candidate in {value, re.escape(value)}:
            where = fragment.find(candidate)
            while candidate and where >= 0:
                before = fragment[where - 1] if where else " "
                end = where + len(candidate)
                after = fragment[end] if end < len(fragment) else " "
                if not (before.isalnum() and before.isascii()) and not (
                    after.isalnum() and after.isascii()
                ):
                    return True
                where = fragment.find(candidate, where + 1)
    return False


def near_miss_pages(text: str) -> list[str]:
    """Pages that almost match: closing tags removed, the page repeated 20 times."""
    unclosed = regex.sub(r"</[^>]*>", "", text)
    return [unclosed, text * 20, unclosed * 5]


def near_miss_seconds(pattern: str, texts: list[str]) -> float:
    """The pattern's time on the slowest near-miss page of ``texts`` (the first three).

    Each page's time is the best of ``NEAR_MISS_RUNS`` runs, stopping at the first under
    ``NEAR_MISS_SECONDS``: a run slowed by a busy machine is noise, not a slow pattern,
    while a pattern that backtracks is slow every time. A run past a second counts as a
    second, and ends the timing."""
    compiled = regex.compile(pattern, regex.DOTALL)
    slowest = 0.0
    for text in texts[:3]:
        for page in near_miss_pages(text):
            best = 1.0
            for _run in range(NEAR_MISS_RUNS):
                started = _clock()
                try:
                    for _ in compiled.finditer(page, timeout=1.0):
                        pass
                except TimeoutError:
                    return 1.0
                best = min(best, _clock() - started)
                if best <= NEAR_MISS_SECONDS:
                    break
            slowest = max(slowest, best)
    return slowest
