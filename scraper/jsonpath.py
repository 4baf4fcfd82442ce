"""Paths into parsed JSON, the plain subset of JMESPath: ``props.pageProps.items[0].name``.

A path is steps, read left to right from the value it is applied to:

- ``name``: the key ``name`` of an object; a key with a dot, a space or a
  bracket in it is written in double quotes, as a JSON string: ``"og:title"``;
- ``[N]``: the N-th element of a list, from 0; ``[-1]`` is the last;
- ``[*]``: every element of a list; the rest of the path is applied to each,
  giving a list (elements where the rest gives ``null`` are left out, as in
  JMESPath);
- ``@`` (alone) or the empty path: the value itself.

Steps are separated by ``.``, which may be left out before a ``[``. jq's
spelling is read too: a leading ``.`` (``.props.items``; ``.`` alone is the
value itself) and ``[]`` for ``[*]``. A path that
leads nowhere (a key the object lacks, an index past the end, a key asked of a
list) gives ``None``: missing data is ``null`` in the record, never an error.

Paths are compiled once, when the spider loads; a malformed one raises
``JsonPathError`` with the position at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

EACH = "*"
"""The step that projects the rest of the path over a list's elements."""

Step = str | int | tuple[str]
"""A key (str), an index (int), or ``(EACH,)``, a projection."""

_KEY_END = frozenset('.[]" \t\r\n')
"""Characters that end an unquoted key."""


class JsonPathError(ValueError):
    """A path that cannot be read; ``position`` is the index of the character at fault."""

    def __init__(self, message: str, position: int) -> None:
        self.message = message
        self.position = position
        super().__init__(f"{message} at position {position}")


@dataclass(frozen=True)
class JsonPath:
    """A compiled path; ``steps`` are keys (str), indexes (int) and ``(EACH,)`` projections."""

    source: str
    steps: tuple[Step, ...]

    def __call__(self, value: Any) -> Any:
        """The value the path leads to in ``value``, or ``None`` where it leads nowhere."""
        return _walk(value, self.steps, 0)

    def __str__(self) -> str:
        return self.source


def _walk(value: Any, steps: tuple[Step, ...], start: int) -> Any:
    for position in range(start, len(steps)):
        step = steps[position]
        if type(step) is str:
            if type(value) is not dict:
                return None
            value = value.get(step)
        elif type(step) is int:
            if type(value) is not list or not -len(value) <= step < len(value):
                return None
            value = value[step]
        else:  # [*]: the rest of the path over each element
            if type(value) is not list:
                return None
            found = (_walk(item, steps, position + 1) for item in value)
            return [item for item in found if item is not None]
    return value


def compile_path(source: str) -> JsonPath:
    """Compile ``source``; raise ``JsonPathError`` naming the position of the fault."""
    steps: list[Step] = []
    text = source.strip()
    offset = len(source) - len(source.lstrip())
    if text in ("", "@", "."):
        return JsonPath(source, ())
    index = 1 if text.startswith(".") else 0  # jq's .a.b
    while index < len(text):
        char = text[index]
        if char == "[":
            index = _bracket(text, index, steps, offset)
        elif char == '"':
            index = _quoted(text, index, steps, offset)
        elif char in _KEY_END:
            what = "a space" if char.isspace() else repr(char)
            raise JsonPathError(
                f"{what} cannot start a key (write a key with it in double quotes)",
                offset + index,
            )
        else:
            end = index
            while end < len(text) and text[end] not in _KEY_END:
                end += 1
            key = text[index:end]
            if key.isdigit() or (key.startswith("-") and key[1:].isdigit()):
                raise JsonPathError(
                    f"{key!r} is a number: write [{key}] for an element of a list, or "
                    f'"{key}" for a key',
                    offset + index,
                )
            if key == "@":
                raise JsonPathError("'@' stands only alone, for the whole value", offset + index)
            steps.append(key)
            index = end
        if index == len(text):
            break
        if text[index] == ".":
            index += 1
            if index == len(text) or text[index] in ".[":
                raise JsonPathError("a key is missing after '.'", offset + index)
        elif text[index] != "[":
            what = "a space" if text[index].isspace() else repr(text[index])
            raise JsonPathError(
                f"{what} where '.' or '[' should be (write a key with it in double quotes)",
                offset + index,
            )
    return JsonPath(source, tuple(steps))


def _bracket(text: str, index: int, steps: list[Step], offset: int) -> int:
    """Read ``[N]`` or ``[*]`` at ``index``; return the index past it."""
    end = text.find("]", index)
    if end < 0:
        raise JsonPathError("'[' is never closed with ']'", offset + index)
    inside = text[index + 1 : end].strip()
    if inside in (EACH, ""):
        steps.append((EACH,))
    elif inside.lstrip("-").isdigit() and inside.count("-") <= 1 and inside.isascii():
        steps.append(int(inside))
    else:
        raise JsonPathError(
            f"[{inside}] is not an index: write [0], [-1] or [*] (a key goes after a '.')",
            offset + index,
        )
    return end + 1


def _quoted(text: str, index: int, steps: list[Step], offset: int) -> int:
    """Read a ``"quoted key"`` at ``index`` (JSON string escapes); return the index past it."""
    end = index + 1
    while end < len(text) and text[end] != '"':
        end += 2 if text[end] == "\\" else 1
    if end >= len(text):
        raise JsonPathError("a quoted key is never closed with '\"'", offset + index)
    try:
        steps.append(json.loads(text[index : end + 1]))
    except ValueError as exc:
        raise JsonPathError(
            f"the quoted key is not a JSON string ({exc})", offset + index
        ) from None
    return end + 1
