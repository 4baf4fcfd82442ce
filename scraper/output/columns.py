"""The fields a spider's records have, in the order the spider defines them, with types.

CSV takes its header and SQLite its columns from here: every page kind's fields
in order of definition (its pattern's groups or JSON fields, ``format:`` fields,
``page_fields:``, constants, ``url_field``, and what follow rules carry to it),
helpers (``_name``) left out. A page kind with a callback makes its records when
it runs, so a spider with one has an open set of fields (``Columns.complete`` is
False): the outputs then add what its records bring (see each format).

A field's SQLite type comes from its ``clean:`` processors: the last of ``int``
(INTEGER), ``float`` (REAL), ``split``/``findall`` (a list: TEXT holding its JSON)
and ``json`` (any JSON: no declared type) decides. Text the pattern captured is
TEXT; a constant has the type of its value; a value whose type the spider does
not say (a JSON page's value without a typing processor, a carried field, a
callback's) has no declared type, so SQLite keeps it as it comes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scraper.fields import PROCESSORS, Processor
from scraper.spec import SpiderSpec
from scraper.uniquespec import record_fields

INTEGER, REAL, TEXT, ANY = "INTEGER", "REAL", "TEXT", ""
JSON_TEXT = "json"
"""A list or an object: TEXT holding its JSON in SQLite."""

_TYPED: dict[object, str] = {
    PROCESSORS["int"](None): INTEGER,
    PROCESSORS["float"](None): REAL,
    PROCESSORS["json"](None): ANY,
    PROCESSORS["json_string"](None): TEXT,
}
# split and findall build a new closure per use; their code is one object each.
_LIST_CODE = (PROCESSORS["split"](None).__code__, PROCESSORS["findall"]("x").__code__)


@dataclass(frozen=True)
class Columns:
    """The fields of a spider's records in order, each with its type (``types``)."""

    names: tuple[str, ...]
    types: Mapping[str, str] = field(default_factory=dict)
    complete: bool = True
    """False when a callback may yield fields not named here."""


def spider_columns(spider: SpiderSpec) -> Columns:
    """Every page kind's fields, in order of definition, with their types."""
    types: dict[str, str] = {}
    complete = True
    for kind, page in spider.pages.items():
        if page.callback is not None:
            complete = False
        names = record_fields(spider, kind)
        if names is None:
            continue
        known = {n: _type(page.clean.get(n, ()), page.json is None) for n in page.fields}
        known |= {n: _type(page.clean.get(n, ()), True) for n in page.formats}
        if page.page_fields is not None:
            stated = page.page_fields
            known |= {n: _type(stated.clean.get(n, ()), True) for n in stated.names}
        known |= {n: _value_type(v) for n, v in {**spider.constants, **page.constants}.items()}
        if spider.url_field is not None:
            known[spider.url_field] = TEXT
        for name in names:
            found = known.get(name, ANY)
            # One column for a field that page kinds type differently: keep values as they come.
            types[name] = found if types.get(name, found) == found else ANY
    return Columns(tuple(types), types, complete)


def _type(processors: Iterable[Processor], text: bool) -> str:
    """The type a field's processors leave (``text``: the value starts as text)."""
    found = TEXT if text else ANY
    for processor in processors:
        if getattr(processor, "__code__", None) in _LIST_CODE:
            return JSON_TEXT  # what follows runs on each item, or on the whole list
        found = _TYPED.get(processor, found)
    return found


def _value_type(value: Any) -> str:
    if isinstance(value, int):  # True and False too
        return INTEGER
    if isinstance(value, float):
        return REAL
    if isinstance(value, str):
        return TEXT
    return JSON_TEXT if isinstance(value, (list, dict)) else ANY
