"""Follow rules: the links a page kind leads to, and the page kind each goes to.

A rule takes its links from a pattern on the page, from a JSON ``path:`` of a
JSON page, or from a ``field:`` of each record. ``FollowReader`` reads the rules
of a page kind and remembers the page kinds they go to until every kind of the
spider is known. The rules are applied to a page when it is extracted
(``scraper.extract``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import regex
import yaml

from scraper.cleanspec import CleanReader
from scraper.errors import Location
from scraper.fields import Processor
from scraper.jsonpath import JsonPath
from scraper.jsonspec import JsonReader
from scraper.yamlnodes import Entries, did_you_mean

if TYPE_CHECKING:
    from scraper.pagespec import PageSpec

FOLLOW_KEYS = ("pattern", "path", "field", "to", "flags", "clean", "carry")


@dataclass(frozen=True)
class FollowRule:
    """Links to follow from a page: ``pattern`` captures the URL, ``to`` names the page kind.

    The URL is the group named ``url``, else the only group, else the whole match;
    other named groups are carried (stripped, then through the rule's ``clean``)
    into the records of the page followed to. Instead of a pattern, a rule may
    take its links from a JSON ``path`` of a JSON page, or from a ``field`` of
    each record (carrying the record's fields named in ``carry``).
    """

    pattern: regex.Pattern[str] | None
    to: str
    url_group: int | str
    carry: tuple[str, ...]
    clean: Mapping[str, tuple[Processor, ...]] = field(default_factory=dict)
    location: Location | None = None
    path: JsonPath | None = None
    record_field: str | None = None


class FollowReader(CleanReader, JsonReader):
    """Reads follow rules; remembers their targets until all kinds of a spider are known."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.follow_targets: list[tuple[str, yaml.Node]] = []
        """The page kind each rule read goes to (``to:``), checked once the spider is known."""

    def follow_rule(self, node: yaml.Node, where: str, fields: tuple[str, ...] = ()) -> FollowRule:
        """A follow rule; ``fields``: the fields the page kind writes, for 'field:' rules."""
        parts = self.mapping(node, f"{where} entry", FOLLOW_KEYS)
        sources = [key for key in parts if key in ("pattern", "path", "field")]
        if len(sources) != 1:
            raise self.error(
                parts[sources[1]][0] if sources else node,
                f"{where}: each rule takes its links from one of 'pattern:' (a regex on "
                "the page), 'path:' (a path in a JSON page) or 'field:' (a field of each "
                "record).",
            )
        if "to" not in parts:
            raise self.error(node, f"{where}: each rule needs 'to:'.")
        if sources[0] != "pattern":
            return self.value_rule(parts, sources[0], where, fields)
        if "carry" in parts:
            raise self.error(
                parts["carry"][0],
                f"{where}: a pattern rule carries its named groups; 'carry:' is for "
                "'field:' rules.",
            )
        flags = self.flags(parts, where)
        pattern = self.compile_pattern(parts["pattern"][1], f"{where}: pattern", flags)
        to = self.text(parts["to"][1], f"{where}: to")
        if "url" in pattern.groupindex:
            url_group: int | str = "url"
        elif pattern.groups == 1:
            url_group = 1
        elif pattern.groups == 0:
            url_group = 0
        else:
            raise self.error(
                parts["pattern"][1],
                f"{where}: the pattern has {pattern.groups} groups; name the one holding the "
                "link (?P<url>...).",
            )
        carry = tuple(name for name in pattern.groupindex if name != "url")
        clean: dict[str, tuple[Processor, ...]] = {}
        if "clean" in parts:
            clean = self.clean(
                parts["clean"][1],
                where,
                carry,
                lambda key: (
                    f"{where}: clean names {key!r}, which the follow pattern does not carry "
                    f"(it carries: {', '.join(carry) or 'nothing'}; name a group "
                    f"(?P<{key}>...) to carry it){did_you_mean(key, carry)}."
                ),
            )[0]
        self.follow_targets.append((to, parts["to"][1]))
        location = self.location(parts["pattern"][1].start_mark)
        return FollowRule(pattern, to, url_group, carry, clean, location)

    def value_rule(
        self, parts: Entries, source: str, where: str, fields: tuple[str, ...]
    ) -> FollowRule:
        """A follow rule by ``path:`` or ``field:``: links that are values, not matches."""
        for key in ("flags", "clean"):
            if key in parts:
                raise self.error(
                    parts[key][0], f"{where}: '{key}:' goes with 'pattern:' rules only."
                )
        node = parts[source][1]
        path, record_field = None, None
        carry: tuple[str, ...] = ()
        if source == "path":
            path = self.json_path(node, f"{where}: path")
            if "carry" in parts:
                raise self.error(
                    parts["carry"][0], f"{where}: 'carry:' goes with 'field:' rules only."
                )
        else:
            record_field = self.record_field(node, f"{where}: field", fields)
            if "carry" in parts:
                carry = tuple(
                    self.record_field(item, f"{where}: carry", fields)
                    for item in self.sequence(parts["carry"][1], f"{where}: carry")
                )
        to = self.text(parts["to"][1], f"{where}: to")
        self.follow_targets.append((to, parts["to"][1]))
        location = self.location(node.start_mark)
        return FollowRule(None, to, 0, carry, {}, location, path, record_field)

    def record_field(self, node: yaml.Node, what: str, fields: tuple[str, ...]) -> str:
        name = self.text(node, what)
        if name not in fields:
            raise self.error(
                node,
                f"{what}: {name!r} is not a field written by this page kind (its fields: "
                f"{', '.join(fields) or 'none'}){did_you_mean(name, fields)}.",
            )
        return name

    def check_follow_targets(self, pages: Mapping[str, PageSpec], where: str) -> None:
        for to, node in self.follow_targets:
            if to not in pages:
                raise self.error(node, unknown_page(to, pages, where))
        self.follow_targets.clear()


def unknown_page(page: str, pages: Mapping[str, PageSpec], where: str) -> str:
    return (
        f"{where}: there is no page kind {page!r} (pages: {', '.join(pages)})"
        f"{did_you_mean(page, pages)}."
    )
