"""A JSON page kind's documents and items: the page read as JSON.

The page body, or every match of the kind's ``from:`` pattern (the group holding
the JSON), is read by ``scraper.jsonvalues.load_json``, as strictly as by the
``json`` processor (NaN, Infinity and ``1e999`` refused); a page that is not
JSON fails alone as ``not JSON`` (``PageFailed``), with the line, column and
character of the fault in the page. ``items:`` leads to the list of records in
each document (an object there is one record; nothing there, none). Building
records from the items, and links from ``path:`` rules, is ``scraper.extract``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from scraper.deadline import finditer
from scraper.jsonspec import JsonSource
from scraper.jsonvalues import load_json
from scraper.models import Page

INLINE_JSON_CHARS = 256 * 1024
"""Largest JSON page parsed on the event loop's short try (a few ms); a larger one is
parsed in a worker thread, as ``json.loads`` cannot be stopped once started."""


class PageFailed(Exception):
    """The page cannot be extracted as its kind says (``not JSON``); it fails alone.

    ``reason`` is counted in the crawl's stats, ``detail`` logged with the URL.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def json_documents(page: Page, source: JsonSource, deadline: float, concurrent: bool) -> list[Any]:
    """The JSON of a page: its body, or what each match of ``from:`` captures."""
    if source.from_pattern is None:
        return [parse_json(page.text, page.text, 0, "")]
    documents = []
    for match in finditer(source.from_pattern, page.text, deadline, concurrent):
        captured = match.group(source.from_group)
        if captured is not None:
            start = match.start(source.from_group)
            documents.append(parse_json(captured, page.text, start, ", in what from: captured"))
    return documents


def parse_json(text: str, page_text: str, start: int, where: str) -> Any:
    """``text`` (found at ``start`` in ``page_text``) parsed; ``PageFailed`` if not JSON,
    saying where in the page (``where``: what part of it)."""
    try:
        return load_json(text)
    except json.JSONDecodeError as exc:
        position = start + exc.pos
        line = page_text.count("\n", 0, position) + 1
        column = position - page_text.rfind("\n", 0, position)
        detail = f"{exc.msg} at line {line}, column {column} (char {position})"
    except ValueError as exc:  # NaN, 1e999, an int of over 4,300 digits, nesting too deep
        detail = str(exc)
    raise PageFailed("not JSON", f"not JSON: {detail}{where}")


def json_items(source: JsonSource, documents: Iterable[Any]) -> Iterator[Any]:
    """The items ``items:`` leads to in each document, one record each."""
    for document in documents:
        items = source.items(document)
        if items is None:
            continue
        yield from items if type(items) is list else (items,)
