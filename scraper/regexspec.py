"""A spider file's regular expressions: their flags, compiled once, errors with a caret.

``RegexReader`` compiles each pattern of a spider file (``regex``, VERSION0) with
the flags written beside it, and turns a pattern that does not compile into a
``SpecError`` at the character at fault: its line and column in the file, and a
caret under the pattern. What a pattern's groups become is written in
``scraper.extract``.
"""

from __future__ import annotations

import regex
import yaml

from scraper.errors import Location, SpecError
from scraper.yamlnodes import Entries, NodeReader, did_you_mean

FLAGS = {
    "DOTALL": regex.DOTALL,
    "IGNORECASE": regex.IGNORECASE,
    "MULTILINE": regex.MULTILINE,
    "VERBOSE": regex.VERBOSE,
    "ASCII": regex.ASCII,
}
FLAG_ALIASES = {"S": "DOTALL", "I": "IGNORECASE", "M": "MULTILINE", "X": "VERBOSE", "A": "ASCII"}


def flag_value(name: str) -> int | None:
    """The regex flag called ``name`` (``DOTALL`` or ``S``, any case), or ``None``."""
    upper = name.upper()
    return FLAGS.get(FLAG_ALIASES.get(upper, upper))


def caret(source: str, position: int) -> str:
    """Two indented lines: ``source`` and a caret under its ``position``-th character."""
    return f"\n    {source}\n    {' ' * position}^"


class RegexReader(NodeReader):
    """Reads the regular expressions of a spider file, and their ``flags:``."""

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
            column += raw_offset(node, position)
            pointer = caret(source, position)
        return SpecError(
            f"{what} is not a valid regular expression: {exc.msg} at position {position}."
            f"{pointer}\nFix the pattern there (in single quotes YAML keeps backslashes as "
            "they are; double quotes need them doubled).",
            Location(self.filename, line, column),
        )


def raw_offset(node: yaml.Node, position: int) -> int:
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
