"""A page as ``scraper learn`` reads it: elements, text nodes, and where a value is.

The page is tokenised once, tolerantly (unclosed ``<li>``, ``<p>``, ``<td>`` close
when the next one opens; stray closing tags are ignored), into a tree of
elements whose every text node and attribute keeps its offsets in the page
text, because the pattern learned from them runs on that text. The rendered text
(entities decoded, whitespace runs collapsed, tags removed, block elements
separating words) is kept with a map from each of its characters back to the
page, so a value as a person reads it is found even when markup splits it
(``9.</i><i class="fraction">5``) or entities spell it (``&nbsp;``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from urllib.parse import urljoin

import regex

_TOKEN = regex.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<(?P<raw>script|style|textarea|title)\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>.*?(?:</(?P=raw)\s*>|\Z)"
    r"|</(?P<close>[A-Za-z][\w:-]*)\s*>"
    r"|<(?P<open>[A-Za-z][\w:-]*)(?P<attrs>(?:[^>\"']|\"[^\"]*\"|'[^']*')*)>"
    r"|<[!?][^>]*>",
    regex.S | regex.I,
)
_ATTR = regex.compile(
    r"(?P<name>[^\s\"'>/=]+)(?:\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s>\"']+)))?"
)
_ENTITY = regex.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "option",
    ]
)
_CLOSED_BY_SIBLING = {
    "li": {"li"},
    "dd": {"dd", "dt"},
    "dt": {"dd", "dt"},
    "tr": {"tr"},
    "td": {"td", "th", "tr"},
    "th": {"td", "th", "tr"},
    "p": {"p", "div", "ul", "ol", "dl", "table", "h1", "h2", "h3", "h4", "h5", "h6"},
    "option": {"option"},
}
_LIST_BOUNDARY = frozenset(["ul", "ol", "dl", "table", "tbody", "thead", "tfoot", "select", "div"])


@dataclass(frozen=True)
class Attr:
    """An attribute whose value is quoted: its value's span inside the quotes."""

    name: str
    start: int
    end: int
    quote: str


@dataclass(eq=False)
class TextNode:
    """A text node: its span in the page and in the rendered text."""

    start: int
    end: int
    parent: Element
    index: int  # among the page's non-blank text nodes
    shown_start: int = 0
    shown_end: int = 0


@dataclass(eq=False)
class Element:
    """An element: where it opens and ends, its children, attributes and text nodes."""

    tag: str
    start: int
    open_end: int
    parent: Element | None
    attrs: dict[str, Attr] = field(default_factory=dict)
    end: int = -1
    children: list[Element] = field(default_factory=list)
    texts: list[TextNode] = field(default_factory=list)  # direct, non-blank

    @property
    def cls(self) -> str:
        """The first class name: what tells sibling elements of one tag apart."""
        return self._first_class

    _first_class: str = ""

    def ancestors(self) -> list[Element]:
        """This element and those enclosing it, innermost first."""
        chain: list[Element] = []
        node: Element | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain


@dataclass(frozen=True)
class Occurrence:
    """One place an example value is found: text (maybe split by tags) or an attribute."""

    start: int  # the value's span in the page (an attribute's: inside the quotes)
    end: int
    element: Element  # the attribute's element, or the first text node's parent
    attr: str | None = None
    first: TextNode | None = None
    last: TextNode | None = None
    urljoined: bool = False  # the attribute is a relative link the example gives absolute


