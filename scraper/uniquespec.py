"""``unique:``: the fields whose values a record may not share with one written before.

``UniqueReader`` reads a ``unique:`` (of a spider, or of one of its page kinds)
and, once the whole spider is known, refuses a field that the records it applies
to do not have. Dropping the records that repeat a key is ``scraper.frontier``'s
(``UniqueRecords``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from scraper.yamlnodes import NodeReader, did_you_mean

if TYPE_CHECKING:
    from scraper.spec import SpiderSpec


class UniqueReader(NodeReader):
    """Reads ``unique:`` entries, and checks them once the spider is known."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.unique_nodes: dict[str, list[yaml.Node]] = {}
        """The ``unique:`` entries of each page kind read, checked once the spider is known."""

    def unique(self, node: yaml.Node, what: str) -> tuple[tuple[str, ...], list[yaml.Node]]:
        """The field names of a ``unique:`` (a name or a list; ``[]`` for none), with
        the node of each, for ``check_unique``."""
        items = self.sequence(node, what)
        names = tuple(self.text(item, f"each entry of {what}") for item in items)
        for index, name in enumerate(names):
            if name in names[:index]:
                raise self.error(items[index], f"{what} names {name!r} twice; keep one.")
        return names, items

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
            has = record_fields(spider, kind)
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


def record_fields(spider: SpiderSpec, kind: str) -> tuple[str, ...] | None:
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
