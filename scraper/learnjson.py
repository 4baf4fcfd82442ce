"""``scraper learn`` on values that live in JSON: a JSON page kind proposed from examples.

A page may carry its records as one JSON blob: a JSON API's body, a
``<script type="application/ld+json">``, a ``<script id="__NEXT_DATA__">`` or an
assignment such as ``window.__DATA__ = {...};``. ``learn_json`` finds the blobs,
reads each as a JSON page kind would (``scraper.jsonvalues.load_json``: escapes
such as ``\\u4e0a``, ``\\/`` and ``\\"`` decoded), and looks for the example
values in them:

1. every value in the blob is compared with each example value as a person reads
   it (entities decoded, whitespace collapsed; ``1993`` equals ``"1993"``; a list
   equals ``a,b,c`` or ``a / b / c``; ``[*].name`` over a list of objects too);
2. the example record's values share a list element (``data.movies[3]``): the
   list is ``items:``, the rest of each path a field (``title``, ``cast[*].name``).
   Of the lists that hold every value, the one whose elements have every field
   most often wins, paths without a fixed index first;
3. ``from:`` is the most general pattern (the script's id or type, or the name
   assigned to) whose matches, run through ``scraper.extract`` exactly as a crawl
   would, give the same records as the blob, every example among them, with no
   backtracking warning from ``scraper check``.

The proposal is a mapping ``spiders.yaml`` accepts as a page kind as it is.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex
import yaml

from scraper.errors import ScraperError
from scraper.extract import ExtractTimeout, extract
from scraper.jsonpage import PageFailed
from scraper.jsonpath import EACH, Step, compile_path
from scraper.jsonvalues import load_json
from scraper.lint import backtracking_warnings
from scraper.models import Page, Request
from scraper.spec import parse_spiders

MAX_CANDIDATES = 50
"""Places one example value may be found in a blob before the rest are ignored."""

_SCRIPT = regex.compile(r"<script\b([^>]*)>(.*?)</script\s*>", regex.DOTALL | regex.IGNORECASE)
_ASSIGNED = regex.compile(
    r"([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*|\[[\"'][^\"'\]]+[\"']\])*)\s*=\s*(?=[\[{])"
)
_ATTRIBUTE = regex.compile(r"""\b(id|type)\s*=\s*["']([^"']+)["']""", regex.IGNORECASE)
_SPACES = regex.compile(r"\s+")
_LIST_SEPARATOR = regex.compile(r"\s*[,/、|;，]\s*")
_BARE_KEY = regex.compile(r'[^.\[\]" \t\r\n@][^.\[\]" \t\r\n]*')
_NUMBER = regex.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Blob:
    """One JSON document in a page: where it is, and how a ``from:`` pattern may find it.

    ``opening`` is the regex for what comes before the JSON (``None``: the JSON is
    the whole body); ``closings`` are regexes for what may follow it, most general first.
    """

    start: int
    end: int
    document: Any
    opening: str | None
    closings: tuple[str, ...] = ()


@dataclass
class JsonProposal:
    """A JSON page kind that gives the example records: the mapping, and what it extracts."""

    kind: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    elements: list[Any] = field(default_factory=list)  # the blob's items, as read
    paths: dict[str, tuple[Step, ...]] = field(default_factory=dict)  # each field's, in an item


def learn_json(text: str, examples: Sequence[Mapping[str, str]]) -> dict[str, Any] | None:
    """A JSON page kind (``from``, ``items``, ``fields``) extracting ``examples`` from ``text``.

    ``from`` is left out when the JSON is the page body. ``None`` when no JSON blob
    of the page holds every value of every example in one list of items (or one object).
    """
    proposal = propose_json(text, examples)
    return None if proposal is None else proposal.kind


def propose_json(text: str, examples: Sequence[Mapping[str, str]]) -> JsonProposal | None:
    """As ``learn_json``, with the records the proposal extracts from ``text``."""
    wanted = [{name: _normal(value) for name, value in record.items()} for record in examples]
    wanted = [record for record in wanted if record]
    if not wanted:
        return None
    page = Page(
        "https://learn.invalid/", 200, (), b"", text, "utf-8", Request("https://learn.invalid/")
    )
    for blob in sorted(find_blobs(text), key=lambda b: b.end - b.start, reverse=True):
        for items, fields in _placements(blob.document, wanted):
            for kind in _kinds(text, blob, items, fields, wanted):
                records = _extracted(page, kind)
                if records is not None and _holds(records, wanted, _items_count(blob, items)):
                    container = compile_path(json_path(items))(blob.document)
                    elements = container if isinstance(container, list) else [container]
                    return JsonProposal(kind, records, elements, fields)
    return None


def string_pattern(text: str, proposal: JsonProposal) -> dict[str, Any] | None:
    r"""A ``pattern`` spider block reading the proposal's records from the JSON text itself.

    Each field is a key of the item (``"title"\s*:\s*"(?P<title>...)"``), its value a
    JSON string, decoded by the ``json_string`` processor, or a number (``int`` or
    ``float``). A record starts at ``{"KEY":``, KEY the first key of every item, and the
    gap before a field never runs into the next record's start, so a record lacking a
    field (an optional group) is null there. ``None`` unless each field is one key whose
    values are all strings or all numbers, in the same order in every item, and the
    pattern, run as a spider runs it, gives exactly the proposal's records, passes
    ``scraper check`` and takes under 50 ms on near-miss pages."""
    items = [item for item in proposal.elements if isinstance(item, dict)]
    if not items or len(items) != len(proposal.elements):
        return None
    keys: dict[str, str] = {}
    for name, steps in proposal.paths.items():
        if len(steps) != 1 or not isinstance(steps[0], str):
            return None
        keys[name] = steps[0]
    firsts = {tuple(item)[:1] for item in items}
    if len(firsts) != 1 or firsts == {()}:
        return None
    first = regex.escape(json.dumps(firsts.pop()[0], ensure_ascii=False), special_only=True)
    order = sorted(keys, key=lambda n: _key_position(items, keys[n]))
    for item in items:
        present = [keys[n] for n in order if keys[n] in item]
        if present != sorted(present, key=list(item).index):
            return None
    start = rf"\{{\s*+(?={first}\s*+:)"
    gap = rf'(?:[^{{"]++|"|\{{(?!\s{{0,40}}{first}\s{{0,40}}:))*?'
    parts: list[str] = [start]
    clean: dict[str, list[str]] = {}
    for name in order:  # in the items' own order of keys
        values = [item[keys[name]] for item in items if item.get(keys[name]) is not None]
        kinds = {_value_kind(value) for value in values}
        if kinds == {"int", "float"}:
            kinds = {"float"}
        kind = kinds.pop() if len(kinds) == 1 else None
        if kind is None:
            return None
        key = regex.escape(json.dumps(keys[name], ensure_ascii=False), special_only=True)
        if kind == "string":
            value = rf'"(?P<{name}>(?:[^"\\]++|\\.)*+)"'
            clean[name] = ["json_string"]
        else:
            value = rf"(?P<{name}>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
            clean[name] = [kind]
        body = rf"{gap}{key}\s*:\s*{value}"
        optional = len(values) < len(items)
        parts.append(f"(?>(?:{body})?)" if optional else f"(?>{body})")
    block = {"pattern": "".join(parts), "flags": ["DOTALL"], "clean": clean}
    if not _reads_records(text, block, proposal.records, list(proposal.paths)):
        return None
    return block


def _key_position(items: list[dict[str, Any]], key: str) -> int:
    return next(list(item).index(key) for item in items if key in item)


def _value_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return "int" if isinstance(value, int) else "float"


def _reads_records(
    text: str, block: dict[str, Any], records: list[dict[str, Any]], names: list[str]
) -> bool:
    """Whether ``block`` gives ``records`` from ``text`` as a crawl would, safely and fast."""
    from scraper.learnwrap import NEAR_MISS_SECONDS, near_miss_seconds

    pattern = block["pattern"]
    if backtracking_warnings(pattern, regex.DOTALL):
        return False
    page = Page(
        "https://learn.invalid/", 200, (), b"", text, "utf-8", Request("https://learn.invalid/")
    )
    found = _extracted(page, block)
    if found is None or len(found) != len(records):
        return False
    for got, wanted in zip(found, records, strict=True):
        if any(got.get(name) != wanted.get(name) for name in names):
            return False
    mutated = [text, text.replace("}", "")]
    return near_miss_seconds(pattern, mutated) <= NEAR_MISS_SECONDS


def find_blobs(text: str) -> Iterator[Blob]:
    """The JSON documents of a page: the body, whole scripts, and objects assigned in scripts."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        document = _load(stripped)
        if document is not None:
            start = text.index(stripped[0])
            yield Blob(start, start + len(stripped), document, None)
            return
    decoder = json.JSONDecoder()
    for script in _SCRIPT.finditer(text):
        body_start, body_end = script.span(2)
        body = script.group(2)
        inner = body.strip()
        if inner[:1] in ("{", "["):
            document = _load(inner)
            if document is not None:
                start = body_start + body.index(inner[0])
                yield Blob(
                    start,
                    start + len(inner),
                    document,
                    _script_opening(script.group(1)),
                    (r"\s*</script>",),
                )
                continue
        done = body_start
        for assigned in _ASSIGNED.finditer(text, body_start, body_end):
            if assigned.start() < done:
                continue  # inside an object found before
            try:
                _, end = decoder.raw_decode(text, assigned.end())
            except ValueError:
                continue
            document = _load(text[assigned.end() : end])
            if document is None or end > body_end:
                continue
            done = end
            name = regex.escape(assigned.group(1), special_only=True)
            opening = rf"{_word_start(assigned.group(1))}{name}\s*=\s*"
            yield Blob(assigned.end(), end, document, opening, _closings(text, end))


def json_path(steps: Sequence[Step]) -> str:
    """The path text of ``steps``, as ``scraper.jsonpath`` reads it (keys quoted where needed)."""
    parts: list[str] = []
    for step in steps:
        if isinstance(step, tuple):
            parts.append("[*]")
        elif isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            key = (
                step
                if _BARE_KEY.fullmatch(step) and not _NUMBER.fullmatch(step)
                else json.dumps(step, ensure_ascii=False)
            )
            parts.append(f".{key}" if parts else key)
    return "".join(parts)


def _load(text: str) -> Any:
    try:
        return load_json(text)
    except ValueError:
        return None


def _script_opening(attributes: str) -> str:
    """The most telling part of a script's start tag: its id, else its type."""
    found = {name.lower(): value for name, value in _ATTRIBUTE.findall(attributes)}
    for name in ("id", "type"):
        if name in found:
            value = regex.escape(found[name], special_only=True)
            return rf"""<script[^>]*\b{name}=["']{value}["'][^>]*>\s*"""
    return rf"<script{regex.escape(attributes, special_only=True)}>\s*"


def _word_start(name: str) -> str:
    return r"\b" if regex.match(r"\w", name) else ""


def _closings(text: str, end: int) -> tuple[str, ...]:
    """What may follow an assigned object, most general first: ``</script>``, ``;``, a line end."""
    after = text[end : end + 200]
    closings = []
    if regex.match(r"\s*(?:;\s*)?</script", after, regex.IGNORECASE):
        closings.append(r"\s*(?:;\s*)?</script>")
    if regex.match(r"\s*;", after):
        closings.append(r"\s*;")
    if regex.match(r"[ \t]*\r?\n", after):
        closings.append(r"[ \t]*\r?\n")
    literal = regex.match(r"\s*[^\s\w]{1,3}", after)
    if literal:
        closings.append(r"\s*" + regex.escape(literal.group().strip(), special_only=True))
    return tuple(closings)


def _normal(value: Any) -> str:
    """A value as a person reads it: entities decoded, whitespace collapsed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _SPACES.sub(" ", html.unescape(str(value))).strip()


def _same(value: Any, wanted: str) -> bool:
    """Whether a JSON value reads as ``wanted``: a string, a number, a list of strings."""
    if value is None or isinstance(value, dict):
        return False
    if isinstance(value, list):
        if not value or any(isinstance(v, (dict, list)) or v is None for v in value):
            return False
        parts = [p for p in _LIST_SEPARATOR.split(wanted) if p]
        return [_normal(v) for v in value] == parts
    if _normal(value) == wanted:
        return True
    if isinstance(value, (int, float)) and _NUMBER.fullmatch(wanted):
        return float(value) == float(wanted)
    return False


def _leaves(value: Any, steps: tuple[Step, ...] = ()) -> Iterator[tuple[tuple[Step, ...], Any]]:
    """Every value in a document with its path; lists of objects also as ``[*].key``."""
    yield steps, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*steps, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*steps, index))
        keys = dict.fromkeys(k for item in value if isinstance(item, dict) for k in item)
        for key in keys:
            projected = [
                item[key] for item in value if isinstance(item, dict) and item.get(key) is not None
            ]
            if projected:
                yield (*steps, (EACH,), key), projected


def _placements(
    document: Any, wanted: list[dict[str, str]]
) -> list[tuple[tuple[Step, ...], dict[str, tuple[Step, ...]]]]:
    """Where the records may be: ``(items path, {field: path in an item})``, best first."""
    first = wanted[0]
    found: dict[str, list[tuple[Step, ...]]] = {name: [] for name in first}
    for steps, value in _leaves(document):
        for name, text in first.items():
            if len(found[name]) < MAX_CANDIDATES and _same(value, text):
                found[name].append(steps)
    if not all(found.values()):
        return []
    anchors: dict[tuple[Step, ...], None] = {}
    for paths in found.values():
        for steps in paths:
            for cut in range(len(steps), 0, -1):
                if isinstance(steps[cut - 1], int):
                    anchors[steps[:cut]] = None
    anchors[()] = None  # one object holding them all: the top level, or under a key
    scored = []
    for anchor in anchors:
        fields = {}
        for name, paths in found.items():
            inside = [steps[len(anchor) :] for steps in paths if steps[: len(anchor)] == anchor]
            if not inside:
                break
            fields[name] = min(inside, key=lambda rest: (_has_index(rest), len(rest)))
        else:
            if anchor:
                items = anchor[:-1]
            else:  # no list: the deepest object holding every value is the one record
                items = _common(list(fields.values()))
                fields = {name: rest[len(items) :] for name, rest in fields.items()}
                if items and isinstance(items[-1], int):
                    continue  # one element of a list: the list's anchor says it better
            container = compile_path(json_path(items))(document)
            elements = container if isinstance(container, list) else [container]
            if not _all_found(elements, fields, wanted):
                continue
            complete = sum(
                all(compile_path(json_path(rest))(e) is not None for rest in fields.values())
                for e in elements
            )
            indexed = any(_has_index(rest) for rest in fields.values())
            scored.append(((indexed, -complete, -len(anchor)), items, fields))
    scored.sort(key=lambda entry: entry[0])
    return [(items, fields) for _, items, fields in scored]


def _has_index(steps: tuple[Step, ...]) -> bool:
    return any(isinstance(step, int) for step in steps)


def _common(paths: list[tuple[Step, ...]]) -> tuple[Step, ...]:
    """The longest start the paths share, short of a value itself (``a.b`` of ``a.b.c``)."""
    length = 0
    while all(len(p) > length + 1 and p[length] == paths[0][length] for p in paths):
        length += 1
    return paths[0][:length]


def _all_found(
    elements: list[Any], fields: dict[str, tuple[Step, ...]], wanted: list[dict[str, str]]
) -> bool:
    """Whether every wanted record is among the elements read through ``fields``."""
    paths = {name: compile_path(json_path(rest)) for name, rest in fields.items()}
    return all(
        any(
            all(name in paths and _same(paths[name](e), text) for name, text in record.items())
            for e in elements
        )
        for record in wanted
    )


def _kinds(
    text: str,
    blob: Blob,
    items: tuple[Step, ...],
    fields: dict[str, tuple[Step, ...]],
    wanted: list[dict[str, str]],
) -> Iterator[dict[str, Any]]:
    """Page kinds for this placement, the most general ``from:`` first."""
    base: dict[str, Any] = {
        "items": json_path(items),
        "fields": {n: json_path(r) for n, r in fields.items()},
    }
    if blob.opening is None:
        yield base
        return
    start, end = (r"\{", r"\}") if isinstance(blob.document, dict) else (r"\[", r"\]")
    starts = [start]
    # Several blobs alike (two ld+json scripts): the blob's own first keys tell it apart.
    head = text[blob.start : blob.start + 200]
    for comma in regex.finditer(r",", head):
        literal = head[: comma.end()]
        if any(value in literal for record in wanted for value in record.values()):
            break
        starts.append(_SPACES.sub(r"\\s*", regex.escape(literal, special_only=True)))
    for start in starts:
        for closing in blob.closings:
            pattern = f"(?s){blob.opening}({start}.*?{end}){closing}"
            if not backtracking_warnings(pattern, regex.DOTALL):
                yield {"from": pattern, **base}


def _extracted(page: Page, kind: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The records ``kind`` gives on the page, as a crawl extracts them; ``None`` if it fails."""
    text = yaml.safe_dump({"spiders": {"learn": {"start": page.url, **kind}}}, allow_unicode=True)
    try:
        spider = parse_spiders(text, "proposal").spiders["learn"]
        return list(extract(page, spider.pages[spider.first_page], spider).records)
    except (ScraperError, PageFailed, ExtractTimeout):
        return None


def _items_count(blob: Blob, items: tuple[Step, ...]) -> int:
    container = compile_path(json_path(items))(blob.document)
    return len(container) if isinstance(container, list) else 1


def _holds(records: list[dict[str, Any]], wanted: list[dict[str, str]], count: int) -> bool:
    """Whether the records are the blob's items (``count`` of them), every wanted one among them."""
    return len(records) == count and all(
        any(all(_same(r.get(name), text) for name, text in record.items()) for r in records)
        for record in wanted
    )
