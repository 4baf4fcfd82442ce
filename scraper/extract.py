"""A fetched page + its page spec -> records and follow requests.

The regex policy, for a page kind's ``pattern`` (one record per match):

- named groups ``(?P<title>...)``: each named group is a field of that name;
  unnamed groups are then only for grouping and are not fields;
- no named groups, with ``fields: [a, b, ...]``: the groups, in order, are the
  fields named by the list (the count must match the number of groups);
- no groups at all: the whole match is one field, called ``match`` unless
  ``fields:`` gives it one name.

A group that did not take part in the match gives ``None``. Every value is then
stripped of surrounding whitespace (unless its ``clean:`` starts with ``raw``),
``format:`` fields are built from those values (``None`` when none of the
groups they use matched), and ``clean:`` processors run
on every field in turn. A processor can drop the record (``required``, or a
value that ``int``/``float`` cannot read); dropped records are counted by
``field: reason``. Fields whose names start with ``_`` are helpers: they can be
used by ``format:`` but are not written. Constant fields, the page URL
(``url_field``) and fields carried from the linking page are added last.

A JSON page kind (``spec.json``) takes its records from JSON instead (read in
``scraper.jsonpage``): the page body, or every match of its ``from:`` pattern
(the group holding the JSON), is read by ``scraper.jsonvalues.load_json``, as
strictly as by the ``json`` processor (NaN, Infinity and ``1e999`` refused); a
page that is not JSON fails alone as ``not JSON``, with the line, column and
character of the fault in the page. ``items:`` leads to the list of records in
it (an object there is one record; nothing there, none), and each field's path
is read in one item (``None`` where the item lacks it). Values keep their JSON
types; strings are stripped as above, then ``format:`` and ``clean:`` run as on
matches. A large JSON page is never parsed on the event loop: the first, short
try sends it to a worker thread (``ExtractTimeout``), since a parse cannot be
interrupted.

``page_fields:`` is a pattern run once on the page (its first match); its named
groups, stripped and cleaned, are added to every record of the page (``None``
when it does not match; the records' own fields win). A processor that drops
the value drops every record of the page, counted by the same reason.

Follow rules are applied to the same page: each match gives a link, made
absolute against the page (see ``Page.urljoin``) and without its fragment, sent
to the rule's page kind with the rule's other named groups carried along. A
callback's ``Request`` goes, unless it names a page kind, to the kind of the
page that yielded it. The spider's ``only``/``skip`` filters are decided here,
so the frontier only admits. A rule by ``path:`` takes its links from the JSON
documents of the page, one by ``field:`` from that field of each record (with
the fields it ``carry``s); a list there gives a link per string in it, a value
that is no string a ``bad url``. Links are made absolute and filtered in
``scraper.links``. Links that go nowhere are counted in ``Extraction.skipped``,
never fail the page: ``bad url`` (it cannot be parsed into a URL), ``not in
only``, ``skip``, ``filter timeout`` (see below) and, for a callback's
``Request``, ``link not JSON`` (a carry JSON cannot store).

What a callback yields is checked (in ``scraper.yielded``) before it is written,
since a callback can yield anything: a record that JSON cannot store as it is (a
set, bytes, an object, a non-string key, a circular or too deep value, a lone
surrogate, an int too long to print) is dropped as ``FIELD: not JSON (WHAT)``
(``record not JSON (WHAT)`` for a bad key), a NaN or infinity as ``FIELD: not
finite``. Records built from patterns and JSON are not checked here: their
values are what JSON can hold (a lone surrogate escape in JSON is read as
U+FFFD).

Every regex runs under the spider's ``extract_timeout`` for the whole page
(``scraper.deadline``), the ``sub`` processors of its fields and the
``only``/``skip`` filters of its links included (our own work on the matches,
and a callback's own time, are not counted): a pattern that backtracks without
end raises ``ExtractTimeout`` instead of stalling the crawl. Filters that run
out of the budget do not fail the page: the links not yet decided are skipped as
``filter timeout``; only an attempt with a shorter ``timeout`` than
``extract_timeout`` (the crawl's try on the event loop) raises
``ExtractTimeout`` instead, to be run again with the whole budget."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scraper.deadline import ExtractTimeout, finditer
from scraper.fields import PATTERN_DEADLINE, DropRecord, Processor
from scraper.jsonpage import INLINE_JSON_CHARS, json_documents, json_items
from scraper.links import absolute, filtered
from scraper.models import Page, Record, Request
from scraper.pagespec import PageFields
from scraper.spec import FollowRule, PageSpec, SpiderSpec
from scraper.yielded import from_callback, record_problem

log = logging.getLogger("scraper")


@dataclass
class Extraction:
    """What one page gave: records to write, requests to follow, records dropped and
    links skipped, by reason."""

    records: list[Record] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def extract(
    page: Page,
    spec: PageSpec,
    spider: SpiderSpec,
    callback: Any = None,
    *,
    timeout: float | None = None,
    concurrent: bool = False,
) -> Extraction:
    """Run ``spec``'s pattern and follow rules on ``page`` (then ``callback``, if given).

    ``callback`` is the resolved user function of the page kind: it receives the
    page, with ``page.records`` holding what the pattern extracted, and what it
    yields (dicts and ``Request``s) replaces those records. The patterns get
    ``timeout`` seconds (default: the spider's ``extract_timeout``); with
    ``concurrent`` the regex engine lets go of the GIL while it matches, for a
    call from a worker thread.
    """
    settings = spider.settings
    budget = settings.extract_timeout if timeout is None else timeout
    final = budget >= settings.extract_timeout  # a shorter try is run again when it runs out
    if spec.json is not None and not final and len(page.text) > INLINE_JSON_CHARS:
        raise ExtractTimeout(f"a JSON page of {len(page.text):,} characters")
    started = time.monotonic()
    deadline = started + budget
    result = Extraction()
    stated: Record | None = None
    unstated = ""  # why page_fields drop every record of the page
    token = PATTERN_DEADLINE.set(deadline)
    try:
        links = _match(page, spec, result, deadline, concurrent)
        if spec.page_fields is not None:
            try:
                stated = _stated(page, spec.page_fields, deadline, concurrent)
            except DropRecord as drop:
                unstated = drop.reason
    except TimeoutError as exc:  # a sub: processor ran past the deadline
        raise ExtractTimeout(str(exc)) from None
    finally:
        PATTERN_DEADLINE.reset(token)
    result.requests = filtered(links, settings, result.skipped, deadline, final, concurrent)
    if callback is not None:
        # The callback's links get what is left of the whole page budget: the callback
        # cannot be run again, so they are never sent back as an ExtractTimeout.
        left = settings.extract_timeout - (time.monotonic() - started)
        produced = callback(replace(page, records=tuple(result.records)))
        result.records = []
        links = []
        for item in produced or ():
            if isinstance(item, Request):
                link = from_callback(item, page, spider, result.skipped)
                if link is not None:
                    links.append(link)
            elif isinstance(item, dict):
                problem = record_problem(item)
                if problem is None:
                    result.records.append(item)
                else:
                    result.dropped[problem] += 1
            else:
                raise TypeError(
                    f"callback {spec.callback} yielded {type(item).__name__}; "
                    "yield dicts (records) or scraper.Request objects"
                )
        deadline = time.monotonic() + max(left, 0.0)
        result.requests += filtered(links, settings, result.skipped, deadline, True, concurrent)
    if unstated and result.records:
        result.dropped[unstated] += len(result.records)
        result.records = []
    _finish(result.records, page, spider, spec, stated)
    return result


def _match(
    page: Page, spec: PageSpec, result: Extraction, deadline: float, concurrent: bool
) -> list[Request]:
    """The page kind's pattern (or JSON) and follow rules: records into ``result``; the links."""
    documents: Sequence[Any] = ()
    if spec.pattern is not None:
        _build_records(page, spec, finditer(spec.pattern, page.text, deadline, concurrent), result)
    elif spec.json is not None:
        documents = json_documents(page, spec.json, deadline, concurrent)
        if spec.fields:
            _build_records(page, spec, json_items(spec.json, documents), result)
    links: list[Request] = []
    for rule in spec.follow:
        if rule.pattern is None:
            _value_links(page, spec, rule, documents, result, links)
            continue
        for match in finditer(rule.pattern, page.text, deadline, concurrent):
            href = match.group(rule.url_group)
            if not href:
                continue
            url = absolute(page, href)
            if url is None:
                result.skipped["bad url"] += 1
                continue
            carry = page.request.carry
            try:
                if rule.carry:  # a copy only for a rule that adds to it
                    carry = {**carry, **_carried(rule, match, page)}
            except DropRecord as drop:
                result.dropped[f"link {drop.reason}"] += 1
                continue
            links.append(Request(url, rule.to, page.request.depth + 1, carry))
    return links


def _build_records(page: Page, spec: PageSpec, items: Iterable[Any], result: Extraction) -> None:
    """One record per match of the pattern (or item of a JSON page), into ``result``."""
    build = _builder(spec)
    for item in items:
        try:
            record = build(item, page)
        except DropRecord as drop:
            result.dropped[drop.reason] += 1
            continue
        result.records.append(record)


def _value_links(
    page: Page,
    spec: PageSpec,
    rule: FollowRule,
    documents: Sequence[Any],
    result: Extraction,
    links: list[Request],
) -> None:
    """The links of a rule by ``path:`` (in each document) or ``field:`` (of each record)."""
    carry = page.request.carry
    found: list[tuple[Any, Mapping[str, Any]]]
    if rule.path is not None:
        found = [(rule.path(document), carry) for document in documents]
    else:
        found = [
            (record.get(rule.record_field or ""), {**carry, **{n: record[n] for n in rule.carry}})
            for record in result.records
        ]
    html_text = spec.json is None  # a pattern's capture is HTML, with &amp; and the like
    for value, carried in found:
        for href in value if type(value) is list else (value,):
            if href is None or href == "":
                continue
            url = absolute(page, href, html_text) if isinstance(href, str) else None
            if url is None:
                result.skipped["bad url"] += 1
                continue
            links.append(Request(url, rule.to, page.request.depth + 1, carried))


def _stated(page: Page, spec: PageFields, deadline: float, concurrent: bool) -> Record:
    """The values ``page_fields:`` states once on the page, cleaned (all ``None`` when its
    pattern does not match, said at -v)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ExtractTimeout(spec.pattern.pattern)
    try:
        match = spec.pattern.search(page.text, timeout=remaining, concurrent=concurrent)
    except TimeoutError:
        raise ExtractTimeout(spec.pattern.pattern) from None
    if match is None:
        log.info("page_fields: no match on %s, so its fields are null", page.url)
    values = {}
    for name in spec.names:  # null too goes through clean:, for default: and required
        value = None if match is None else match.group(name)
        if name not in spec.raw_fields:
            value = _clean_text(value)
        values[name] = _process(name, value, spec.clean.get(name, ()), page)
    return values


def _carried(rule: FollowRule, match: Any, page: Page) -> dict[str, Any]:
    """The named groups ``rule`` carries to the linked page, cleaned."""
    return {
        name: _process(name, _clean_text(match.group(name)), rule.clean.get(name, ()), page)
        for name in rule.carry
    }


def _clean_text(value: str | None) -> str | None:
    return value.strip() if value is not None else None


RecordBuilder = Callable[[Any, Page], Record]
_builders: dict[int, tuple[PageSpec, RecordBuilder]] = {}


def _builder(spec: PageSpec) -> RecordBuilder:
    """The record builder of a page kind, made once and kept."""
    known = _builders.get(id(spec))
    if known is None or known[0] is not spec:
        known = _builders[id(spec)] = (spec, _compile_builder(spec))
    return known[1]


def _compile_builder(spec: PageSpec) -> RecordBuilder:
    """A function that turns a match into a record, written for this page kind.

    Building a record is the per-match hot path; a function generated from the
    spec (as ``dataclasses`` generates ``__init__``) does only what this page
    kind needs, with no loops over settings, and costs half of a generic one.
    Its steps are those of the module docstring: fetch the groups (or, on a JSON
    page kind, read the fields' paths in the item), strip, ``format:``,
    ``clean:``, leave out helper fields.
    """
    names = {name: f"v{i}" for i, name in enumerate((*spec.fields, *spec.formats))}
    scope: dict[str, Any] = {"DropRecord": DropRecord}
    targets = ", ".join(names[f] for f in spec.fields)
    if spec.json is not None:
        lines = []
        for index, name in enumerate(spec.fields):
            scope[f"J{index}"] = spec.json.fields[name]
            lines.append(f"    {names[name]} = J{index}(match)")
        strip = "if type({0}) is str: {0} = {0}.strip()"  # JSON values need not be text
    else:
        assert spec.pattern is not None
        numbers = [
            spec.pattern.groupindex[g] if isinstance(g, str) else g for g in spec.group_index
        ]
        if 0 in numbers:  # the whole match: the one field of a group-less pattern
            lines = [f"    {targets}, = match.group(0),"]
        else:  # match.groups() is one call; regex's group(name, ...) costs ~0.8 µs a name
            picked = ", ".join(f"groups[{n - 1}]" for n in numbers)
            lines = ["    groups = match.groups()", f"    {targets}, = {picked},"]
        strip = "if {0} is not None: {0} = {0}.strip()"
    for name in spec.fields:
        if name not in spec.raw_fields:
            lines.append("    " + strip.format(names[name]))
    for index, (name, (template, used)) in enumerate(spec.formats.items()):
        scope[f"T{index}"] = template
        missing = " and ".join(f"{names[u]} is None" for u in used) or "False"
        arguments = ", ".join(f"{u!r}: '' if {names[u]} is None else {names[u]}" for u in used)
        lines.append(
            f"    {names[name]} = None if {missing} else T{index}.format(**{{{arguments}}})"
        )
    if spec.clean:
        lines.append("    try:")
        for index, (name, processors) in enumerate(spec.clean.items()):
            lines.append(f"        field = {name!r}")
            for step, processor in enumerate(processors):
                scope[f"P{index}_{step}"] = processor
                lines.append(f"        {names[name]} = P{index}_{step}({names[name]}, page)")
        lines.append("    except DropRecord as drop:")
        lines.append("        raise DropRecord(f'{field}: {drop.reason}') from None")
    shown = [n for n in names if n not in spec.hidden_fields]
    lines.append("    return {" + ", ".join(f"{n!r}: {names[n]}" for n in shown) + "}")
    source = "def build(match, page):\n" + "\n".join(lines) + "\n"
    exec(compile(source, f"<record builder of page kind {spec.name!r}>", "exec"), scope)
    return scope["build"]  # type: ignore[no-any-return]


def _process(name: str, value: Any, processors: tuple[Processor, ...], page: Page) -> Any:
    try:
        for processor in processors:
            value = processor(value, page)
    except DropRecord as drop:
        raise DropRecord(f"{name}: {drop.reason}") from None
    return value


def _finish(
    records: list[Record], page: Page, spider: SpiderSpec, spec: PageSpec, stated: Record | None
) -> None:
    """Add to each record what it did not capture: carried fields and ``page_fields``
    (where the record has no such field), then constants and ``url_field`` (over it)."""
    carry = page.request.carry
    constants = {**spider.constants, **spec.constants} if spec.constants else spider.constants
    if not (carry or stated or constants or spider.url_field):
        return
    for index, record in enumerate(records):
        merged = dict(carry)
        if stated:
            merged.update(stated)
        merged.update(record)
        merged.update(constants)
        if spider.url_field:
            merged[spider.url_field] = page.url
        records[index] = merged
