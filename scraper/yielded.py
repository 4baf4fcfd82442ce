"""What a page kind's callback yields, checked before it goes on.

A callback can yield anything, so its records and ``Request``s are checked here
(records built from patterns and JSON are not: their values are what JSON can
hold, a lone surrogate escape in JSON being read as U+FFFD):

- a record that JSON cannot store as it is (a set, bytes, an object, a
  non-string key, a circular or too deep value, a lone surrogate, an int too
  long to print) is dropped as ``FIELD: not JSON (WHAT)`` (``record not JSON
  (WHAT)`` for a bad key), a NaN or infinity as ``FIELD: not finite``;
- a ``Request`` is made absolute against the page, one level deeper, and sent
  to its page kind (by default the kind of the page that yielded it); one whose
  URL cannot be parsed is skipped as ``bad url``, one whose carry JSON cannot
  store as ``link not JSON``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from scraper.links import absolute
from scraper.models import Page, Request
from scraper.spec import SpiderSpec


def from_callback(
    request: Request, page: Page, spider: SpiderSpec, skipped: Counter[str]
) -> Request | None:
    """A callback's request, made absolute, one level deeper, to a page kind that exists;
    ``None`` (counted in ``skipped``) for a bad URL or a carry JSON cannot store."""
    kind = request.page or page.request.page or spider.first_page
    if kind not in spider.pages:
        raise ValueError(
            f"a callback yielded Request(page={kind!r}), but the spider has no such page kind "
            f"(pages: {', '.join(spider.pages)})"
        )
    url = absolute(page, request.url) if isinstance(request.url, str) else None
    if url is None:
        skipped["bad url"] += 1
        return None
    carry = request.carry
    if not isinstance(carry, Mapping) or record_problem(carry) is not None:
        skipped["link not JSON"] += 1
        return None
    depth = max(request.depth, page.request.depth + 1)
    return replace(request, url=url, page=kind, depth=depth)


MAX_NESTING = 100
"""Levels of lists and dicts a callback's value may nest: JSON writers recurse."""
MAX_INT_BITS = 14_000
"""About 4,200 digits: Python refuses to print an int of over 4,300 as JSON."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def record_problem(record: Mapping[Any, Any]) -> str | None:
    """Why JSON cannot store ``record`` as it is (a reason for ``dropped``), or ``None``."""
    for key, value in record.items():
        problem = _key_problem(key)
        if problem is not None:
            return f"record not JSON ({problem})"
        problem = _value_problem(value, set())
        if problem is not None:
            return f"{key}: {problem}"
    return None


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"{type(key).__name__} key"
    if not key.isascii() and _SURROGATE.search(key):
        return "lone surrogate in a key"
    return None


def _value_problem(value: object, parents: set[int]) -> str | None:
    """What in ``value`` JSON cannot store; ``parents``: the ids of the lists and dicts
    that hold it, to tell a circular value."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value.isascii() or not _SURROGATE.search(value):
            return None
        return "not JSON (lone surrogate)"
    if isinstance(value, int):
        return None if value.bit_length() <= MAX_INT_BITS else "not JSON (int too long)"
    if isinstance(value, float):
        return None if math.isfinite(value) else "not finite"
    if not isinstance(value, (list, tuple, dict)):
        return f"not JSON ({type(value).__name__})"
    if id(value) in parents:
        return "not JSON (circular)"
    if len(parents) >= MAX_NESTING:
        return f"not JSON (nested over {MAX_NESTING} deep)"
    parents.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                problem = _key_problem(key) or _value_problem(item, parents)
                if problem is not None:
                    return problem if problem.startswith("not ") else f"not JSON ({problem})"
        else:
            for item in value:
                problem = _value_problem(item, parents)
                if problem is not None:
                    return problem
    finally:
        parents.discard(id(value))
    return None
