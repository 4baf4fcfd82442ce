"""spiders.yaml -> frozen, typed spider specs.

The file is composed into YAML nodes with the safe loader (no tags that build
Python objects) and read node by node (``scraper.yamlnodes``), so that every
error names the file, line and column of the value at fault and says what to
change. Page kinds are read by ``scraper.pagespec``, which compiles every
regular expression, once; start URLs and their vars by ``scraper.starts``; and
``unique:`` is checked against the records' fields by ``scraper.uniquespec``.

A spider describes its page kinds either inline (``pattern``, ``fields``,
``clean``, ... directly under the spider: one kind, called ``main``) or under
``pages:`` (several kinds; start URLs go to the first). The format is
documented in README.md, "Spider format".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import regex
import yaml

from scraper.errors import Location, SpecError, SpiderNotFound
from scraper.expect import Expectations, read_expectations
from scraper.followspec import FollowRule
from scraper.pagespec import NAMED_PAGE_KEYS, PAGE_KEYS, PageReader, PageSpec
from scraper.starts import StartReader, StartRequest, StartTemplate, StartURLs
from scraper.yamlnodes import Entries, close_match, compose

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
MAX_FILE_BYTES = 1024 * 1024
"""Largest spider file read (1 MiB): a spider file needs a few kilobytes."""
HEADER_NAME = regex.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header name: a token of RFC 9110."""
HEADER_VALUE_FORBIDDEN = regex.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Characters no header value may hold: line breaks and other controls (a tab may)."""
WIRES = ("aiohttp", "curl")
"""The HTTP clients a crawl can fetch with (``wire:``; ``scraper.wire``)."""


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
    wire: str = "curl"
    """The HTTP client: one of ``WIRES``."""

    @property
    def user_agent(self) -> str:
        """The User-Agent header sent, which robots.txt rules are matched against."""
        return next(
            (v for k, v in self.headers.items() if k.lower() == "user-agent"), DEFAULT_USER_AGENT
        )


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


class _SpecReader(PageReader, StartReader):
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
            elif key == "wire":
                wire = self.text(value, label)
                if wire not in WIRES:
                    raise self.error(
                        value,
                        f"{label} must be one of {', '.join(WIRES)}, not {wire!r}; "
                        "curl is the default.",
                    )
                changes[key] = wire
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
            constants = self.constants(entries["constants"][1], where)
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
