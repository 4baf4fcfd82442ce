"""A JSON page kind: where its records come from, read from a spider file.

A page kind with ``items:``, ``from:`` or ``fields:`` as a mapping of JSON paths
takes its records from JSON instead of from a pattern's matches: the page body,
or each match of its ``from:`` pattern. ``JsonReader`` reads those entries into a
``JsonSource`` and compiles each path once (``scraper.jsonpath``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import regex
import yaml

from scraper.errors import Location, SpecError
from scraper.jsonpath import JsonPath, JsonPathError, compile_path
from scraper.regexspec import RegexReader, caret, raw_offset
from scraper.yamlnodes import Entries

JSON_GROUP = "json"
"""The group of a ``from:`` pattern holding the JSON, when it has several."""


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


class JsonReader(RegexReader):
    """Reads the JSON source of a page kind, and JSON paths."""

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
                column += raw_offset(node, exc.position)
                pointer = caret(source, exc.position)
            raise SpecError(
                f"{what}: {source!r} is not a valid path: {exc.message}.{pointer}\n"
                "A path is keys joined by '.', with [N] for a list element, [*] for every "
                'element and "quoted keys" for keys with dots or spaces: '
                "props.pageProps.items[0].name.",
                Location(self.filename, mark.line + 1, column),
            ) from None


def _is_null(node: yaml.Node) -> bool:
    """``items:`` with nothing after it (or ``~``, ``null``): the top level."""
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")
