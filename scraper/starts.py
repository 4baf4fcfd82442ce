"""A spider's start URLs: templates filled from ``vars:``, made one at a time.

``StartReader`` reads ``start:`` and ``vars:`` (each var a list of values or a
``{range: [...]}``), checking that templates and vars fit, how many URLs they
make and how many hosts a var in the host can reach. ``StartURLs`` makes the
URLs as they are iterated, so a range of a million values costs no memory.
"""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from scraper.followspec import unknown_page
from scraper.yamlnodes import Entries, NodeReader

if TYPE_CHECKING:
    from scraper.pagespec import PageSpec
    from scraper.spec import CrawlSettings

MAX_START_URLS = 100_000_000
MAX_VARS = 100
MAX_HOST_VALUES = 10_000
"""Hosts a start template with a variable in its host may make when ``allowed_domains``
is not given: they are worked out before the first request, one by one."""


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


class StartReader(NodeReader):
    """Reads a spider's start URLs and the vars they use."""

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
