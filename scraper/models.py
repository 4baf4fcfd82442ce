"""Small value types that travel through a crawl: ``Request`` in, ``Page`` out.

Records are plain ``dict``s (field name -> value) from extraction to export.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import httpx

Record = dict[str, Any]

PLAIN_HOST = re.compile(r"https?://(([a-z0-9.-]+)(?::[0-9]*)?)(?=[/?#]|\Z)")
"""A URL already lower-case up to its path: group 1 its netloc, group 2 its host. Most
URLs are: one match instead of ``urlsplit``, which costs several times more."""
_BASE_HREF = re.compile(rb"<base\s[^>]*?href\s*=\s*[\"']?([^\"'\s>]+)", re.I)


@dataclass(frozen=True)
class Request:
    """A page to fetch: its URL, the page kind that extracts it, and what it carries.

    ``page`` names a page kind of the spider (``None``: the spider's first kind);
    ``carry`` holds fields captured on the page that led here, added to every
    record this page yields; ``depth`` counts the links followed from a start URL.
    """

    url: str
    page: str | None = None
    depth: int = 0
    carry: Mapping[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        """The ``host[:port]`` this request goes to, as per-host limits count it.

        A URL that cannot be parsed has the host ``""`` (its fetch fails on its own).
        """
        plain = PLAIN_HOST.match(self.url)
        if plain:  # most URLs: one match instead of a split
            return plain[1]
        try:
            return urlsplit(self.url).netloc.lower()
        except ValueError:
            return ""


@dataclass(frozen=True)
class Page:
    """A fetched page, decoded: what extraction and user callbacks receive.

    ``url`` is the final URL after redirects; ``records`` holds what the page
    kind's pattern extracted (empty when it has none), so that a callback run
    after the pattern can build on it.
    """

    url: str
    status: int
    raw_headers: Sequence[tuple[bytes, bytes]]
    content: bytes
    text: str
    encoding: str
    request: Request
    records: tuple[Record, ...] = ()

    @cached_property
    def headers(self) -> httpx.Headers:
        """The response headers, as ``httpx.Headers`` (made when first asked for)."""
        import httpx

        return httpx.Headers(list(self.raw_headers))

    @cached_property
    def base_url(self) -> str:
        """The URL relative links resolve against: ``<base href>`` if the page has one."""
        found = _BASE_HREF.search(self.content, 0, 65536)
        if found:
            try:
                return urljoin(self.url, found.group(1).decode("ascii", "replace"))
            except ValueError:  # a <base href> that is no URL: the page's own URL serves
                pass
        return self.url

    def urljoin(self, href: str) -> str:
        """Make ``href`` absolute against this page (its ``<base href>`` when present).

        ``href`` is taken as it stands in the HTML, so entities such as ``&amp;`` are
        decoded first. Raises ``ValueError`` for a link that cannot be parsed into a
        URL, such as ``http://[oops/``.
        """
        return urljoin(self.base_url, html.unescape(href.strip()))
