"""Reading composed YAML nodes with their positions, for errors that say file:line:col.

The file is composed with the safe loader (``yaml.compose``), never constructed
as a whole, so every value keeps the position it came from and no YAML tag can
build a Python object.
"""

from __future__ import annotations

import ast
import math
import string
from collections.abc import Iterator
from typing import Any, TypeVar

import yaml

from scraper.errors import Location, SpecError

T = TypeVar("T")
Entries = dict[str, tuple[yaml.Node, yaml.Node]]
"""A mapping's entries by key: (key node, value node)."""


MAX_NODES = 100_000
"""Values a spider file may hold, aliases counted as often as they are used: a
file of aliases of aliases ("billion laughs") cannot make us build a huge value."""

MAX_DEPTH = 64
"""Levels lists and mappings may nest: PyYAML builds values by recursion, and a
spider file needs a handful of levels."""


def compose(text: str, filename: str) -> yaml.Node | None:
    """Compose ``text`` into nodes; a syntax error becomes a located ``SpecError``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SpecError(
            "the file nests lists or mappings too deeply to read; flatten it.",
            Location(filename, 1, 1),
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        column = mark.column if mark else 0
        if _unknown_escape(exc) and exc.problem_mark is not None:
            column -= 1  # PyYAML marks the character after the backslash
        elif exc.context_mark is not None and "quoted scalar" in (exc.context or ""):
            mark = exc.context_mark  # where the unclosed quote opens, not the end of the file
            column = mark.column
        location = Location(filename, mark.line + 1, column + 1) if mark else None
        raise SpecError(
            f"this is not valid YAML: {_yaml_problem(exc)}",
            location or Location(filename, 1, 1),
        ) from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).replace('"<unicode string>", ', "").split())
        raise SpecError(f"{filename}: this is not valid YAML: {problem}.") from None
    if root is not None and _expanded_size(root, filename) > MAX_NODES:
        raise SpecError(
            f"the file holds more than {MAX_NODES:,} values once its aliases (*name) are "
            "expanded; a spider file needs far fewer. Remove the aliases.",
            Location(filename, 1, 1),
        )
    return root


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _expanded_size(root: yaml.Node, filename: str) -> int:
    """Nodes under ``root`` with every alias expanded, counted without expanding them.

    Walked with a stack of its own rather than by recursion, so neither deep nesting
    nor an alias inside its own anchor (``&a [*a]``) can exhaust Python's stack; both
    are refused here, where the node at fault is known, before anything reads the tree.
    """
    sizes: dict[int, int] = {}
    frames: list[tuple[yaml.Node, Iterator[yaml.Node], list[int]]] = [
        (root, iter(_children(root)), [1])
    ]
    open_nodes = {id(root)}
    while frames:
        node, children, size = frames[-1]
        child = next(children, None)
        if child is None:
            frames.pop()
            open_nodes.discard(id(node))
            sizes[id(node)] = min(size[0], MAX_NODES + 1)
            if frames:
                frames[-1][2][0] += sizes[id(node)]
            continue
        if isinstance(child, yaml.ScalarNode):
            size[0] += 1
        elif id(child) in open_nodes:
            raise SpecError(
                "this anchor (&name) is used by an alias (*name) inside its own value, "
                "so the value would never end; remove the alias.",
                Location(filename, child.start_mark.line + 1, child.start_mark.column + 1),
            )
        elif id(child) in sizes:
            size[0] += sizes[id(child)]
        elif len(frames) >= MAX_DEPTH:
            raise SpecError(
                f"lists or mappings nest more than {MAX_DEPTH} deep here; a spider file "
                "needs a few levels. Flatten it.",
                Location(filename, child.start_mark.line + 1, child.start_mark.column + 1),
            )
        else:
            frames.append((child, iter(_children(child)), [1]))
            open_nodes.add(id(child))
    return sizes[id(root)]


def _unknown_escape(exc: yaml.MarkedYAMLError) -> str:
    """The character after a backslash that a double-quoted string does not know
    (``d`` of ``"\\d+"``), or ``""``."""
    prefix = "found unknown escape character "
    problem = exc.problem or ""
    if not problem.startswith(prefix):
        return ""
    written = ast.literal_eval(problem[len(prefix) :])  # PyYAML gives the character's repr
    return written if isinstance(written, str) else ""


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or ""
    if "'\\t'" in problem:
        return "a tab character; YAML indents with spaces only. Replace the tab with spaces."
    if escape := _unknown_escape(exc):
        # a pattern in double quotes: YAML reads backslashes there before the regex can
        return (
            f"\\{escape} is not an escape YAML knows in a double-quoted string (there a "
            "backslash starts an escape such as \\n). Put the text in single quotes, "
            f"which keep every backslash as written ('\\{escape}'), or double the "
            f"backslash (\\\\{escape})."
        )
    if "quoted scalar" in (exc.context or ""):
        return (
            "a quoted string opens here and is never closed. Close the quote (in single "
            "quotes, write a quote inside the text as two: '')."
        )
    if "expected <block end>" in problem or "mapping values are not allowed" in problem:
        return (
            "the indentation is off here: entries of one mapping must start in the same "
            "column, and a value that holds ': ' needs quotes."
        )
    described = " ".join(filter(None, [exc.context, problem]))
    return (
        f"{described}. Check the quoting and indentation here (patterns are safest in "
        "single quotes)."
    )


class _PlainLoader(yaml.SafeLoader):
    """The safe loader, reading YAML timestamps (``2024-01-01``) as the text written.

    Every value read from a spider file may end up in a record (``constants``,
    ``default:``) or a state file, both JSON, which has no dates: a date written
    bare means the same as one quoted.
    """


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


STANDARD_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "binary")
)


class NodeReader:
    """Typed access to YAML nodes; every failure is a ``SpecError`` at the node's position."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._constructor = _PlainLoader("")

    def location(self, mark: yaml.Mark) -> Location:
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def error(self, node: yaml.Node, message: str) -> SpecError:
        return SpecError(message, self.location(node.start_mark))

    # -- plain values ---------------------------------------------------------

    def value(self, node: yaml.Node) -> Any:
        self.check_tag(node)
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self.error(
                node,
                f"{exc.problem}. Only plain YAML (strings, numbers, lists, mappings) "
                "is allowed here.",
            ) from None
        except (ValueError, KeyError, IndexError, AttributeError, TypeError, OverflowError) as exc:
            # PyYAML's own readers of dates, !!int, !!bool ... fail in these ways
            written = node.value if isinstance(node, yaml.ScalarNode) else "this value"
            raise self.error(
                node,
                f"{written!r} cannot be read as its YAML type ({type(exc).__name__}: {exc}); "
                "quote it to make it a string.",
            ) from None

    def json_value(self, node: yaml.Node, what: str) -> Any:
        """A value that a record written as JSON can hold: no bytes, no infinity or NaN."""
        pending, seen = [node], {id(node)}
        while pending:  # an alias is checked once, however often it is used
            item = pending.pop()
            if isinstance(item, yaml.ScalarNode):
                if item.tag.endswith(":binary"):
                    raise self.error(
                        item,
                        f"{what}: a !!binary value cannot be written into a JSON record; "
                        "remove the tag to keep it as text.",
                    )
                if item.tag.endswith(":float") and not math.isfinite(self.value(item)):
                    raise self.error(
                        item,
                        f"{what}: {item.value!r} is not a finite number, which JSON cannot "
                        "hold; quote it to keep it as text.",
                    )
            else:
                fresh = [child for child in _children(item) if id(child) not in seen]
                seen.update(id(child) for child in fresh)
                pending.extend(fresh)
        return self.value(node)

    def constants(self, node: yaml.Node, where: str) -> dict[str, Any]:
        """A ``constants:`` mapping (of a spider or of a page kind): each a JSON value."""
        return {
            key: self.json_value(value, f"{where}: constants: {key}")
            for key, (_, value) in self.mapping(node, f"{where}: constants", None).items()
        }

    def check_tag(self, node: yaml.Node) -> None:
        """Refuse tags that are not plain YAML types (``!!python/object``, say)."""
        if node.tag not in STANDARD_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.error(
                node,
                f"the tag {tag} is not allowed: spider files are plain YAML (strings, "
                "numbers, lists, mappings) and never build Python objects. Remove the tag.",
            )

    def typed(self, node: yaml.Node, kind: type[T] | tuple[type, ...], what: str, hint: str) -> T:
        value = self.value(node)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            # YAML reads yes/no/on/off as booleans: name the value as it was written.
            raise self.error(node, f"{what} must be {hint}, not {node.value!r}.")
        if not isinstance(value, kind):
            raise self.error(node, f"{what} must be {hint}, not {describe(value)}.")
        return value  # type: ignore[return-value]

    def text(self, node: yaml.Node, what: str) -> str:
        return self.typed(node, str, what, "a string")

    def number(self, node: yaml.Node, what: str, kind: type, minimum: float) -> Any:
        hint = "a whole number" if kind is int else "a number"
        value = self.typed(node, (int, float) if kind is float else int, what, hint)
        if value != value or value in (float("inf"), float("-inf")):
            raise self.error(node, f"{what} must be {hint}, not {node.value!r}.")
        if value < minimum:
            raise self.error(node, f"{what} must be at least {minimum}, not {value}.")
        return kind(value)

    def strings(self, node: yaml.Node, what: str) -> list[str]:
        """A string or a list of strings."""
        if isinstance(node, yaml.ScalarNode):
            return [self.text(node, what)]
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a string or a list of strings.")
        return [self.text(item, f"each entry of {what}") for item in node.value]

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        self.check_tag(node)
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return [node]

    def template_names(self, node: yaml.Node, template: str, what: str, kind: str) -> list[str]:
        """The ``{name}``s of a template (``kind`` says what they name, for messages).

        Values are filled in as text, so a format spec or conversion ({n:.1f},
        {n!r}) or a positional {} is an error here rather than at page time.
        """
        try:
            parsed = [(n, spec, conv) for _, n, spec, conv in string.Formatter().parse(template)]
        except ValueError as exc:
            raise self.error(
                node,
                f"{what}: {template!r} is not a valid template ({exc}); write {kind} as "
                "{name}, and a literal brace as {{ or }}.",
            ) from None
        names: list[str] = []
        for name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or spec or conversion:
                raise self.error(
                    node,
                    f"{what}: {template!r} has {{{name}"
                    f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}; "
                    f"{kind} are written {{name}}, with no format or conversion.",
                )
            names.append(name)
        return names

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...] | None) -> Entries:
        """A mapping's entries by key; unknown keys (when ``allowed`` is given) are errors."""
        self.check_tag(node)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping (key: value lines).")
        entries: Entries = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.error(key_node, f"keys in {what} must be strings, not {key!r}.")
            if key in entries:
                raise self.error(key_node, f"{key!r} appears twice in {what}; keep one.")
            if allowed is not None and key not in allowed:
                raise self.error(key_node, unknown_key(key, what, allowed))
            entries[key] = (key_node, value_node)
        return entries


def describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{value!r}"


def close_match(name: str, choices: Any) -> str | None:
    """The one of ``choices`` that ``name`` was most likely meant to be, if any is close."""
    import difflib  # only a wrong name needs it: kept off every good run's start-up

    close = difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def did_you_mean(name: str, choices: Any) -> str:
    close = close_match(name, choices)
    return f" (did you mean {close!r}?)" if close else ""


def unknown_key(key: str, what: str, allowed: tuple[str, ...]) -> str:
    close = close_match(key, allowed)
    if close:
        return f"unknown key {key!r} in {what}; did you mean {close!r}?"
    return f"unknown key {key!r} in {what}; allowed keys are: {', '.join(allowed)}."
