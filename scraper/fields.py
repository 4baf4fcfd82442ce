"""Field processors: what ``clean:`` in a spider can do to a captured value.

Each processor is built once, when the spec loads, by a factory in ``PROCESSORS``
(name -> factory taking the YAML argument). A built processor is called as
``processor(value, page)`` and returns the new value. ``None`` (a group that did
not take part in the match) passes through every processor except ``default``
and ``required``.

Every field is stripped of surrounding whitespace before its processors run,
unless its list starts with ``raw``.

``sub`` patterns come from users and their input from strangers' pages: they run
until ``PATTERN_DEADLINE``, the deadline of the page being extracted.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import regex

from scraper.models import Page

Processor = Callable[[Any, Page], Any]

PATTERN_DEADLINE: ContextVar[float] = ContextVar("PATTERN_DEADLINE", default=math.inf)
"""When the patterns of the page being extracted must stop (``time.monotonic()``).
Set by ``scraper.extract``; a ``sub`` that runs past it raises ``TimeoutError``."""


class DropRecord(Exception):
    """Raised by a processor when the record must not be written; ``reason`` is counted."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ProcessorArgumentError(ValueError):
    """A processor was given an argument it cannot use; the spec loader adds the location."""


def _strip(value: Any, page: Page) -> Any:
    return value.strip() if isinstance(value, str) else value


def _unescape(value: Any, page: Page) -> Any:
    return html.unescape(value) if isinstance(value, str) else value


_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "hr",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "td",
        "th",
        "tr",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
    ]
)


_NOT_XML = regex.compile(
    "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ud800-\\udfff\\ufffe\\uffff]"
    "|&#(?:([0-9]+)|[xX]([0-9a-fA-F]+));?"
)
"""Characters XML 1.0 cannot hold, and character references: lxml refuses a string
holding such a character, and one it decodes from a reference."""


def _xml_safe(match: regex.Match[str]) -> str:
    decimal, hexadecimal = match.groups()
    digits = decimal or hexadecimal
    if digits is None or len(digits) > 8:  # a control, or past any code point
        return " "
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD:
        return match.group()
    if 0x10000 <= code <= 0x10FFFF:
        return match.group()
    return " "


def _text(value: Any, page: Page) -> Any:
    if not isinstance(value, str):
        return value
    # Controls separate words where they stand; XML (so lxml) cannot hold them.
    value = _NOT_XML.sub(_xml_safe, value)
    if "<" not in value and "&" not in value:
        return " ".join(value.split())
    # lxml reads the fragment as a browser would (a '>' inside an attribute, tags
    # left open); the same parser serves every page, so it is made once.
    from lxml import html as lxml_html

    root = lxml_html.fragment_fromstring(value, create_parent="div")
    for element in root.iter("script", "style"):
        element.drop_tree()
    for element in root.iter():
        if element.tag in _BLOCK_TAGS:  # block tags separate words: <td>A</td><td>B</td>
            element.tail = " " + (element.tail or "")
            element.text = " " + (element.text or "")
    return " ".join(root.text_content().split())


def _number(kind: type[int] | type[float]) -> Processor:
    def convert(value: Any, page: Page) -> Any:
        if not isinstance(value, str):
            return value
        cleaned = value.strip().replace(",", "").replace("_", "")
        try:
            number = kind(cleaned)
        except ValueError:
            raise DropRecord(f"not {kind.__name__}") from None
        if not math.isfinite(number):  # inf, nan, 1e999: JSON has no way to write them
            raise DropRecord("not finite")
        return number

    return convert


def _urljoin(value: Any, page: Page) -> Any:
    return page.urljoin(value) if isinstance(value, str) else value


def _no_argument(processor: Processor) -> Callable[[Any], Processor]:
    def factory(argument: Any) -> Processor:
        if argument is not None:
            raise ProcessorArgumentError("takes no argument; write it as a plain name")
        return processor

    return factory


_UNBOUNDED = regex.compile(r"[*+{]|\(\?(?:R|[0-9+-]|&|P>)")
"""What in a pattern can repeat without bound: a quantifier or a recursive call."""


def _sub(argument: Any) -> Processor:
    if (
        not isinstance(argument, list)
        or len(argument) != 2
        or not all(isinstance(part, str) for part in argument)
    ):
        raise ProcessorArgumentError("needs [pattern, replacement], two strings")
    pattern = regex.compile(argument[0], regex.VERSION0)
    replacement = argument[1]
    _check_replacement(pattern, replacement)
    # regex's timeout= costs ~1.4 us a call, as much as a short sub itself. Without
    # *, +, {m,n} or recursion a pattern cannot backtrack without end: it needs none.
    unbounded = _UNBOUNDED.search(argument[0]) is not None

    def sub(value: Any, page: Page) -> Any:
        if not isinstance(value, str):
            return value
        if not unbounded:
            return pattern.sub(replacement, value)
        left = PATTERN_DEADLINE.get() - time.monotonic()
        try:
            if left <= 0:  # regex reads a timeout <= 0 as "none"
                raise TimeoutError
            return pattern.sub(replacement, value, timeout=None if left == math.inf else left)
        except TimeoutError:
            raise TimeoutError(pattern.pattern) from None

    return sub


def _check_replacement(pattern: regex.Pattern[str], replacement: str) -> None:
    """Refuse a replacement that would fail on every match: a group the pattern lacks,
    a bad escape. It is expanded once on a stand-in pattern with the same groups."""
    names = {number: name for name, number in pattern.groupindex.items()}
    stand_in = "".join(
        f"(?P<{names[n]}>)" if n in names else "()" for n in range(1, pattern.groups + 1)
    )
    match = regex.match(stand_in, "", regex.VERSION0)
    assert match is not None  # empty groups match the empty string
    try:
        match.expand(replacement)
    except (regex.error, IndexError) as exc:
        groups = f"{pattern.groups} group(s)" if pattern.groups else "no groups"
        raise ProcessorArgumentError(
            f"replacement '{replacement}' cannot be used with the pattern '{pattern.pattern}' "
            f"({groups}): {exc}; refer only to its groups (\\1 or \\g<name>; \\g<0> is "
            "the whole match) and write a literal backslash as \\\\"
        ) from None


def _default(argument: Any) -> Processor:
    def default(value: Any, page: Page) -> Any:
        return argument if value is None or value == "" else value

    return default


def _required(value: Any, page: Page) -> Any:
    if value is None or value == "":
        raise DropRecord("missing")
    return value


PROCESSORS: dict[str, Callable[[Any], Processor]] = {
    "strip": _no_argument(_strip),
    "unescape": _no_argument(_unescape),
    "text": _no_argument(_text),
    "int": _no_argument(_number(int)),
    "float": _no_argument(_number(float)),
    "urljoin": _no_argument(_urljoin),
    "required": _no_argument(_required),
    "sub": _sub,
    "default": _default,
}
"""Processor name -> factory; ``raw`` is handled by the spec loader, not listed here."""
