"""spiders.yaml -> frozen, typed spider specs.

The file is composed into YAML nodes with the safe loader (no tags that build
Python objects) and read node by node, so that every error names the file,
line and column of the value at fault and says what to change. Every regular
expression is compiled here, once.

A spider describes its page kinds either inline (``pattern``, ``fields``,
``clean``, ... directly under the spider: one kind, called ``main``) or under
``pages:`` (several kinds; start URLs go to the first). The format is
documented in README.md, "Spider format".
"""

from __future__ import annotations

import difflib
import itertools
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import regex
import yaml

from scraper.errors import Location, SpecError, SpiderNotFound
from scraper.fields import PROCESSORS, Processor, ProcessorArgumentError

DEFAULT_USER_AGENT = "scraper/0.1 (+https://github.com/scraper/scraper)"
FLAGS = {
    "DOTALL": regex.DOTALL,
    "IGNORECASE": regex.IGNORECASE,
    "MULTILINE": regex.MULTILINE,
    "VERBOSE": regex.VERBOSE,
    "ASCII": regex.ASCII,
}
FLAG_ALIASES = {"S": "DOTALL", "I": "IGNORECASE", "M": "MULTILINE", "X": "VERBOSE", "A": "ASCII"}
WHOLE_MATCH_FIELD = "match"
MAIN_PAGE = "main"


@dataclass(frozen=True, kw_only=True)
class CrawlSettings:
    """How a spider fetches; every key can be set under ``defaults:`` or per spider."""

    concurrency: int = 16
    per_host: int = 8
    timeout: float = 20.0
    retries: int = 2
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=lambda: {"User-Agent": DEFAULT_USER_AGENT})
    max_bytes: int = 8 * 1024 * 1024
    max_redirects: int = 10
    extract_timeout: float = 1.0
    allowed_domains: tuple[str, ...] = ()
    max_depth: int | None = None
    max_pages: int | None = None


@dataclass(frozen=True)
class FollowRule:
    """Links to follow from a page: ``pattern`` captures the URL, ``to`` names the page kind.

    The URL is the group named ``url``, else the only group, else the whole match;
    other named groups are carried into the records of the page followed to.
    """

    pattern: regex.Pattern[str]
    to: str
    url_group: int | str
    carry: tuple[str, ...]


@dataclass(frozen=True)
class PageSpec:
    """One kind of page: its pattern, field names, processors and follow rules."""

    name: str
    pattern: regex.Pattern[str] | None = None
    fields: tuple[str, ...] = ()
    group_index: tuple[int | str, ...] = ()
    clean: Mapping[str, tuple[Processor, ...]] = field(default_factory=dict)
    raw_fields: frozenset[str] = frozenset()
    formats: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    follow: tuple[FollowRule, ...] = ()
    callback: str | None = None


@dataclass(frozen=True)
class StartRequest:
    """A start URL and the page kind it goes to (``None``: the first kind)."""

    url: str
    page: str | None = None


@dataclass(frozen=True)
class SpiderSpec:
    """A spider, ready to run: start URLs, page kinds and crawl settings."""

    name: str
    description: str
    start: tuple[StartRequest, ...]
    pages: Mapping[str, PageSpec]
    settings: CrawlSettings
    constants: Mapping[str, Any] = field(default_factory=dict)
    url_field: str | None = None
    location: Location | None = None

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
        close = difflib.get_close_matches(name, list(self.spiders), n=1)
        if close:
            message = f"{message[:-1]}; did you mean {close[0]!r}?"
        raise SpiderNotFound(message)


SETTING_KEYS = tuple(f.name for f in fields(CrawlSettings))
PAGE_KEYS = ("pattern", "flags", "fields", "clean", "format", "follow", "callback")
SPIDER_KEYS = ("description", "start", "vars", "pages", "constants", "url_field")
TOP_KEYS = ("defaults", "spiders")


