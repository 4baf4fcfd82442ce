"""One page kind of a spider: its pattern, fields, processors and follow rules.

``PageReader`` reads a page kind's YAML entries (``pattern``, ``flags``,
``fields``, ``clean``, ``format``, ``follow``, ``callback``), compiling every
regular expression once and checking that the names fit together: fields that
``clean:`` and ``format:`` use must be produced by the pattern, and ``fields:``
must name exactly its groups. How matches become records is written in
``scraper.extract``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import regex
import yaml

from scraper.errors import Location, SpecError
from scraper.fields import PROCESSORS, Processor, ProcessorArgumentError
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
PAGE_KEYS = ("pattern", "flags", "fields", "clean", "format", "follow", "callback")


@dataclass(frozen=True)
class FollowRule:
    """Links to follow from a page: ``pattern`` captures the URL, ``to`` names the page kind.

    The URL is the group named ``url``, else the only group, else the whole match;
    other named groups are carried (stripped, then through the rule's ``clean``)
    into the records of the page followed to.
    """

    pattern: regex.Pattern[str]
    to: str
    url_group: int | str
    carry: tuple[str, ...]
    clean: Mapping[str, tuple[Processor, ...]] = field(default_factory=dict)
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

    def page(self, name: str, entries: Entries, where: str) -> PageSpec:
        pattern = None
        if "pattern" in entries:
            flags = self.flags(entries, where)
            pattern = self.compile_pattern(entries["pattern"][1], f"{where}: pattern", flags)
        callback = None
        if "callback" in entries:
            callback = self.callback_name(entries["callback"][1], where)
        needing = [key for key in ("fields", "clean", "format") if key in entries]
        if pattern is None and callback is None and needing:
            raise self.error(
                entries[needing[0]][0],
                f"{where} has '{needing[0]}:' but no 'pattern:' to capture its fields; "
                "add a pattern.",
            )
        field_names, group_index = self.field_names(pattern, entries, where)
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
        clean: dict[str, tuple[Processor, ...]] = {}
        raw_fields: set[str] = set()
        if "clean" in entries:
            for key, (key_node, node) in self.mapping(
                entries["clean"][1], f"{where}: clean", None
            ).items():
                if key not in produced:
                    raise self.error(
                        key_node,
                        f"{where}: clean names field {key!r}, which the pattern does not "
                        f"produce (it produces: {', '.join(produced) or 'nothing'})"
                        f"{did_you_mean(key, produced)}.",
                    )
                processors, raw = self.processors(node, f"{where}: clean: {key}")
                clean[key] = processors
                if raw:
                    raw_fields.add(key)
        follow = tuple(
            self.follow_rule(item, f"{where}: follow")
            for item in (self.sequence(entries["follow"][1], "") if "follow" in entries else [])
        )
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
        )

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

    def processors(self, node: yaml.Node, what: str) -> tuple[tuple[Processor, ...], bool]:
        built: list[Processor] = []
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
                built.append(PROCESSORS[name](argument))
            except ProcessorArgumentError as exc:
                raise self.error(arg_node, f"{what}: {name} {exc}.") from None
            except regex.error as exc:
                pattern_node = (
                    arg_node.value[0] if isinstance(arg_node, yaml.SequenceNode) else arg_node
                )
                raise self.regex_error(
                    pattern_node, f"{what}: sub pattern", argument[0], exc
                ) from None
        return tuple(built), raw

    def follow_rule(self, node: yaml.Node, where: str) -> FollowRule:
        parts = self.mapping(node, f"{where} entry", ("pattern", "to", "flags", "clean"))
        for key in ("pattern", "to"):
            if key not in parts:
                raise self.error(node, f"{where}: each rule needs '{key}:'.")
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
            for key, (key_node, value) in self.mapping(
                parts["clean"][1], f"{where}: clean", None
            ).items():
                if key not in carry:
                    raise self.error(
                        key_node,
                        f"{where}: clean names {key!r}, which the follow pattern does not carry "
                        f"(it carries: {', '.join(carry) or 'nothing'}; name a group "
                        f"(?P<{key}>...) to carry it){did_you_mean(key, carry)}.",
                    )
                clean[key] = self.processors(value, f"{where}: clean: {key}")[0]
        self.follow_targets.append((to, parts["to"][1]))
        location = self.location(parts["pattern"][1].start_mark)
        return FollowRule(pattern, to, url_group, carry, clean, location)

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


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def unknown_page(page: str, pages: Mapping[str, PageSpec], where: str) -> str:
    return (
        f"{where}: there is no page kind {page!r} (pages: {', '.join(pages)})"
        f"{did_you_mean(page, pages)}."
    )
