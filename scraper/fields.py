"""Field processors: what ``clean:`` in a spider can do to a captured value.

Each processor is built once, when the spec loads, by a factory in ``PROCESSORS``
(name -> factory taking the YAML argument). A built processor is called as
``processor(value, page)`` and returns the new value. ``None`` (a group that did
not take part in the match) passes through every processor except ``default``
and ``required``; so does any value of a type a processor does not work on (an
``int`` given to ``text``, a list given to ``split``).

Every field is stripped of surrounding whitespace before its processors run,
unless its list starts with ``raw``.

``split`` and ``findall`` make a list. ``chain`` folds a field's processors, at
load, so that those after a list-making one apply to each item (``default`` and
``required`` to the whole list): a record builder calls a flat tuple of
processors whatever the field holds.

``sub`` and ``findall`` patterns come from users and their input from strangers'
pages: they run until ``PATTERN_DEADLINE``, the deadline of the page being
extracted.

The registry is here with the small processors; ``text`` and ``paragraphs`` live
in ``scraper.markup``, the strict JSON reading behind ``json`` and ``json_string``
in ``scraper.jsonvalues``.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

import regex

from scraper.jsonvalues import NotFiniteError, load_json, load_json_string
from scraper.markup import paragraphs, text
from scraper.models import Page

Processor = Callable[[Any, Page], Any]

log = logging.getLogger("scraper")

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
        try:
            return pattern.sub(replacement, value, timeout=_time_left())
        except TimeoutError:
            raise TimeoutError(pattern.pattern) from None

    return sub


def _time_left() -> float | None:
    """Seconds the page's patterns have left (``None``: no deadline); ``TimeoutError``
    when none: regex reads a timeout <= 0 as "none"."""
    left = PATTERN_DEADLINE.get() - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return None if left == math.inf else left


def _split(argument: Any) -> Processor:
    if argument is not None and (not isinstance(argument, str) or not argument):
        raise ProcessorArgumentError(
            "needs a separator, a string such as {split: ','} (alone, split cuts at whitespace)"
        )
    separator: str | None = argument

    def split(value: Any, page: Page) -> Any:
        if not isinstance(value, str):
            return value
        return [item for item in (part.strip() for part in value.split(separator)) if item]

    return split


def _findall(argument: Any) -> Processor:
    if not isinstance(argument, str) or not argument:
        raise ProcessorArgumentError("needs a pattern, a string such as {findall: '#(\\w+)'}")
    pattern = regex.compile(argument, regex.VERSION0)
    named = list(pattern.groupindex)
    if pattern.groups <= 1:
        group: int | str = pattern.groups
    elif len(named) == 1:
        group = named[0]
    else:
        raise ProcessorArgumentError(
            f"pattern '{argument}' has {pattern.groups} groups; keep the item in the only "
            "named group (?P<item>...), or write the others as (?:...)"
        )
    unbounded = _UNBOUNDED.search(argument) is not None

    def findall(value: Any, page: Page) -> Any:
        if not isinstance(value, str):
            return value
        try:
            matches = pattern.finditer(value, timeout=_time_left() if unbounded else None)
            items = [match.group(group) for match in matches]
        except TimeoutError:
            raise TimeoutError(pattern.pattern) from None
        # as a page pattern's groups: stripped, None for a group that took no part
        return [item.strip() if item is not None else None for item in items]

    return findall


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
        return argument if value is None or value == "" or value == [] else value

    return default


def _required(value: Any, page: Page) -> Any:
    if value is None or value == "" or value == []:
        raise DropRecord("missing")
    return value


def _json(value: Any, page: Page) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return load_json(value)
    except NotFiniteError:
        raise DropRecord("not finite") from None
    except ValueError as exc:
        log.info("%s: a value is not JSON (%s): %.60r", _url(page), exc, value)
        raise DropRecord("not JSON") from None


def _json_string(value: Any, page: Page) -> Any:
    if not isinstance(value, str) or "\\" not in value:
        return value
    try:
        return load_json_string(value)
    except ValueError as exc:
        log.info("%s: a value is not a JSON string (%s): %.60r", _url(page), exc, value)
        raise DropRecord("not a JSON string") from None


def _url(page: Page | None) -> str:
    return page.url if page is not None else "a value"


LIST_MAKERS = frozenset({"split", "findall"})
"""Processors that make a list of a value: those after them apply to each item."""
OF_THE_WHOLE = frozenset({"default", "required"})
"""Processors that, after a list is made, take the whole list, not each item."""


def chain(steps: Sequence[tuple[str, Processor]]) -> tuple[Processor, ...]:
    """A field's processors as they run, from its ``(name, processor)`` steps in order.

    Until a list-making processor, each step takes the value. After it, ``default``
    and ``required`` take the whole list (``[]`` counts as empty); every other step
    is mapped over the items, and a list-making one's lists are joined into one.
    """
    built: list[Processor] = []
    per_item: list[Processor] = []  # item steps not yet folded into one _each
    listed = False
    for name, processor in steps:
        if listed and name not in OF_THE_WHOLE and name not in LIST_MAKERS:
            per_item.append(processor)
            continue
        if per_item:
            built.append(_each(per_item))
            per_item = []
        built.append(_joined(processor) if listed and name in LIST_MAKERS else processor)
        listed = listed or name in LIST_MAKERS
    if per_item:
        built.append(_each(per_item))
    return tuple(built)


def _each(processors: Sequence[Processor]) -> Processor:
    steps = tuple(processors)

    def each(value: Any, page: Page) -> Any:
        if not isinstance(value, list):
            return value
        for step in steps:
            value = [step(item, page) for item in value]
        return value

    return each


def _joined(make_list: Processor) -> Processor:
    def joined(value: Any, page: Page) -> Any:
        if not isinstance(value, list):
            return value
        items: list[Any] = []
        for item in value:
            made = make_list(item, page)
            if isinstance(made, list):
                items.extend(made)
            else:  # null, or an item of a kind it does not cut
                items.append(made)
        return items

    return joined


PROCESSORS: dict[str, Callable[[Any], Processor]] = {
    "strip": _no_argument(_strip),
    "unescape": _no_argument(_unescape),
    "text": _no_argument(text),
    "paragraphs": _no_argument(paragraphs),
    "int": _no_argument(_number(int)),
    "float": _no_argument(_number(float)),
    "urljoin": _no_argument(_urljoin),
    "required": _no_argument(_required),
    "sub": _sub,
    "default": _default,
    "split": _split,
    "findall": _findall,
    "json": _no_argument(_json),
    "json_string": _no_argument(_json_string),
}
"""Processor name -> factory; ``raw`` is handled by the spec loader, not listed here."""
