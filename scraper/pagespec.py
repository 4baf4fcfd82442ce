"""One page kind of a spider: its pattern, fields, processors and follow rules.

``PageReader`` reads a page kind's YAML entries (``pattern``, ``flags``,
``fields``, ``clean``, ``format``, ``follow``, ``callback``), compiling every
regular expression once (``scraper.regexspec``) and checking that the names fit
together: fields that ``clean:`` (``scraper.cleanspec``) and ``format:`` use must
be produced by the pattern, and ``fields:`` must name exactly its groups. Follow
rules are read by ``scraper.followspec``. How matches become records is written
in ``scraper.extract``.

A JSON page kind (``items:``, ``from:``, ``fields:`` as a mapping of JSON paths,
or a ``follow: {path: ...}`` rule) takes its records from JSON instead: its
source and paths are read by ``scraper.jsonspec``. ``page_fields:`` and
``constants:`` add values stated once per page to every record of the kind;
``unique:`` is read and checked by ``scraper.uniquespec``. ``refresh: true`` has
``--incremental`` re-crawls fetch every page of the kind again (``scraper.incremental``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import regex
import yaml

from scraper.errors import Location
from scraper.fields import Processor
from scraper.followspec import FollowReader, FollowRule
from scraper.jsonspec import JsonSource
from scraper.uniquespec import UniqueReader
from scraper.yamlnodes import Entries, did_you_mean

WHOLE_MATCH_FIELD = "match"
PAGE_KEYS = (
    "pattern",
    "flags",
    "fields",
    "clean",
    "format",
    "follow",
    "callback",
    "from",
    "items",
    "page_fields",
    "refresh",
)
NAMED_PAGE_KEYS = (*PAGE_KEYS, "constants", "unique")
"""The keys of a page kind under ``pages:``; inline, ``constants`` and ``unique`` are the
spider's own."""


@dataclass(frozen=True)
class PageFields:
    """Values stated once per page: ``pattern``'s first match, its named groups cleaned."""

    pattern: regex.Pattern[str]
    names: tuple[str, ...]
    clean: Mapping[str, tuple[Processor, ...]] = field(default_factory=dict)
    raw_fields: frozenset[str] = frozenset()
    location: Location | None = None


@dataclass(frozen=True)
class PageSpec:
    """One kind of page: its pattern, field names, processors and follow rules."""

    name: str
    pattern: regex.Pattern[str] | None = None
    fields: tuple[str, ...] = ()
    group_index: tuple[int | str, ...] = ()
    clean: Mapping[str, tuple[Processor, ...]] = field(default_factory=dict)
    raw_fields: frozenset[str] = frozenset()
    formats: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    follow: tuple[FollowRule, ...] = ()
    callback: str | None = None
    location: Location | None = None
    """Where the pattern is written in the spider file."""
    hidden_fields: tuple[str, ...] = ()
    """Helper fields (``_name``): used by ``format:``, never written."""
    json: JsonSource | None = None
    """For a JSON page kind: where its records come from (``pattern`` is then ``None``)."""
    page_fields: PageFields | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    """Fields added to every record of this kind, over the spider's ``constants``."""
    unique: tuple[str, ...] | None = None
    """Fields whose values a record may not share with one written before (``unique:``);
    ``None``: the spider's ``unique``."""
    refresh: bool = False
    """Whether an ``--incremental`` re-crawl fetches the pages of this kind again (asking
    whether they changed), though they yielded records before: listings, pagers."""

    @property
    def makes_records(self) -> bool:
        """Whether the page kind extracts records itself (a pattern, or JSON), so that a
        page of it with none is worth a ``no match`` line."""
        return self.pattern is not None or self.json is not None