class HtmlPage:
    """A decoded page, parsed for learning."""

    def __init__(self, url: str, text: str) -> None:
        self.url = url
        self.text = text
        self.root = Element("#root", 0, 0, None, end=len(text))
        self.elements: list[Element] = []
        self.texts: list[TextNode] = []
        shown: list[str] = []
        self.shown_spans: list[tuple[int, int]] = []
        self._parse(shown)
        self.shown = "".join(shown)

    def _parse(self, shown: list[str]) -> None:
        stack = [self.root]
        position = 0
        for token in _TOKEN.finditer(self.text):
            if token.start() > position:
                self._text(position, token.start(), stack[-1], shown)
            position = token.end()
            name = (token.group("open") or token.group("raw") or "").lower()
            closing = (token.group("close") or "").lower()
            if name:
                while self._close_implied(stack, name, token.start()):
                    pass
                element = Element(name, token.start(), token.end(), stack[-1])
                self._attributes(element, token)
                stack[-1].children.append(element)
                self.elements.append(element)
                if name in BLOCK:
                    self._space(token.start(), token.end(), shown)
                raw = token.group("raw") is not None
                if raw or name in VOID or token.group(0).endswith("/>"):
                    element.end = token.end()
                else:
                    stack.append(element)
            elif closing:
                for depth in range(len(stack) - 1, 0, -1):
                    if stack[depth].tag == closing:
                        for element in stack[depth + 1 :]:
                            element.end = token.start()
                        stack[depth].end = token.end()
                        del stack[depth:]
                        break
                if closing in BLOCK:
                    self._space(token.start(), token.end(), shown)
        if position < len(self.text):
            self._text(position, len(self.text), stack[-1], shown)
        for element in stack[1:]:
            element.end = len(self.text)

    @staticmethod
    def _close_implied(stack: list[Element], name: str, where: int) -> bool:
        """Close the element that opening ``name`` ends (``<li>`` an open ``<li>``)."""
        for depth in range(len(stack) - 1, 0, -1):
            open_tag = stack[depth].tag
            if name in _CLOSED_BY_SIBLING.get(open_tag, ()):
                for element in stack[depth:]:
                    element.end = where
                del stack[depth:]
                return True
            if open_tag in _LIST_BOUNDARY or open_tag == name:
                return False
        return False

    def _attributes(self, element: Element, token: regex.Match[str]) -> None:
        if token.group("attrs") is None:
            return
        offset = token.start("attrs")
        for found in _ATTR.finditer(token.group("attrs")):
            name = found.group("name").lower()
            for group, quote in (("dq", '"'), ("sq", "'")):
                if found.group(group) is not None and name not in element.attrs:
                    start, end = found.span(group)
                    element.attrs[name] = Attr(name, offset + start, offset + end, quote)
            if name == "class":
                value = found.group("dq") or found.group("sq") or found.group("bare") or ""
                element._first_class = (value.split() or [""])[0]

    def _space(self, start: int, end: int, shown: list[str]) -> None:
        if shown and shown[-1] != " ":
            shown.append(" ")
            self.shown_spans.append((start, end))

    def _text(self, start: int, end: int, parent: Element, shown: list[str]) -> None:
        first = len(shown)
        position = start
        for found in [*_ENTITY.finditer(self.text, start, end), None]:
            stop = found.start() if found else end
            for offset in range(position, stop):
                self._char(self.text[offset], offset, offset + 1, shown)
            if found is None:
                break
            decoded = html.unescape(found.group())
            if decoded == found.group():
                decoded = found.group()[0]
                position = found.start() + 1
                self._char(decoded, found.start(), position, shown)
                continue
            for char in decoded:
                self._char(char, found.start(), found.end(), shown)
            position = found.end()
        if "".join(shown[first:]).strip():
            node = TextNode(start, end, parent, len(self.texts), first, len(shown))
            self.texts.append(node)
            parent.texts.append(node)

    def _char(self, char: str, start: int, end: int, shown: list[str]) -> None:
        if char.isspace():
            self._space(start, end, shown)
        else:
            shown.append(char)
            self.shown_spans.append((start, end))

    def shown_text(self, node: TextNode) -> str:
        """The node's text as a person reads it, stripped."""
        return self.shown[node.shown_start : node.shown_end].strip()

    def attr_value(self, attr: Attr) -> str:
        """The attribute's value as a person reads it."""
        return normalize(html.unescape(self.text[attr.start : attr.end]))

    def find(self, value: str) -> list[Occurrence]:
        """Every place ``value`` (as a person reads it) is found, in page order."""
        wanted = normalize(value)
        if not wanted:
            return []
        found: list[Occurrence] = []
        where = self.shown.find(wanted)
        owners = self._owners()
        while where >= 0:
            end = where + len(wanted)
            before = self.shown[where - 1] if where else " "
            after = self.shown[end] if end < len(self.shown) else " "
            first, last = owners.get(where), owners.get(end - 1)
            if first and last and _apart(before, wanted[0]) and _apart(wanted[-1], after):
                start = self.shown_spans[where][0]
                stop = self.shown_spans[end - 1][1]
                found.append(Occurrence(start, stop, first.parent, first=first, last=last))
            where = self.shown.find(wanted, where + 1)
        link = wanted.startswith(("http://", "https://", "/"))
        for element in self.elements:
            for attr in element.attrs.values():
                shown = self.attr_value(attr)
                joined = False
                if shown != wanted and link and shown:
                    try:
                        joined = urljoin(self.url, shown) == wanted
                    except ValueError:
                        joined = False
                if shown == wanted or joined:
                    found.append(
                        Occurrence(attr.start, attr.end, element, attr.name, None, None, joined)
                    )
        return sorted(found, key=lambda o: o.start)

    def _owners(self) -> dict[int, TextNode]:
        if not hasattr(self, "_owner_map"):
            owner_map: dict[int, TextNode] = {}
            for node in self.texts:
                for index in range(node.shown_start, node.shown_end):
                    owner_map[index] = node
            self._owner_map = owner_map
        return self._owner_map

    def texts_between(self, first: TextNode, last: TextNode) -> list[TextNode]:
        """The non-blank text nodes from ``first`` to ``last``, both included."""
        return self.texts[first.index : last.index + 1]


def normalize(value: str) -> str:
    """A value as compared: whitespace runs (``&nbsp;`` included) one space, stripped."""
    return " ".join(value.split())


def _apart(left: str, right: str) -> bool:
    """Whether a value may begin or end between ``left`` and ``right``: not inside a
    number or a word of ASCII letters ("1" is not found in "1581963")."""
    return not (left.isascii() and right.isascii() and left.isalnum() and right.isalnum())
