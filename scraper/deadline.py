"""A page's regexes under one deadline: the spider's ``extract_timeout``.

Every pattern of a page (its records, ``from:``, ``page_fields:`` and follow
rules) runs with what is left of the page's budget, as the ``regex`` module's
``timeout``; a pattern that backtracks without end raises ``ExtractTimeout``
instead of stalling the crawl (see ``scraper.extract``).
"""

from __future__ import annotations

import time
from typing import Any

import regex


class ExtractTimeout(Exception):
    """A page's patterns ran past the spider's ``extract_timeout``."""


def finditer(
    pattern: regex.Pattern[str], text: str, deadline: float, concurrent: bool
) -> list[Any]:
    """Every match of ``pattern`` in ``text`` by ``deadline`` (``ExtractTimeout`` if not);
    with ``concurrent`` the regex engine lets go of the GIL while it matches."""
    # All matches first, then our own work on them: the budget is the pattern's alone.
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ExtractTimeout(pattern.pattern)
    try:
        return list(pattern.finditer(text, timeout=remaining, concurrent=concurrent))
    except TimeoutError:
        raise ExtractTimeout(pattern.pattern) from None
