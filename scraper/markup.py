"""The markup processors: ``text`` and ``paragraphs`` turn a captured piece of HTML
into plain text, as a browser would show it.

The value is first made XML-safe (controls and references to characters XML 1.0
cannot hold become spaces: lxml refuses them), then parsed by lxml as an HTML
fragment, scripts and styles dropped. A value with no ``<`` and no ``&`` is not
parsed at all: its whitespace is collapsed.
"""

from __future__ import annotations

from typing import Any

import regex

from scraper.models import Page

_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "hr",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "td",
        "th",
        "tr",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
    ]
)


_NOT_XML = regex.compile(
    "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ud800-\\udfff\\ufffe\\uffff]"
    "|&#(?:([0-9]+)|[xX]([0-9a-fA-F]+));?"
)
"""Characters XML 1.0 cannot hold, and character references: lxml refuses a string
holding such a character, and one it decodes from a reference."""


def _xml_safe(match: regex.Match[str]) -> str:
    decimal, hexadecimal = match.groups()
    digits = decimal or hexadecimal
    if digits is None or len(digits) > 8:  # a control, or past any code point
        return " "
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD:
        return match.group()
    if 0x10000 <= code <= 0x10FFFF:
        return match.group()
    return " "


def _fragment(value: str) -> Any:
    """``value`` parsed as an HTML fragment under one ``<div>``, scripts and styles dropped.

    lxml reads it as a browser would (a '>' inside an attribute, tags left open).
    ``value`` must be XML-safe (see ``_NOT_XML``).
    """
    from lxml import html as lxml_html

    root = lxml_html.fragment_fromstring(value, create_parent="div")
    for element in list(root.iter("script", "style")):
        element.drop_tree()
    return root


def text(value: Any, page: Page) -> Any:
    """The ``text`` processor: ``value`` with tags and scripts out, entities decoded and
    whitespace collapsed; block elements (``<p>``, ``<td>``, ``<br>`` ...) separate words."""
    if not isinstance(value, str):
        return value
    # Controls separate words where they stand; XML (so lxml) cannot hold them.
    value = _NOT_XML.sub(_xml_safe, value)
    if "<" not in value and "&" not in value:
        return " ".join(value.split())
    root = _fragment(value)
    for element in root.iter():
        if element.tag in _BLOCK_TAGS:  # block tags separate words: <td>A</td><td>B</td>
            element.tail = " " + (element.tail or "")
            element.text = " " + (element.text or "")
    return " ".join(root.text_content().split())


_LINE, _BLOCK = "\n", "\r"
"""What ``paragraphs`` puts in the text for a ``<br>`` (a line ends) and at each side
of a block element (a line ends unless one just did): the page's own line breaks
are spaces by then, as in a browser."""
_NEWLINES = regex.compile("\r\n?|\n")
_CELL_TAGS = frozenset(["td", "th"])


def paragraphs(value: Any, page: Page) -> Any:
    """The ``paragraphs`` processor: as ``text``, but one line per block element or
    ``<br>``, a blank line kept between ``<br>``s, and ``<pre>``'s own line breaks kept."""
    if not isinstance(value, str):
        return value
    value = _NOT_XML.sub(_xml_safe, value)
    if "<" not in value and "&" not in value:
        return " ".join(value.split())
    root = _fragment(value)
    # the elements themselves, not their ids: lxml makes a new proxy once one is freed
    preformatted = {inner for pre in root.iter("pre") for inner in pre.iter()}
    for element in root.iter():
        inside_pre = element in preformatted
        if element.text:
            element.text = _NEWLINES.sub(_LINE if inside_pre else " ", element.text)
        if element.tail:
            in_pre = inside_pre and element.tag != "pre"
            element.tail = _NEWLINES.sub(_LINE if in_pre else " ", element.tail)
        if element.tag == "br":
            element.tail = _LINE + (element.tail or "")
        elif element.tag in _CELL_TAGS:  # the cells of a row share its line
            element.tail = " " + (element.tail or "")
        elif element.tag in _BLOCK_TAGS:
            element.text = _BLOCK + (element.text or "")
            element.tail = _BLOCK + (element.tail or "")
    lines: list[str] = []
    for line in root.text_content().split(_LINE):
        # a line of blocks alone is no line; a blank one between <br>s is one
        parts = [" ".join(part.split()) for part in line.split(_BLOCK)]
        words = [part for part in parts if part]
        if words:
            lines.extend(words)
        elif lines and lines[-1]:
            lines.append("")
    if lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)