def load_spiders(path: str | Path) -> SpiderFile:
    """Load and validate every spider in ``path``; raise ``SpecError`` on the first problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
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
    reader = _Reader(filename)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        raise SpecError(
            f"this is not valid YAML: {problem}. Check the quoting and indentation here "
            "(patterns are safest in single quotes).",
            reader.location(mark) if mark else Location(filename, 1, 1),
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{filename}: this is not valid YAML: {exc}.") from None
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
        raise SpecError("the file has no 'spiders:' mapping.", reader.location(root.start_mark))
    spiders_node = top["spiders"][1]
    spiders: dict[str, SpiderSpec] = {}
    for name, (key_node, node) in reader.mapping(spiders_node, "spiders", None).items():
        spiders[name] = reader.spider(name, key_node, node, defaults)
    return SpiderFile(Path(filename), spiders)


T = TypeVar("T")


class _Reader:
    """Reads composed YAML nodes into spec objects, raising located ``SpecError``s."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._constructor = yaml.SafeLoader("")
        self.follow_targets: list[tuple[str, yaml.Node]] = []

    def location(self, mark: yaml.Mark) -> Location:
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def error(self, node: yaml.Node, message: str) -> SpecError:
        return SpecError(message, self.location(node.start_mark))

    # -- plain values ---------------------------------------------------------

    def value(self, node: yaml.Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self.error(
                node,
                f"{exc.problem}. Only plain YAML (strings, numbers, lists, mappings) "
                "is allowed here.",
            ) from None

    def typed(self, node: yaml.Node, kind: type[T] | tuple[type, ...], what: str, hint: str) -> T:
        value = self.value(node)
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            value = None  # YAML's yes/no are not numbers or strings here
        if not isinstance(value, kind):
            raise self.error(node, f"{what} must be {hint}, not {_describe(value)}.")
        return value  # type: ignore[return-value]

    def text(self, node: yaml.Node, what: str) -> str:
        return self.typed(node, str, what, "a string")

    def number(self, node: yaml.Node, what: str, kind: type, minimum: float) -> Any:
        hint = "a whole number" if kind is int else "a number"
        value = self.typed(node, (int, float) if kind is float else int, what, hint)
        if value < minimum:
            raise self.error(node, f"{what} must be at least {minimum}, not {value}.")
        return kind(value)

    def strings(self, node: yaml.Node, what: str) -> list[str]:
        """A string or a list of strings."""
        if isinstance(node, yaml.ScalarNode):
            return [self.text(node, what)]
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a string or a list of strings.")
        return [self.text(item, f"each entry of {what}") for item in node.value]

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return [node]

    def mapping(
        self, node: yaml.Node, what: str, allowed: tuple[str, ...] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key; unknown keys (when ``allowed`` is given) are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping (key: value lines).")
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.error(key_node, f"keys in {what} must be strings, not {key!r}.")
            if key in entries:
                raise self.error(key_node, f"{key!r} appears twice in {what}; keep one.")
            if allowed is not None and key not in allowed:
                raise self.error(key_node, _unknown_key(key, what, allowed))
            entries[key] = (key_node, value_node)
        return entries

    # -- spec objects ---------------------------------------------------------

    def settings(
        self,
        node: yaml.Node | dict[str, tuple[yaml.Node, yaml.Node]],
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
            elif key in ("retries", "max_redirects"):
                changes[key] = self.number(value, label, int, 0)
            elif key in ("timeout", "extract_timeout"):
                changes[key] = self.number(value, label, float, 0.001)
            elif key == "delay":
                changes[key] = self.number(value, label, float, 0)
            elif key in ("max_depth", "max_pages"):
                changes[key] = self.number(value, label, int, 0)
            elif key == "allowed_domains":
                domains = [d.lower().lstrip(".") for d in self.strings(value, label)]
                changes[key] = tuple(domains)
            elif key == "headers":
                headers = self.mapping(value, label, None)
                merged = dict(base.headers)
                for name, (_, header_node) in headers.items():
                    merged[name] = str(self.typed(header_node, (str, int, float), name, "text"))
                changes[key] = merged
        return _replace(base, changes)

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
                page_entries = self.mapping(page_node, f"{where}, page {page_name!r}", PAGE_KEYS)
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
        start = self.start(entries, where, pages)
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
                constants[key] = self.value(value)
        url_field = None
        if "url_field" in entries:
            url_field = self.text(entries["url_field"][1], f"{where}: url_field")
        return SpiderSpec(
            name=name,
            description=description,
            start=start,
            pages=pages,
            settings=settings,
            constants=constants,
            url_field=url_field,
            location=self.location(key_node.start_mark),
        )

    def start(
        self,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        where: str,
        pages: Mapping[str, PageSpec],
    ) -> tuple[StartRequest, ...]:
        variables: dict[str, list[Any]] = {}
        var_nodes: dict[str, yaml.Node] = {}
        if "vars" in entries:
            for key, (key_node, node) in self.mapping(
                entries["vars"][1], f"{where}: vars", None
            ).items():
                variables[key] = self.variable(node, f"{where}: vars: {key}")
                var_nodes[key] = key_node
        used: set[str] = set()
        requests: list[StartRequest] = []
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
                        raise self.error(parts["page"][1], _unknown_page(page, pages, where))
            template = self.text(url_node, f"{where}: start")
            names = [n for _, n, _, _ in string.Formatter().parse(template) if n]
            for name in names:
                if name not in variables:
                    raise self.error(
                        url_node,
                        f"{where}: start uses {{{name}}} but 'vars:' defines no {name!r}; "
                        "add it under vars (a list, or {range: [start, stop, step]}).",
                    )
            used.update(names)
            order = list(dict.fromkeys(names))
            for combination in itertools.product(*(variables[n] for n in order)):
                url = template.format(**dict(zip(order, combination, strict=True)))
                if not url.startswith(("http://", "https://")):
                    raise self.error(
                        url_node, f"{where}: start URL {url!r} must begin with http:// or https://."
                    )
                requests.append(StartRequest(url, page))
        for name, key_node in var_nodes.items():
            if name not in used:
                raise self.error(
                    key_node, f"{where}: vars defines {name!r} but no start URL uses {{{name}}}."
                )
        return tuple(requests)

    def variable(self, node: yaml.Node, what: str) -> list[Any]:
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
            values: list[Any] = list(range(*bounds))
        else:
            values = self.value(node)
            if not isinstance(values, list):
                values = [values]
        if not values:
            raise self.error(node, f"{what} gives no values, so no start URL would be made.")
        return values

    def page(
        self, name: str, entries: dict[str, tuple[yaml.Node, yaml.Node]], where: str
    ) -> PageSpec:
        pattern = None
        if "pattern" in entries:
            flags = self.flags(entries, where)
            pattern = self.compile_pattern(entries["pattern"][1], f"{where}: pattern", flags)
        callback = None
        if "callback" in entries:
            callback = self.callback_name(entries["callback"][1], where)
        if (
            pattern is None
            and callback is None
            and any(key in entries for key in ("fields", "clean", "format"))
        ):
            raise self.error(
                next(iter(entries.values()))[0],
                f"{where} has fields to clean but no 'pattern:' to capture them.",
            )
        field_names, group_index = self.field_names(pattern, entries, where)
        formats: dict[str, tuple[str, tuple[str, ...]]] = {}
        if "format" in entries:
            for key, (_, node) in self.mapping(
                entries["format"][1], f"{where}: format", None
            ).items():
                template = self.text(node, f"{where}: format: {key}")
                names = [u for _, u, _, _ in _parse_template(self, node, template, where) if u]
                for used in names:
                    if used not in field_names:
                        raise self.error(
                            node,
                            f"{where}: format {key!r} uses {{{used}}}, which no group "
                            f"captures{_did_you_mean(used, field_names)}.",
                        )
                formats[key] = (template, tuple(dict.fromkeys(names)))
        produced = tuple(field_names) + tuple(k for k in formats if k not in field_names)
        clean: dict[str, tuple[Processor, ...]] = {}
        raw_fields: set[str] = set()
        if "clean" in entries:
            for key, (key_node, node) in self.mapping(
                entries["clean"][1], f"{where}: clean", None
            ).items():
                if key not in produced:
                    raise self.error(
                        key_node,
                        f"{where}: clean names field {key!r}, which the pattern does not "
                        f"produce (it produces: {', '.join(produced) or 'nothing'})"
                        f"{_did_you_mean(key, produced)}.",
                    )
                processors, raw = self.processors(node, f"{where}: clean: {key}")
                clean[key] = processors
                if raw:
                    raw_fields.add(key)
        follow = tuple(
            self.follow_rule(item, f"{where}: follow")
            for item in (self.sequence(entries["follow"][1], "") if "follow" in entries else [])
        )
        return PageSpec(
            name=name,
            pattern=pattern,
            fields=tuple(field_names),
            group_index=tuple(group_index),
            clean=clean,
            raw_fields=frozenset(raw_fields),
            formats=formats,
            follow=follow,
            callback=callback,
        )

    def flags(self, entries: dict[str, tuple[yaml.Node, yaml.Node]], where: str) -> int:
        if "flags" not in entries:
            return 0
        node = entries["flags"][1]
        result = 0
        for flag in self.strings(node, f"{where}: flags"):
            name = FLAG_ALIASES.get(flag.upper(), flag.upper())
            if name not in FLAGS:
                raise self.error(
                    node,
                    f"{where}: unknown flag {flag!r}; use any of {', '.join(FLAGS)}"
                    f"{_did_you_mean(name, list(FLAGS))}.",
                )
            result |= FLAGS[name]
        return result

    def compile_pattern(self, node: yaml.Node, what: str, flags: int) -> regex.Pattern[str]:
        source = self.text(node, what)
        try:
            return regex.compile(source, flags | regex.VERSION0)
        except regex.error as exc:
            raise self.regex_error(node, what, source, exc) from None

    def regex_error(self, node: yaml.Node, what: str, source: str, exc: regex.error) -> SpecError:
        position = exc.pos if exc.pos is not None else 0
        mark = node.start_mark
        line, column = mark.line + 1, mark.column + 1
        style = getattr(node, "style", None)
        if "\n" not in source and style in ("'", '"', None):
            column += position + (1 if style else 0)
        pointer = f"\n    {source}\n    {' ' * position}^" if "\n" not in source else ""
        return SpecError(
            f"{what} is not a valid regular expression: {exc.msg} at position {position}."
            f"{pointer}\nFix the pattern there (in single quotes YAML keeps backslashes as "
            "they are; double quotes need them doubled).",
            Location(self.filename, line, column),
        )

    def field_names(
        self,
        pattern: regex.Pattern[str] | None,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        where: str,
    ) -> tuple[list[str], list[int | str]]:
        if pattern is None:
            return [], []
        named = sorted(pattern.groupindex.items(), key=lambda item: item[1])
        if "fields" in entries:
            node = entries["fields"][1]
            names = self.strings(node, f"{where}: fields")
            if named:
                raise self.error(
                    node,
                    f"{where}: the pattern has named groups "
                    f"({', '.join(n for n, _ in named)}), so 'fields:' is not needed; "
                    "remove it, or use only unnamed groups.",
                )
            expected = max(pattern.groups, 1)
            if len(names) != expected:
                groups = (
                    f"{pattern.groups} groups" if pattern.groups else "no groups (the whole match)"
                )
                raise self.error(
                    node,
                    f"{where}: fields names {len(names)} field(s) but the pattern has {groups}; "
                    f"give exactly {expected} name(s), one per group in order.",
                )
            duplicates = {n for n in names if names.count(n) > 1}
            if duplicates:
                raise self.error(node, f"{where}: fields names {sorted(duplicates)[0]!r} twice.")
            if pattern.groups == 0:
                return names, [0]
            return names, list(range(1, pattern.groups + 1))
        if named:
            return [n for n, _ in named], [n for n, _ in named]
        if pattern.groups == 0:
            return [WHOLE_MATCH_FIELD], [0]
        raise self.error(
            entries["pattern"][1],
            f"{where}: the pattern has {pattern.groups} unnamed group(s) but no 'fields:' "
            "list to name them; add fields: [name, ...] or use (?P<name>...) groups "
            "(write (?:...) for a group that should not capture).",
        )

    def processors(self, node: yaml.Node, what: str) -> tuple[tuple[Processor, ...], bool]:
        built: list[Processor] = []
        raw = False
        for item in self.sequence(node, what):
            if isinstance(item, yaml.MappingNode):
                parts = self.mapping(item, what, None)
                if len(parts) != 1:
                    raise self.error(item, f"{what}: write one processor per list entry.")
                name, (_, arg_node) = next(iter(parts.items()))
                argument = self.value(arg_node)
            else:
                name, arg_node, argument = self.text(item, what), item, None
            if name == "raw" and argument is None:
                raw = True
                continue
            if name not in PROCESSORS:
                raise self.error(
                    item,
                    f"{what}: unknown processor {name!r}{_did_you_mean(name, list(PROCESSORS))}"
                    f" (known: raw, {', '.join(PROCESSORS)}).",
                )
            try:
                built.append(PROCESSORS[name](argument))
            except ProcessorArgumentError as exc:
                raise self.error(arg_node, f"{what}: {name} {exc}.") from None
            except regex.error as exc:
                raise self.regex_error(arg_node, f"{what}: sub pattern", argument[0], exc) from None
        return tuple(built), raw

    def follow_rule(self, node: yaml.Node, where: str) -> FollowRule:
        parts = self.mapping(node, f"{where} entry", ("pattern", "to", "flags"))
        for key in ("pattern", "to"):
            if key not in parts:
                raise self.error(node, f"{where}: each rule needs '{key}:'.")
        flags = self.flags(parts, where)
        pattern = self.compile_pattern(parts["pattern"][1], f"{where}: pattern", flags)
        to = self.text(parts["to"][1], f"{where}: to")
        if "url" in pattern.groupindex:
            url_group: int | str = "url"
        elif pattern.groups == 1:
            url_group = 1
        elif pattern.groups == 0:
            url_group = 0
        else:
            raise self.error(
                parts["pattern"][1],
                f"{where}: the pattern has {pattern.groups} groups; name the one holding the "
                "link (?P<url>...).",
            )
        carry = tuple(name for name in pattern.groupindex if name != "url")
        self.follow_targets.append((to, parts["to"][1]))
        return FollowRule(pattern, to, url_group, carry)

    def check_follow_targets(self, pages: Mapping[str, PageSpec], where: str) -> None:
        for to, node in self.follow_targets:
            if to not in pages:
                raise self.error(node, _unknown_page(to, pages, where))
        self.follow_targets.clear()

    def callback_name(self, node: yaml.Node, where: str) -> str:
        name = self.text(node, f"{where}: callback")
        module, _, function = name.partition(":")
        if not (module and function and _is_dotted_name(module) and function.isidentifier()):
            raise self.error(
                node,
                f"{where}: callback {name!r} must be 'module:function', for example "
                "'spiders.maoyan:parse' for def parse(page) in spiders/maoyan.py.",
            )
        return name


def _parse_template(
    reader: _Reader, node: yaml.Node, template: str, where: str
) -> Iterator[tuple[str, str | None, str | None, str | None]]:
    try:
        return iter(list(string.Formatter().parse(template)))
    except ValueError as exc:
        raise reader.error(
            node, f"{where}: format {template!r} is not a valid template: {exc}."
        ) from None


def _replace(settings: CrawlSettings, changes: dict[str, Any]) -> CrawlSettings:
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values.update(changes)
    return CrawlSettings(**values)


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{value!r}"


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(key: str, what: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key {key!r} in {what}; did you mean {close[0]!r}?"
    return f"unknown key {key!r} in {what}; allowed keys are: {', '.join(allowed)}."


def _unknown_page(page: str, pages: Mapping[str, PageSpec], where: str) -> str:
    return (
        f"{where}: there is no page kind {page!r} (pages: {', '.join(pages)})"
        f"{_did_you_mean(page, pages)}."
    )
