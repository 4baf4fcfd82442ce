"""One page kind of a spider: its pattern, fields, processors and follow rules.

``PageReader`` reads a page kind's YAML entries (``pattern``, ``flags``,
``fields``, ``clean``, ``format``, ``follow``, ``callback``), compiling every
regular expression once and checking that the names fit together: fields that
``clean:`` and ``format:`` use must be produced by the pattern, and ``fields:``
must name exactly its groups. How matches become records is written in
``scraper.extract``.

A JSON page kind (``items:``, ``from:``, ``fields:`` as a mapping of JSON paths,
or a ``follow: {path: ...}`` rule) takes its records from JSON instead: its
paths are compiled here too (``scraper.jsonpath``). ``page_fields:`` and
``constants:`` add values stated once per page to every record of the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex
import yaml

from scraper.errors import Location, SpecError
from scraper.fields import PROCESSORS, Processor, ProcessorArgumentError, chain
from scraper.jsonpath import JsonPath, JsonPathError, compile_path
from scraper.yamlnodes import Entries, NodeReader, did_you_mean

FLAGS = {
    "DOTALL": regex.DOTALL,
    "IGNORECASE": regex.IGNORECASE,
    "MULTILINE": regex.MULTILINE,
    "VERBOSE": regex.VERBOSE,
    "ASCII": regex.ASCII,
}
FLAG_ALIASES = {"S": "DOTALL", "I": "IGNORECASE", "M": "MULTILINE", "X": "VERBOSE", "A": "ASCII"}
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
)
NAMED_PAGE_KEYS = (*PAGE_KEYS, "constants", "unique")
"""The keys of a page kind under ``pages:``; inline, ``constants`` and ``unique`` are the
spider's own."""
FOLLOW_KEYS = ("pattern", "path", "field", "to", "flags", "clean", "carry")
JSON_GROUP = "json"
"""The group of a ``from:`` pattern holding the JSON, when it has several."""


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


@dataclass(frozen=True)
class JsonSource:
    """Where a JSON page kind's records come from.

    The document is the page body, or each match of ``from_pattern`` (its group
    ``from_group``); ``items`` leads to the list of records in it (an object or
    other value there is one record); ``fields`` are paths inside one item.
    """

    items: JsonPath
    fields: Mapping[str, JsonPath]
    from_pattern: regex.Pattern[str] | None = None
    from_group: int | str = 0
    location: Location | None = None


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

    @property
    def makes_records(self) -> bool:
        """Whether the page kind extracts records itself (a pattern, or JSON), so that a
        page of it with none is worth a ``no match`` line."""
        return self.pattern is not None or self.json is not None


def flag_value(name: str) -> int | None:
    """The regex flag called ``name`` (``DOTALL`` or ``S``, any case), or ``None``."""
    upper = name.upper()
    return FLAGS.get(FLAG_ALIASES.get(upper, upper))


def caret(source: str, position: int) -> str:
    """Two indented lines: ``source`` and a caret under its ``position``-th character."""
    return f"\n    {source}\n    {' ' * position}^"