class PageReader(FollowReader, UniqueReader):
    """Reads page kinds: pattern, fields, ``format:``, ``page_fields:``, callback; the rest
    through the readers it is made of."""

    def page(self, name: str, entries: Entries, where: str) -> PageSpec:
        pattern = None
        if "pattern" in entries:
            flags = self.flags(entries, where)
            pattern = self.compile_pattern(entries["pattern"][1], f"{where}: pattern", flags)
        callback = None
        if "callback" in entries:
            callback = self.callback_name(entries["callback"][1], where)
        json_source = self.json_source(pattern, entries, where)
        needing = [key for key in ("fields", "clean", "format") if key in entries]
        if pattern is None and callback is None and json_source is None and needing:
            raise self.error(
                entries[needing[0]][0],
                f"{where} has '{needing[0]}:' but no 'pattern:' to capture its fields; "
                "add a pattern.",
            )
        if json_source is None:
            field_names, group_index = self.field_names(pattern, entries, where)
        else:
            field_names, group_index = list(json_source.fields), []
        formats: dict[str, tuple[str, tuple[str, ...]]] = {}
        if "format" in entries:
            for key, (_, node) in self.mapping(
                entries["format"][1], f"{where}: format", None
            ).items():
                template = self.text(node, f"{where}: format: {key}")
                names = self.template_names(node, template, f"{where}: format {key!r}", "fields")
                for used in names:
                    if used not in field_names:
                        raise self.error(
                            node,
                            f"{where}: format {key!r} uses {{{used}}}, which no group "
                            f"captures{did_you_mean(used, field_names)}.",
                        )
                formats[key] = (template, tuple(dict.fromkeys(names)))
        produced = tuple(field_names) + tuple(k for k in formats if k not in field_names)
        written = tuple(n for n in produced if not n.startswith("_"))
        clean: dict[str, tuple[Processor, ...]] = {}
        raw_fields: frozenset[str] = frozenset()
        if "clean" in entries:
            clean, raw_fields = self.clean(
                entries["clean"][1],
                where,
                produced,
                lambda key: (
                    f"{where}: clean names field {key!r}, which the pattern does not "
                    f"produce (it produces: {', '.join(produced) or 'nothing'})"
                    f"{did_you_mean(key, produced)}."
                ),
                every=written,  # helpers are not written, and clean runs after format
            )
        follow = tuple(
            self.follow_rule(item, f"{where}: follow", written)
            for item in (self.sequence(entries["follow"][1], "") if "follow" in entries else [])
        )
        page_fields = None
        if "page_fields" in entries:
            page_fields = self.page_fields(entries["page_fields"][1], f"{where}: page_fields")
        constants: dict[str, Any] = {}
        if "constants" in entries:
            constants = self.constants(entries["constants"][1], where)
        refresh = False
        if "refresh" in entries:
            refresh = self.typed(entries["refresh"][1], bool, f"{where}: refresh", "true or false")
        unique = None
        if "unique" in entries:
            unique, self.unique_nodes[name] = self.unique(entries["unique"][1], f"{where}: unique")
        return PageSpec(
            name=name,
            pattern=pattern,
            fields=tuple(field_names),
            group_index=tuple(group_index),
            clean=clean,
            raw_fields=frozenset(raw_fields),
            formats=formats,
            follow=follow,
            callback=callback,
            hidden_fields=tuple(n for n in produced if n.startswith("_")),
            location=(
                self.location(entries["pattern"][1].start_mark) if "pattern" in entries else None
            ),
            json=json_source,
            page_fields=page_fields,
            constants=constants,
            unique=unique,
            refresh=refresh,
        )

    def page_fields(self, node: yaml.Node, where: str) -> PageFields:
        parts = self.mapping(node, where, ("pattern", "flags", "clean"))
        if "pattern" not in parts:
            raise self.error(
                node,
                f"{where} needs 'pattern:', run once on the page, whose named groups "
                r"are the fields: {pattern: '<h2>(?P<year>\d{4})</h2>'}.",
            )
        pattern_node = parts["pattern"][1]
        pattern = self.compile_pattern(pattern_node, f"{where}: pattern", self.flags(parts, where))
        names = tuple(sorted(pattern.groupindex, key=lambda n: pattern.groupindex[n]))
        if not names:
            raise self.error(
                pattern_node,
                f"{where}: the pattern has no named group; name each value it adds to "
                "the records: (?P<name>...).",
            )
        clean: dict[str, tuple[Processor, ...]] = {}
        raw_fields: frozenset[str] = frozenset()
        if "clean" in parts:
            clean, raw_fields = self.clean(
                parts["clean"][1],
                where,
                names,
                lambda key: (
                    f"{where}: clean names {key!r}, which the pattern does not capture "
                    f"(it captures: {', '.join(names)}){did_you_mean(key, names)}."
                ),
            )
        location = self.location(pattern_node.start_mark)
        return PageFields(pattern, names, clean, raw_fields, location)

    def field_names(
        self,
        pattern: regex.Pattern[str] | None,
        entries: Entries,
        where: str,
    ) -> tuple[list[str], list[int | str]]:
        if pattern is None:
            return [], []
        named = sorted(pattern.groupindex.items(), key=lambda item: item[1])
        if "fields" in entries:
            node = entries["fields"][1]
            names = self.strings(node, f"{where}: fields")
            if named:
                raise self.error(
                    node,
                    f"{where}: the pattern has named groups "
                    f"({', '.join(n for n, _ in named)}), so 'fields:' is not needed; "
                    "remove it, or use only unnamed groups.",
                )
            expected = max(pattern.groups, 1)
            if len(names) != expected:
                groups = (
                    f"{pattern.groups} groups" if pattern.groups else "no groups (the whole match)"
                )
                raise self.error(
                    node,
                    f"{where}: fields names {len(names)} field(s) but the pattern has {groups}; "
                    f"give exactly {expected} name(s), one per group in order.",
                )
            duplicates = {n for n in names if names.count(n) > 1}
            if duplicates:
                raise self.error(node, f"{where}: fields names {sorted(duplicates)[0]!r} twice.")
            if pattern.groups == 0:
                return names, [0]
            return names, list(range(1, pattern.groups + 1))
        if named:
            return [n for n, _ in named], [n for n, _ in named]
        if pattern.groups == 0:
            return [WHOLE_MATCH_FIELD], [0]
        raise self.error(
            entries["pattern"][1],
            f"{where}: the pattern has {pattern.groups} unnamed group(s) but no 'fields:' "
            "list to name them; add fields: [name, ...] or use (?P<name>...) groups "
            "(write (?:...) for a group that should not capture).",
        )

    def callback_name(self, node: yaml.Node, where: str) -> str:
        name = self.text(node, f"{where}: callback")
        module, _, function = name.partition(":")
        if not (module and function and _is_dotted_name(module) and function.isidentifier()):
            raise self.error(
                node,
                f"{where}: callback {name!r} must be 'module:function', for example "
                "'spiders.maoyan:parse' for def parse(page) in spiders/maoyan.py.",
            )
        return name


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))
