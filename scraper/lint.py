"""Warnings about patterns that can backtrack catastrophically.

A backtracking engine takes exponential time when a page almost matches a
pattern whose repeats can split the same text in many ways:

- nested unbounded repeats: ``(\\w+\\s?)+``, ``(a+)+``, ``(?:<li>.*?</li>)+``; not
  when every iteration starts with a character that nothing variable inside the
  group can match (``(?:\\.\\d+)+``, ``(?:,\\d+)*``): each such character then starts
  an iteration, and the text splits into iterations one way only;
- a repeated group whose alternatives can start alike: ``(a|aa)*``, ``(a|a?)+``;
- adjacent unbounded repeats that can match the same characters, with only
  optional items between: ``\\d+\\d*``, ``.*.*``, ``\\w+\\s*\\w+`` (``\\w+\\s+\\w+`` is
  fine: the ``\\s+`` must separate them).

The extraction time budget (``extract_timeout``) keeps such a pattern from
stalling a crawl; these warnings, shown by ``scraper check``, say which part
of which pattern to fix. The check reads the pattern's own text, so it can
show the part at fault as the user wrote it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import regex

from scraper.spec import SpiderSpec

SAMPLE_CHARACTERS = string.printable + "中文，。\u00a0é"


@dataclass
class _Item:
    """One atom of a pattern with its quantifier, and the span it covers in the source."""

    start: int
    end: int
    unbounded: bool = False
    optional: bool = False
    atom: str = ""  # the atom's source, for single-character atoms
    scope: str = ""  # the flags of a (?i:...) group, which its atoms match under
    atomic: bool = False  # (?>...): once matched, never tried another way
    children: list[list[_Item]] = field(default_factory=list)  # a group's alternatives


def pattern_warnings(spider: SpiderSpec) -> list[str]:
    """Warnings for every pattern of ``spider``, each naming where the pattern is."""
    found: list[str] = []
    for page in spider.pages.values():
        located = [(page.pattern, page.location, f"page {page.name!r}: pattern")]
        located += [
            (rule.pattern, rule.location, f"page {page.name!r}: follow to {rule.to!r}")
            for rule in page.follow
        ]
        if page.json is not None:
            located.append(
                (page.json.from_pattern, page.json.location, f"page {page.name!r}: from")
            )
        if page.page_fields is not None:
            located.append(
                (
                    page.page_fields.pattern,
                    page.page_fields.location,
                    f"page {page.name!r}: page_fields",
                )
            )
        for pattern, location, what in located:
            if pattern is None:
                continue
            for warning in backtracking_warnings(pattern.pattern, pattern.flags):
                where = f"{location}: " if location else ""
                found.append(f"{where}spider {spider.name!r}, {what}: {warning}")
    # only:/skip: run on every link, so a near miss there costs as much as on a page;
    # the settings keep no position of their own: the spider's is given.
    where = f"{spider.location}: " if spider.location else ""
    for key, filters in (("only", spider.settings.only), ("skip", spider.settings.skip)):
        for pattern in filters:
            for warning in backtracking_warnings(pattern.pattern, pattern.flags):
                found.append(f"{where}spider {spider.name!r}, {key} filter: {warning}")
    return found


def backtracking_warnings(pattern: str, flags: int = 0) -> list[str]:
    """Sentences naming each risky part of ``pattern``; empty when none is found."""
    try:
        alternatives = _Parser(pattern).parse()
    except (IndexError, ValueError):
        return []  # a syntax we do not follow: no opinion
    warnings: list[str] = []
    for sequence in alternatives:
        _check(sequence, pattern, flags, warnings)
    return warnings


def _check(sequence: list[_Item], source: str, flags: int, warnings: list[str]) -> None:
    for index, item in enumerate(sequence):
        if item.children:
            if (
                item.unbounded
                and not item.atomic
                and any(_has_unbounded(alt) for alt in item.children)
                and not _iterations_start_apart(item.children, flags)
            ):
                warnings.append(
                    f"nested unbounded repeats in '{source[item.start : item.end]}': "
                    "the inner and outer repeat can split the same text in exponentially "
                    "many ways. Repeat something that cannot match what surrounds it, "
                    "or bound the repeat ({1,20})."
                )
                continue
            if item.unbounded and not item.atomic and _alternatives_overlap(item.children, flags):
                warnings.append(
                    f"the repeated group '{source[item.start : item.end]}' has alternatives that "
                    "can match the same text, so a near miss is tried in exponentially many "
                    "ways. Make the alternatives start differently."
                )
                continue
            for alternative in item.children:
                _check(alternative, source, flags, warnings)
        if not item.unbounded or not item.atom:
            continue
        for later in sequence[index + 1 :]:
            if later.unbounded and later.atom and _overlap(item.atom, later.atom, flags):
                warnings.append(
                    f"adjacent unbounded repeats in '{source[item.start : later.end]}' can "
                    "match the same characters, so a near miss is tried in quadratic or "
                    "worse ways. Make one of them exclude what the other matches."
                )
                break
            if not later.optional:
                break


def _has_unbounded(sequence: list[_Item]) -> bool:
    """Whether a repeat in ``sequence`` can give back what it took: not one inside an
    atomic group, whose match is never split another way."""
    return any(
        item.unbounded or (not item.atomic and any(_has_unbounded(alt) for alt in item.children))
        for item in sequence
    )


def _iterations_start_apart(alternatives: list[list[_Item]], flags: int) -> bool:
    """Whether each iteration of a repeated group starts with one character that
    nothing optional or repeated inside the group can match: ``(?:\\.\\d+)+``."""
    firsts = []
    for alternative in alternatives:
        first = alternative[0] if alternative else None
        if first is None or first.optional or first.unbounded or not first.atom:
            return False
        firsts.append(first.atom)
    variable = [
        atom
        for alternative in alternatives
        for atom in _variable_atoms(alternative[1:], len(alternatives) > 1)
    ]
    return not any(_overlap(a, b, flags, unknown=True) for a in firsts for b in variable)


def _variable_atoms(sequence: list[_Item], variable: bool, scope: str = "") -> list[str]:
    """The atoms of ``sequence`` that may match or not, or more than once: the
    ones that can take a character another iteration could have started with."""
    atoms: list[str] = []
    for item in sequence:
        inner = variable or item.optional or item.unbounded
        if item.children:
            branching = len(item.children) > 1  # an alternative may skip what another takes
            for alternative in item.children:
                atoms += _variable_atoms(alternative, inner or branching, item.scope or scope)
        elif inner and item.atom:
            atoms.append(f"(?{scope}:{item.atom})" if scope else item.atom)
    return atoms


def _alternatives_overlap(alternatives: list[list[_Item]], flags: int) -> bool:
    if any(all(item.optional for item in alt) for alt in alternatives) and len(alternatives) > 1:
        return True  # one alternative can match nothing: every split is possible
    firsts = [alt[0].atom for alt in alternatives if alt and alt[0].atom]
    return any(_overlap(a, b, flags) for i, a in enumerate(firsts) for b in firsts[i + 1 :])


def _overlap(first: str, second: str, flags: int, unknown: bool = False) -> bool:
    """Whether one character can match both atoms; ``unknown`` when one of them
    cannot be compiled alone (a backreference)."""
    try:
        a = regex.compile(first, flags)
        b = regex.compile(second, flags)
    except regex.error:
        return unknown
    return any(a.fullmatch(c) and b.fullmatch(c) for c in SAMPLE_CHARACTERS)


class _Parser:
    """Splits a pattern into items with their spans; groups hold their alternatives."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.position = 0

    def parse(self) -> list[list[_Item]]:
        alternatives = self._alternatives()
        if self.position != len(self.source):
            raise ValueError("unbalanced )")
        return alternatives

    def _alternatives(self) -> list[list[_Item]]:
        alternatives: list[list[_Item]] = [[]]
        source = self.source
        while self.position < len(source) and source[self.position] != ")":
            if source[self.position] == "|":
                self.position += 1
                alternatives.append([])
                continue
            item = self._atom()
            self._quantifier(item)
            alternatives[-1].append(item)
        return alternatives

    def _atom(self) -> _Item:
        source, start = self.source, self.position
        char = source[start]
        if char == "(":
            self.position += 1
            atomic = source.startswith("?>", self.position)
            scope = self._skip_group_prefix() if source.startswith("?", self.position) else ""
            children = self._alternatives()
            if source[self.position] != ")":
                raise ValueError("unclosed (")
            self.position += 1
            return _Item(start, self.position, children=children, scope=scope, atomic=atomic)
        if char == "[":
            end = start + 1
            if source.startswith("^", end):
                end += 1
            if source.startswith("]", end):
                end += 1
            while source[end] != "]":
                end += 2 if source[end] == "\\" else 1
            self.position = end + 1
        elif char == "\\" and source.startswith("{", start + 2) and source[start + 1] in "pPNx":
            self.position = source.index("}", start) + 1  # \p{Han}, \N{...}, \x{...}: one atom
        elif char == "\\":
            self.position += 2
        else:
            self.position += 1
        atom = source[start : self.position]
        anchor = atom in ("^", "$") or atom in ("\\b", "\\B", "\\A", "\\Z", "\\z", "\\G")
        return _Item(start, self.position, atom="" if anchor else atom, optional=anchor)

    def _skip_group_prefix(self) -> str:
        """Moves past ``?...`` of a group; returns the flags of a ``(?i:...)`` group."""
        source = self.source
        self.position += 1  # the ?
        if source.startswith(("P<", "<"), self.position) and not source.startswith(
            ("<=", "<!"), self.position
        ):
            self.position = source.index(">", self.position) + 1
        elif source.startswith("P=", self.position):
            self.position = source.index(")", self.position)
        elif source[self.position] in ":=!>|":
            self.position += 1
        elif source.startswith(("<=", "<!"), self.position):
            self.position += 2
        else:  # inline flags: (?i) or (?i:...)
            flags_start = self.position
            while source[self.position] not in ":)":
                self.position += 1
            if source[self.position] == ":":
                self.position += 1
                return source[flags_start : self.position - 1]
        return ""

    def _quantifier(self, item: _Item) -> None:
        source = self.source
        if self.position >= len(source):
            return
        char = source[self.position]
        if char in "*+?":
            item.unbounded = char != "?"
            item.optional = char != "+"
            self.position += 1
        elif char == "{":
            end = source.find("}", self.position)
            body = source[self.position + 1 : end] if end > 0 else ""
            low, comma, high = body.partition(",")
            if end < 0 or (not low.strip().isdigit() and low.strip()):
                return  # a literal {
            item.unbounded = bool(comma) and not high.strip()
            item.optional = not low.strip() or int(low) == 0
            self.position = end + 1
        else:
            return
        if self.position < len(source) and source[self.position] in "?+":
            if source[self.position] == "+":
                item.unbounded = False  # possessive: never gives back, never backtracks
            self.position += 1
        item.end = self.position
