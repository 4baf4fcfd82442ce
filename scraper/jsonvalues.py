"""Reading JSON strictly, into what a record can hold and JSON Lines can write back.

``load_json`` reads a whole document (a JSON page's body, a value for the ``json``
processor); ``load_json_string`` decodes the inside of a JSON string literal (for
``json_string``). What they give back can be written as JSON again: no ``NaN`` or
``Infinity``, no number too large for a float, no lone surrogate from an escape.
"""

from __future__ import annotations

import json
import math
from typing import Any

import regex


class NotFiniteError(ValueError):
    """A JSON number too large for a float (``1e999``): JSON could not write it back."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotFiniteError(f"{text} is too large for a number")
    return number


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity


_SURROGATE_ESCAPE = regex.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = regex.compile("[\ud800-\udfff]")


def load_json(text: str) -> Any:
    """``text`` read as one JSON document, strictly, into what a record can hold.

    ``ValueError`` for what is not JSON (``NaN`` and ``Infinity`` too, which Python's
    reader takes; an int of over 4,300 digits; nesting too deep to read),
    ``NotFiniteError`` for a number too large for a float. A lone surrogate escape
    (``\\ud800``) is read as U+FFFD: a string holding one cannot be written.
    """
    try:
        result = json.loads(text, parse_float=_finite, parse_constant=_refuse_constant)
        if _SURROGATE_ESCAPE.search(text):  # json.loads keeps a lone one as it is
            result = _without_lone_surrogates(result)
    except RecursionError:
        raise ValueError("nested too deep to read") from None
    return result


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` (from ``json.loads``) with each lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    return value


_JSON_ESCAPE = regex.compile(
    r"\\(?:u([0-9a-fA-F]{4})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?|(.?))", regex.DOTALL
)
_JSON_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def _json_escape(match: regex.Match[str]) -> str:
    code, low, simple = match.groups()
    if code is None:
        if simple in _JSON_ESCAPES:
            return _JSON_ESCAPES[simple]
        raise ValueError(f"bad escape {match.group()!r} at position {match.start()}")
    high = int(code, 16)
    if low is not None and 0xD800 <= high <= 0xDBFF:  # a surrogate pair: one character
        return chr(0x10000 + ((high - 0xD800) << 10) + int(low, 16) - 0xDC00)
    first = "\ufffd" if 0xD800 <= high <= 0xDFFF else chr(high)
    return first if low is None else first + "\ufffd"


def load_json_string(text: str) -> str:
    """``text``, the inside of a JSON string literal, with its escapes decoded.

    ``ValueError`` for a bad escape (``\\x``, or a backslash at the end). A lone
    surrogate escape, or one of a broken pair, is read as U+FFFD.
    """
    return _JSON_ESCAPE.sub(_json_escape, text)
