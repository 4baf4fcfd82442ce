"""Follow links: made absolute against their page, then kept or skipped by the
spider's ``only``/``skip`` filters.

A link that goes nowhere never fails its page: it is counted in
``Extraction.skipped`` as ``bad url`` (it cannot be parsed into a URL), ``not in
only``, ``skip`` or ``filter timeout`` (the filters ran out of the page's
``extract_timeout``; see ``scraper.extract``).
"""

from __future__ import annotations

import time
from collections import Counter
from urllib.parse import urldefrag, urljoin, urlsplit

import regex

from scraper.deadline import ExtractTimeout
from scraper.models import Page, Request
from scraper.spec import CrawlSettings


def absolute(page: Page, href: str, html_text: bool = True) -> str | None:
    """``href`` made absolute against ``page``, without its fragment; ``None`` when it
    cannot be parsed into a URL (``http://[oops/``, a port that is no number).

    ``html_text``: ``href`` is as written in HTML, so entities are decoded first."""
    try:
        joined = page.urljoin(href) if html_text else urljoin(page.base_url, href.strip())
        url, _ = urldefrag(joined)
        _ = urlsplit(url).port  # reading the port is what raises for a bad one
    except ValueError:
        return None
    return url


def filtered(
    links: list[Request],
    settings: CrawlSettings,
    skipped: Counter[str],
    deadline: float,
    final: bool,
    concurrent: bool,
) -> list[Request]:
    """The links that pass the ``only``/``skip`` filters, all decided by ``deadline``.

    The others are counted in ``skipped``; those still undecided at the deadline as
    ``filter timeout`` (or, unless ``final``, an ``ExtractTimeout`` is raised).
    """
    if not (settings.only or settings.skip) or not links:
        return links
    kept: list[Request] = []
    for index, link in enumerate(links):
        try:
            if settings.only and not any(
                _search(p, link.url, deadline, concurrent) for p in settings.only
            ):
                skipped["not in only"] += 1
            elif any(_search(p, link.url, deadline, concurrent) for p in settings.skip):
                skipped["skip"] += 1
            else:
                kept.append(link)
        except TimeoutError:
            if not final:
                raise ExtractTimeout("the only/skip filters") from None
            skipped["filter timeout"] += len(links) - index
            break
    return kept


def _search(pattern: regex.Pattern[str], text: str, deadline: float, concurrent: bool) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(pattern.pattern)
    return pattern.search(text, timeout=remaining, concurrent=concurrent) is not None