class PageReader(NodeReader):
    """Reads page kinds; remembers follow targets until all kinds of a spider are known."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.follow_targets: list[tuple[str, yaml.Node]] = []
        self.unique_nodes: dict[str, list[yaml.Node]] = {}
        """The ``unique:`` entries of each page kind read, checked once the spider is known."""

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
            for key, (_, value) in self.mapping(
                entries["constants"][1], f"{where}: constants", None
            ).items():
                constants[key] = self.json_value(value, f"{where}: constants: {key}")
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
        )

    def unique(self, node: yaml.Node, what: str) -> tuple[tuple[str, ...], list[yaml.Node]]:
        """The field names of a ``unique:`` (a name or a list; ``[]`` for none), with
        the node of each, for ``check_unique`` in ``scraper.spec``."""
        items = self.sequence(node, what)
        names = tuple(self.text(item, f"each entry of {what}") for item in items)
        for index, name in enumerate(names):
            if name in names[:index]:
                raise self.error(items[index], f"{what} names {name!r} twice; keep one.")
        return names, items

    def json_source(
        self, pattern: regex.Pattern[str] | None, entries: Entries, where: str
    ) -> JsonSource | None:
        """The JSON source of a JSON page kind; ``None`` for any other kind."""
        marks: list[str] = [key for key in ("from", "items") if key in entries]
        if "fields" in entries and isinstance(entries["fields"][1], yaml.MappingNode):
            marks.append("fields")
        follow = entries["follow"][1] if "follow" in entries else None
        by_path = isinstance(follow, yaml.SequenceNode) and any(
            isinstance(rule, yaml.MappingNode)
            and any(getattr(key, "value", None) == "path" for key, _ in rule.value)
            for rule in follow.value
        )
        if not marks and not by_path:
            return None
        if pattern is not None:
            key = marks[0] if marks else "follow"
            what = {
                "from": "'from:' (a JSON page kind's source)",
                "items": "'items:' (a JSON page kind's list of records)",
                "fields": "'fields:' as a mapping (JSON paths, for a JSON page kind)",
                "follow": "a follow rule by 'path:' (for a JSON page kind)",
            }[key]
            raise self.error(
                entries[key][0],
                f"{where} has both 'pattern:' and {what}; a page kind takes its records "
                "from a pattern or from JSON: remove one (with a pattern, 'fields:' is a "
                "list naming its groups).",
            )
        from_pattern, location = None, None
        from_group: int | str = 0
        if "from" in entries:
            node = entries["from"][1]
            from_pattern = self.compile_pattern(node, f"{where}: from", self.flags(entries, where))
            location = self.location(node.start_mark)
            if JSON_GROUP in from_pattern.groupindex:
                from_group = JSON_GROUP
            elif from_pattern.groups == 1:
                from_group = 1
            else:
                has = f"{from_pattern.groups} groups" if from_pattern.groups else "no group"
                raise self.error(
                    node,
                    f"{where}: from has {has}; put the JSON in one group, e.g. "
                    r"'__DATA__\s*=\s*(\{.*?\});' (or name it (?P<json>...) among others).",
                )
        items = compile_path("")
        if "items" in entries and not _is_null(entries["items"][1]):
            items = self.json_path(entries["items"][1], f"{where}: items")
        paths: dict[str, JsonPath] = {}
        if "fields" in entries:
            fields_node = entries["fields"][1]
            if not isinstance(fields_node, yaml.MappingNode):
                raise self.error(
                    fields_node,
                    f"{where}: fields of a JSON page kind map each field to a path in an item, "
                    "e.g. {company: company_name, city: address.city}.",
                )
            for key, (_, path_node) in self.mapping(fields_node, f"{where}: fields", None).items():
                paths[key] = self.json_path(path_node, f"{where}: fields: {key}")
        return JsonSource(items, paths, from_pattern, from_group, location)

    def json_path(self, node: yaml.Node, what: str) -> JsonPath:
        source = self.text(node, what)
        try:
            return compile_path(source)
        except JsonPathError as exc:
            mark = node.start_mark
            column = mark.column + 1
            pointer = ""
            if "\n" not in source:
                column += _raw_offset(node, exc.position)
                pointer = caret(source, exc.position)
            raise SpecError(
                f"{what}: {source!r} is not a valid path: {exc.message}.{pointer}\n"
                "A path is keys joined by '.', with [N] for a list element, [*] for every "
                'element and "quoted keys" for keys with dots or spaces: '
                "props.pageProps.items[0].name.",
                Location(self.filename, mark.line + 1, column),
            ) from None

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

    def flags(self, entries: Entries, where: str) -> int:
        if "flags" not in entries:
            return 0
        result = 0
        for node in self.sequence(entries["flags"][1], f"{where}: flags"):
            flag = self.text(node, f"{where}: flags")
            value = flag_value(flag)
            if value is None:
                raise self.error(
                    node,
                    f"{where}: unknown flag {flag!r}"
                    f"{did_you_mean(flag.upper(), list(FLAGS))}; use any of {', '.join(FLAGS)}.",
                )
            result |= value
        return result

    def compile_pattern(self, node: yaml.Node, what: str, flags: int) -> regex.Pattern[str]:
        source = self.text(node, what)
        try:
            return regex.compile(source, flags | regex.VERSION0)
        except regex.error as exc:
            raise self.regex_error(node, what, source, exc) from None
        except (RecursionError, OverflowError, MemoryError):
            raise self.error(
                node, f"{what} nests groups too deeply to compile; simplify it."
            ) from None

    def regex_error(self, node: yaml.Node, what: str, source: str, exc: regex.error) -> SpecError:
        position = exc.pos if exc.pos is not None else 0
        mark = node.start_mark
        line, column = mark.line + 1, mark.column + 1
        pointer = ""
        if "\n" not in source:
            column += _raw_offset(node, position)
            pointer = caret(source, position)
        return SpecError(
            f"{what} is not a valid regular expression: {exc.msg} at position {position}."
            f"{pointer}\nFix the pattern there (in single quotes YAML keeps backslashes as "
            "they are; double quotes need them doubled).",
            Location(self.filename, line, column),
        )

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

    def clean(
        self,
        node: yaml.Node,
        where: str,
        known: Sequence[str],
        unknown: Callable[[str], str],
        every: Sequence[str] | None = None,
    ) -> tuple[dict[str, tuple[Processor, ...]], frozenset[str]]:
        """A ``clean:`` mapping: each field's processors, and the fields marked ``raw``.

        A key names a field of ``known``, several (``a, b``), or ``'*'``: each of
        ``every`` (default ``known``), whose processors run first. A field named by
        several keys gets their processors in the order written. ``unknown(name)``
        is the message for a name not in ``known``.
        """
        entries = self.mapping(node, f"{where}: clean", None)
        steps: dict[str, list[tuple[str, Processor]]] = {}
        raw_fields: set[str] = set()
        for key, (key_node, value_node) in sorted(entries.items(), key=lambda e: e[0] != "*"):
            names = (
                list(known if every is None else every)
                if key == "*"
                else self.clean_key(key, key_node, where, known, unknown)
            )
            field_steps, raw = self.processor_steps(value_node, f"{where}: clean: {key}")
            for name in names:
                steps.setdefault(name, []).extend(field_steps)
                if raw:
                    raw_fields.add(name)
        return {name: chain(chained) for name, chained in steps.items()}, frozenset(raw_fields)

    def clean_key(
        self,
        key: str,
        key_node: yaml.Node,
        where: str,
        known: Sequence[str],
        unknown: Callable[[str], str],
    ) -> list[str]:
        """The fields a ``clean:`` key names: one, or several separated by commas."""
        if key in known:
            return [key]
        names: list[str] = []
        start = 0
        for part in key.split(","):
            name = part.strip()
            position = start + len(part) - len(part.lstrip())
            start += len(part) + 1
            problem = unknown(name) if name not in known else None
            if name in names:
                problem = f"{where}: clean: {key!r} names {name!r} twice; name it once."
            if problem is not None:
                mark = key_node.start_mark
                column = mark.column + 1 + _raw_offset(key_node, position)
                raise SpecError(problem, Location(self.filename, mark.line + 1, column))
            names.append(name)
        return names

    def processors(self, node: yaml.Node, what: str) -> tuple[tuple[Processor, ...], bool]:
        """One field's processors as they run (see ``scraper.fields.chain``), and ``raw``."""
        steps, raw = self.processor_steps(node, what)
        return chain(steps), raw

    def processor_steps(
        self, node: yaml.Node, what: str
    ) -> tuple[list[tuple[str, Processor]], bool]:
        """The processors of a ``clean:`` entry by name, in order, and whether ``raw`` is one."""
        built: list[tuple[str, Processor]] = []
        raw = False
        for item in self.sequence(node, what):
            if isinstance(item, yaml.MappingNode):
                parts = self.mapping(item, what, None)
                if len(parts) != 1:
                    raise self.error(item, f"{what}: write one processor per list entry.")
                name, (_, arg_node) = next(iter(parts.items()))
                argument = self.json_value(arg_node, f"{what}: {name}")
            else:
                name, arg_node, argument = self.text(item, what), item, None
            if name == "raw":
                if argument is not None:
                    raise self.error(
                        arg_node, f"{what}: raw takes no argument; write it as a plain name."
                    )
                raw = True
                continue
            if name not in PROCESSORS:
                raise self.error(
                    item,
                    f"{what}: unknown processor {name!r}{did_you_mean(name, list(PROCESSORS))}"
                    f" (known: raw, {', '.join(PROCESSORS)}).",
                )
            try:
                built.append((name, PROCESSORS[name](argument)))
            except ProcessorArgumentError as exc:
                raise self.error(arg_node, f"{what}: {name} {exc}.") from None
            except regex.error as exc:  # sub: [pattern, replacement], findall: pattern
                pattern_node, source = arg_node, argument
                if isinstance(arg_node, yaml.SequenceNode):
                    pattern_node, source = arg_node.value[0], argument[0]
                raise self.regex_error(
                    pattern_node, f"{what}: {name} pattern", source, exc
                ) from None
            except (RecursionError, OverflowError, MemoryError):
                raise self.error(
                    arg_node,
                    f"{what}: {name} pattern nests groups too deeply to compile; simplify it.",
                ) from None
        return built, raw

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


def _raw_offset(node: yaml.Node, position: int) -> int:
    """Columns from a one-line scalar's start to its ``position``-th decoded character.

    Quotes and escapes take room in the file but not in the value: ``''`` in
    single quotes is one quote, a backslash escape in double quotes one character.
    """
    style = getattr(node, "style", None)
    mark = node.start_mark
    raw = mark.buffer[mark.index : node.end_mark.index] if mark.buffer else ""
    if not raw or style not in ("'", '"'):
        return position
    index, decoded = 1, 0
    escape_lengths = {"x": 4, "u": 6, "U": 10}
    while decoded < position and index < len(raw):
        if style == "'" and raw.startswith("''", index):
            index += 2
        elif style == '"' and raw[index] == "\\":
            index += escape_lengths.get(raw[index + 1 : index + 2], 2)
        else:
            index += 1
        decoded += 1
    return index


def _is_null(node: yaml.Node) -> bool:
    """``items:`` with nothing after it (or ``~``, ``null``): the top level."""
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def unknown_page(page: str, pages: Mapping[str, PageSpec], where: str) -> str:
    return (
        f"{where}: there is no page kind {page!r} (pages: {', '.join(pages)})"
        f"{did_you_mean(page, pages)}."
    )
