"""spiders.yaml -> frozen, typed spider specs.

The file is composed into YAML nodes with the safe loader (no tags that build
Python objects) and read node by node (``scraper.yamlnodes``), so that every
error names the file, line and column of the value at fault and says what to
change. Page kinds are read by ``scraper.pagespec``, which compiles every
regular expression, once.

A spider describes its page kinds either inline (``pattern``, ``fields``,
``clean``, ... directly under the spider: one kind, called ``main``) or under
``pages:`` (several kinds; start URLs go to the first). The format is
documented in README.md, "Spider format".
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import regex
import yaml

from scraper.errors import Location, SpecError, SpiderNotFound
from scraper.expect import Expectations, read_expectations
from scraper.pagespec import (
    NAMED_PAGE_KEYS,
    PAGE_KEYS,
    FollowRule,
    PageReader,
    PageSpec,
    unknown_page,
)
from scraper.yamlnodes import Entries, close_match, compose, did_you_mean

__all__ = [
    "CrawlSettings",
    "Expectations",
    "FollowRule",
    "PageSpec",
    "SpiderFile",
    "SpiderSpec",
    "StartRequest",
    "StartTemplate",
    "StartURLs",
]

DEFAULT_USER_AGENT = "scraper/0.1 (+https://github.com/scraper/scraper)"
TEXT_TYPES = ("text/", "application/xhtml+xml", "application/xml", "application/json", "+xml")
MAIN_PAGE = "main"
MAX_START_URLS = 100_000_000
MAX_VARS = 100
MAX_HOST_VALUES = 10_000
"""Hosts a start template with a variable in its host may make when ``allowed_domains``
is not given: they are worked out before the first request, one by one."""
MAX_FILE_BYTES = 1024 * 1024
"""Largest spider file read (1 MiB): a spider file needs a few kilobytes."""
HEADER_NAME = regex.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header name: a token of RFC 9110."""
HEADER_VALUE_FORBIDDEN = regex.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Characters no header value may hold: line breaks and other controls (a tab may)."""


@dataclass(frozen=True, kw_only=True)
class CrawlSettings:
    """How a spider fetches; every key can be set under ``defaults:`` or per spider."""

    concurrency: int = 16
    per_host: int = 8
    timeout: float = 20.0
    retries: int = 2
    delay: float = 0.0
    jitter: float = 0.0
    robots: bool = True
    headers: Mapping[str, str] = field(default_factory=lambda: {"User-Agent": DEFAULT_USER_AGENT})
    proxy: str | None = None
    max_bytes: int = 8 * 1024 * 1024
    max_redirects: int = 10
    content_types: tuple[str, ...] = TEXT_TYPES
    extract_timeout: float = 1.0
    callback_timeout: float = 10.0
    allowed_domains: tuple[str, ...] = ()
    only: tuple[regex.Pattern[str], ...] = ()
    skip: tuple[regex.Pattern[str], ...] = ()
    max_depth: int | None = None
    max_pages: int | None = None

    @property
    def user_agent(self) -> str:
        """The User-Agent header sent, which robots.txt rules are matched against."""
        return next(
            (v for k, v in self.headers.items() if k.lower() == "user-agent"), DEFAULT_USER_AGENT
        )


@dataclass(frozen=True)
class StartRequest:
    """A start URL and the page kind it goes to (``None``: the first kind)."""

    url: str
    page: str | None = None


@dataclass(frozen=True)
class StartTemplate:
    """A ``start`` entry: a URL template and the values of the vars it uses.

    The URLs are made one at a time as they are iterated, so a range of a
    million values costs no memory.
    """

    template: str
    page: str | None = None
    variables: tuple[tuple[str, Sequence[Any]], ...] = ()

    def __iter__(self) -> Iterator[StartRequest]:
        names = [name for name, _ in self.variables]
        for values in _product([values for _, values in self.variables]):
            url = self.template.format(**dict(zip(names, values, strict=True)))
            yield StartRequest(url, self.page)

    def __len__(self) -> int:
        return math.prod(len(values) for _, values in self.variables)

    @property
    def host_variables(self) -> tuple[tuple[str, Sequence[Any]], ...]:
        """The vars used before the end of the URL's host (its first ``/``, ``?`` or ``#``
        past the ``//``): the only ones the host can depend on."""
        names: list[str] = []
        past_slashes = False
        for literal, name, _, _ in string.Formatter().parse(self.template):
            index = 0
            while index < len(literal):
                if not past_slashes and literal.startswith("//", index):
                    past_slashes, index = True, index + 2
                    continue
                if literal[index] in "/?#":
                    return tuple(v for v in self.variables if v[0] in names)
                index += 1
            if name is not None:
                names.append(name)
        return tuple(v for v in self.variables if v[0] in names)

    def hosts(self) -> Iterator[str]:
        """The host names of the URLs, made from the host's vars only (see ``host_variables``)."""
        variables = self.host_variables
        names = [name for name, _ in variables]
        for values in _product([values for _, values in variables]):
            filled = dict.fromkeys((name for name, _ in self.variables), "")
            filled.update(zip(names, values, strict=True))
            yield (urlsplit(self.template.format(**filled)).hostname or "").lower()


def _record_fields(spider: SpiderSpec, kind: str) -> tuple[str, ...] | None:
    """The fields records of page kind ``kind`` have (``None``: it writes no records):
    its own, its page's values and constants, the spider's constants and url_field,
    and what follow rules carry to it, from page to page."""
    page = spider.pages[kind]
    if page.pattern is None and page.json is None:
        return None
    names = [n for n in (*page.fields, *page.formats) if n not in page.hidden_fields]
    if page.page_fields is not None:
        names += page.page_fields.names
    names += [*page.constants, *spider.constants]
    if spider.url_field is not None:
        names.append(spider.url_field)
    carried: dict[str, set[str]] = {name: set() for name in spider.pages}
    changed = True
    while changed:  # a carry goes on with each link followed: up to a fixed point
        changed = False
        for source, source_page in spider.pages.items():
            for rule in source_page.follow:
                more = (set(rule.carry) | carried[source]) - carried[rule.to]
                if more:
                    carried[rule.to] |= more
                    changed = True
    return tuple(dict.fromkeys([*names, *sorted(carried[kind])]))


def _product(sequences: list[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    """``itertools.product`` without copying its inputs (ranges stay lazy) or recursing."""
    if any(len(values) == 0 for values in sequences):
        return
    indexes = [0] * len(sequences)
    while True:
        yield tuple(values[i] for values, i in zip(sequences, indexes, strict=True))
        position = len(sequences) - 1
        while position >= 0:  # the last index turns fastest, as in itertools.product
            indexes[position] += 1
            if indexes[position] < len(sequences[position]):
                break
            indexes[position] = 0
            position -= 1
        else:
            return


@dataclass(frozen=True)
class StartURLs:
    """All start URLs of a spider, in order, made lazily from its templates."""

    templates: tuple[StartTemplate, ...] = ()

    def __iter__(self) -> Iterator[StartRequest]:
        for template in self.templates:
            yield from template

    def __len__(self) -> int:
        return sum(len(template) for template in self.templates)

    def hosts(self) -> tuple[str, ...]:
        """The host names of the start URLs (the default ``allowed_domains``).

        Only the vars of a template's host are enumerated (at most ``MAX_HOST_VALUES``
        combinations, checked at load), never the whole product of its vars.
        """
        hosts: dict[str, None] = {}
        for template in self.templates:
            hosts.update(dict.fromkeys(template.hosts()))
        return tuple(hosts)


@dataclass(frozen=True)
class SpiderSpec:
    """A spider, ready to run: start URLs, page kinds and crawl settings."""

    name: str
    description: str
    start: StartURLs
    pages: Mapping[str, PageSpec]
    settings: CrawlSettings
    constants: Mapping[str, Any] = field(default_factory=dict)
    url_field: str | None = None
    expect: Expectations = field(default_factory=lambda: Expectations())
    location: Location | None = None
    unique: tuple[str, ...] = ()
    """Fields whose values a record may not share with one written before, for the page
    kinds that set no ``unique`` of their own."""

    @property
    def first_page(self) -> str:
        """The page kind that start URLs go to unless they name one."""
        return next(iter(self.pages))


@dataclass(frozen=True)
class SpiderFile:
    """A loaded spiders.yaml: its spiders by name, in file order."""

    path: Path
    spiders: Mapping[str, SpiderSpec]

    def get(self, name: str) -> SpiderSpec:
        """The spider called ``name``, or ``SpiderNotFound`` listing the ones there are."""
        if name in self.spiders:
            return self.spiders[name]
        known = ", ".join(self.spiders) or "none"
        message = f"no spider named {name!r} in {self.path} (it defines: {known})."
        close = close_match(name, self.spiders)
        if close:
            message = f"{message[:-1]}; did you mean {close!r}?"
        raise SpiderNotFound(message)


SETTING_KEYS = tuple(f.name for f in fields(CrawlSettings))
SPIDER_KEYS = (
    "description",
    "start",
    "vars",
    "pages",
    "constants",
    "url_field",
    "unique",
    "expect",
)
TOP_KEYS = ("defaults", "spiders")


def load_spiders(path: str | Path) -> SpiderFile:
    """Load and validate every spider in ``path``; raise ``SpecError`` on the first problem."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)
        if len(content) > MAX_FILE_BYTES:
            raise SpecError(
                f"{path}: the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB, the "
                "most a spider file may be; a spider file needs a few kilobytes. Check that "
                "--file names the spider file."
            )
        text = content.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no such file. Create it (see README.md, 'Spider format') "
            "or point to another with --file PATH."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read: {exc}.") from None
    return parse_spiders(text, str(path))


def parse_spiders(text: str, filename: str = "spiders.yaml") -> SpiderFile:
    """Parse spider YAML ``text``; ``filename`` is used in error messages."""
    reader = _SpecReader(filename)
    root = compose(text, filename)
    if root is None:
        raise SpecError(
            f"{filename}: the file is empty; it needs a 'spiders:' mapping "
            "(see README.md, 'Spider format')."
        )
    top = reader.mapping(root, "the file", TOP_KEYS)
    defaults = CrawlSettings()
    if "defaults" in top:
        defaults = reader.settings(top["defaults"][1], CrawlSettings(), "defaults", ())
    if "spiders" not in top:
        raise SpecError(
            "the file has no 'spiders:' mapping; add 'spiders:' with one entry per spider "
            "(see README.md, 'Spider format').",
            reader.location(root.start_mark),
        )
    spiders_node = top["spiders"][1]
    spiders: dict[str, SpiderSpec] = {}
    for name, (key_node, node) in reader.mapping(spiders_node, "spiders", None).items():
        spiders[name] = reader.spider(name, key_node, node, defaults)
    return SpiderFile(Path(filename), spiders)


class _SpecReader(PageReader):
    """Reads a whole spider file: defaults, spiders, their start URLs and settings."""

    def settings(
        self,
        node: yaml.Node | Entries,
        base: CrawlSettings,
        what: str,
        ignore: tuple[str, ...],
    ) -> CrawlSettings:
        entries = node if isinstance(node, dict) else self.mapping(node, what, SETTING_KEYS)
        changes: dict[str, Any] = {}
        for key, (_, value) in entries.items():
            if key in ignore:
                continue
            label = f"{what}: {key}"
            if key in ("concurrency", "per_host", "max_bytes"):
                changes[key] = self.number(value, label, int, 1)
            elif key in ("retries", "max_redirects", "max_depth", "max_pages"):
                changes[key] = self.number(value, label, int, 0)
            elif key in ("timeout", "extract_timeout", "callback_timeout"):
                changes[key] = self.number(value, label, float, 0.001)
            elif key in ("delay", "jitter"):
                changes[key] = self.number(value, label, float, 0)
            elif key == "robots":
                changes[key] = self.typed(value, bool, label, "true or false")
            elif key == "proxy":
                proxy = self.text(value, label)
                if not proxy.startswith(("http://", "https://")):
                    raise self.error(
                        value,
                        f"{label} must be an http:// or https:// URL such as "
                        f"http://host:3128, not {proxy!r}; SOCKS and other proxies are "
                        "not supported.",
                    )
                changes[key] = proxy
            elif key == "content_types":
                changes[key] = tuple(t.lower() for t in self.strings(value, label))
            elif key in ("only", "skip"):
                nodes = self.sequence(value, label)
                changes[key] = tuple(self.compile_pattern(n, label, 0) for n in nodes)
            elif key == "allowed_domains":
                domains = [d.lower().lstrip(".") for d in self.strings(value, label)]
                changes[key] = tuple(domains)
            elif key == "headers":
                headers = self.mapping(value, label, None)
                merged = dict(base.headers)
                for name, (key_node, header_node) in headers.items():
                    header: str | float = self.typed(
                        header_node, (str, int, float), f"{label}: {name}", "text"
                    )
                    merged[name] = self.header(key_node, name, header_node, str(header), label)
                changes[key] = merged
        return dataclasses.replace(base, **changes)

    def header(self, key_node: yaml.Node, name: str, node: yaml.Node, value: str, what: str) -> str:
        """A header value that can be sent: no line break or control character in it."""
        if not HEADER_NAME.fullmatch(name):
            raise self.error(
                key_node,
                f"{what}: the header name {name!r} cannot be sent: a name is letters, "
                "digits and !#$%&'*+-.^_`|~, with no space, colon or control character.",
            )
        bad = HEADER_VALUE_FORBIDDEN.search(value)
        if bad:
            raise self.error(
                node,
                f"{what}: {name}: the value {value!r} holds {bad.group()!r}, which a header "
                "cannot send; write the value on one line, with no control characters (a "
                "'>' or '|' block keeps a line break at its end: use a plain or quoted "
                "string).",
            )
        return value

    def spider(
        self, name: str, key_node: yaml.Node, node: yaml.Node, defaults: CrawlSettings
    ) -> SpiderSpec:
        allowed = SPIDER_KEYS + PAGE_KEYS + SETTING_KEYS
        entries = self.mapping(node, f"spider {name!r}", allowed)
        where = f"spider {name!r}"
        if "start" not in entries:
            raise self.error(key_node, f"{where} has no 'start:'; give it a URL to begin at.")
        settings = self.settings(entries, defaults, where, SPIDER_KEYS + PAGE_KEYS)
        inline = {key: entries[key] for key in PAGE_KEYS if key in entries}
        pages: dict[str, PageSpec] = {}
        if "pages" in entries:
            if inline:
                first = next(iter(inline.values()))[0]
                raise self.error(
                    first,
                    f"{where} has both 'pages:' and page keys ({', '.join(inline)}) at its "
                    "top; move them into one of its pages.",
                )
            page_nodes = self.mapping(entries["pages"][1], f"{where}: pages", None)
            if not page_nodes:
                raise self.error(entries["pages"][1], f"{where}: pages is empty.")
            for page_name, (_, page_node) in page_nodes.items():
                page_entries = self.mapping(
                    page_node, f"{where}, page {page_name!r}", NAMED_PAGE_KEYS
                )
                pages[page_name] = self.page(
                    page_name, page_entries, f"{where}, page {page_name!r}"
                )
        else:
            if not inline:
                raise self.error(
                    key_node,
                    f"{where} has no 'pattern:', 'callback:' or 'pages:'; "
                    "say what to extract from its pages.",
                )
            pages[MAIN_PAGE] = self.page(MAIN_PAGE, inline, where)
        self.check_follow_targets(pages, where)
        start = self.start(entries, where, pages, settings)
        description = (
            self.text(entries["description"][1], f"{where}: description")
            if ("description" in entries)
            else ""
        )
        constants: dict[str, Any] = {}
        if "constants" in entries:
            for key, (_, value) in self.mapping(
                entries["constants"][1], f"{where}: constants", None
            ).items():
                constants[key] = self.json_value(value, f"{where}: constants: {key}")
        url_field = None
        if "url_field" in entries:
            url_field = self.text(entries["url_field"][1], f"{where}: url_field")
        expect = Expectations()
        if "expect" in entries:
            expect = read_expectations(self, entries["expect"][1], f"{where}: expect")
        unique: tuple[str, ...] = ()
        if "unique" in entries:
            unique, self.unique_nodes[""] = self.unique(entries["unique"][1], f"{where}: unique")
        spider = SpiderSpec(
            name=name,
            description=description,
            start=start,
            pages=pages,
            settings=settings,
            constants=constants,
            url_field=url_field,
            expect=expect,
            location=self.location(key_node.start_mark),
            unique=unique,
        )
        self.check_unique(spider, where, inline="pages" not in entries)
        return spider

    def check_unique(self, spider: SpiderSpec, where: str, inline: bool) -> None:
        """Refuse a ``unique:`` field that the records of a page kind it applies to lack.

        Not checked when a page kind has a callback: its records, and the fields its
        requests carry to any page kind, are known only when it runs.
        """
        nodes, self.unique_nodes = self.unique_nodes, {}
        if not nodes or any(page.callback for page in spider.pages.values()):
            return
        for kind, page in spider.pages.items():
            own = kind in nodes
            fields = page.unique if page.unique is not None else spider.unique
            if not fields:
                continue
            has = _record_fields(spider, kind)
            if has is None:  # a page kind that writes no records
                if own:
                    raise self.error(
                        nodes[kind][0],
                        f"{where}, page {kind!r}: unique: the page kind writes no records "
                        "(it has no pattern and no JSON fields); remove unique here.",
                    )
                continue
            for name, node in zip(fields, nodes[kind if own else ""], strict=True):
                if name not in has:
                    whose = (
                        f"{where}, page {kind!r}: unique names field {name!r}, which its records"
                        if own and not inline
                        else f"{where}: unique names field {name!r}, which "
                        + ("its records" if inline else f"the records of page kind {kind!r}")
                    )
                    raise self.error(
                        node,
                        f"{whose} do not have (they have: {', '.join(has) or 'nothing'})"
                        f"{did_you_mean(name, has)}.",
                    )

    def start(
        self,
        entries: Entries,
        where: str,
        pages: Mapping[str, PageSpec],
        settings: CrawlSettings,
    ) -> StartURLs:
        variables: dict[str, Sequence[Any]] = {}
        var_nodes: dict[str, yaml.Node] = {}
        if "vars" in entries:
            var_entries = self.mapping(entries["vars"][1], f"{where}: vars", None)
            if len(var_entries) > MAX_VARS:
                raise self.error(
                    entries["vars"][0],
                    f"{where}: vars defines {len(var_entries):,} names; the most is "
                    f"{MAX_VARS}. Put values that go together in one var's list.",
                )
            for key, (key_node, node) in var_entries.items():
                variables[key] = self.variable(node, f"{where}: vars: {key}")
                var_nodes[key] = key_node
        used: set[str] = set()
        templates: list[StartTemplate] = []
        for item in self.sequence(entries["start"][1], f"{where}: start"):
            page = None
            url_node = item
            if isinstance(item, yaml.MappingNode):
                parts = self.mapping(item, f"{where}: start entry", ("url", "page"))
                if "url" not in parts:
                    raise self.error(item, f"{where}: a start entry needs 'url:'.")
                url_node = parts["url"][1]
                if "page" in parts:
                    page = self.text(parts["page"][1], f"{where}: start: page")
                    if page not in pages:
                        raise self.error(parts["page"][1], unknown_page(page, pages, where))
            template = self.text(url_node, f"{where}: start")
            names = self.template_names(url_node, template, f"{where}: start", "vars")
            for name in names:
                if name not in variables:
                    raise self.error(
                        url_node,
                        f"{where}: start uses {{{name}}} but 'vars:' defines no {name!r}; "
                        "add it under vars (a list, or {range: [start, stop, step]}).",
                    )
            used.update(names)
            order = tuple((name, variables[name]) for name in dict.fromkeys(names))
            start = StartTemplate(template, page, order)
            count = start.__len__()  # len() cannot return more than sys.maxsize
            if count > MAX_START_URLS:
                raise self.error(
                    url_node,
                    f"{where}: start makes {count:,} URLs; the most is "
                    f"{MAX_START_URLS:,}. Use smaller ranges.",
                )
            host_values = math.prod(len(values) for _, values in start.host_variables)
            if host_values > MAX_HOST_VALUES and not settings.allowed_domains:
                in_host = ", ".join(f"{{{name}}}" for name, _ in start.host_variables)
                raise self.error(
                    url_node,
                    f"{where}: start URL template has a variable in its host ({in_host}: "
                    f"{host_values:,} hosts); list allowed_domains: the domains the crawl may "
                    f"go to (without it, a host variable may have {MAX_HOST_VALUES:,} values "
                    "at most).",
                )
            for request in itertools.islice(start, 1):
                if not request.url.startswith(("http://", "https://")):
                    raise self.error(
                        url_node,
                        f"{where}: start URL {request.url!r} must begin with http:// or https://.",
                    )
            templates.append(start)
        for name, key_node in var_nodes.items():
            if name not in used:
                raise self.error(
                    key_node,
                    f"{where}: vars defines {name!r} but no start URL uses {{{name}}}; "
                    f"remove it, or use {{{name}}} in a start URL.",
                )
        return StartURLs(tuple(templates))

    def variable(self, node: yaml.Node, what: str) -> Sequence[Any]:
        if isinstance(node, yaml.MappingNode):
            parts = self.mapping(node, what, ("range",))
            if "range" not in parts:
                raise self.error(node, f"{what} must be a list of values or {{range: [...]}}.")
            bounds = self.value(parts["range"][1])
            if (
                not isinstance(bounds, list)
                or not 1 <= len(bounds) <= 3
                or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
                or (len(bounds) == 3 and bounds[2] == 0)
            ):
                raise self.error(
                    parts["range"][1],
                    f"{what}: range must be [stop], [start, stop] or [start, stop, step] "
                    "in whole numbers, step not 0 (stop is excluded, as in Python).",
                )
            values: Sequence[Any] = range(*bounds)
            try:
                len(values)
            except OverflowError:
                raise self.error(parts["range"][1], f"{what}: the range is too long.") from None
        else:
            values = self.value(node)
            if not isinstance(values, list):
                values = [values]
            if not all(isinstance(v, (str, int, float)) for v in values):
                raise self.error(
                    node, f"{what} must be a list of strings or numbers, or {{range: [...]}}."
                )
            values = tuple(values)
        if not values:
            raise self.error(node, f"{what} gives no values, so no start URL would be made.")
        return values
