"""robots.txt: fetched once per host and crawl, read with Protego, never in the way.

``RobotsRules.check(url)`` says whether our user agent may fetch ``url`` and what
``Crawl-delay`` its host asks for. Whatever a host serves as robots.txt (nothing,
an error, 8 MB of rules, a Crawl-delay of days), the check answers and never raises.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scraper.errors import FetchError, describe
from scraper.fetch import MAX_BACKOFF, Fetcher
from scraper.models import Request

if TYPE_CHECKING:
    from protego import Protego

log = logging.getLogger("scraper")

ROBOTS_MAX_BYTES = 500 * 1024
"""robots.txt is read up to this size and the rest ignored, as Google documents."""
ROBOTS_INLINE_RULES = 1000
"""Up to this many rules, a URL is checked on the event loop (microseconds); past it,
in a thread: 500 KiB of wildcard rules cost Protego 40-60 ms a URL."""


SharedRobots = Callable[[str, Callable[[], Awaitable[str | None]]], Awaitable[str | None]]
"""``shared(origin, fetch)``: the robots.txt text of ``origin`` for a crawl shared by many
processes, which ``fetch()`` gets once for all of them (``RedisFrontier.robots_txt``)."""


class RobotsRules:
    """robots.txt of each host, fetched once per crawl and read with Protego.

    A robots.txt that cannot be fetched or read (404, 5xx after retries, an
    error, anything) allows everything, as most crawlers do; its failure is
    logged, not counted. Only its first ``ROBOTS_MAX_BYTES`` are read, and they
    are parsed off the event loop, as are the checks against a large rule set.
    A ``Crawl-delay`` over ``MAX_BACKOFF`` is cut to it (with a warning). With
    ``shared``, the text is fetched once for all the processes of a crawl.
    """

    def __init__(self, fetcher: Fetcher, shared: SharedRobots | None = None) -> None:
        self._fetcher = fetcher
        self._shared = shared
        self._user_agent = fetcher.settings.user_agent
        self._rules: dict[str, tuple[Protego | None, float, bool]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # One thread at a time: each more would take its turn at the GIL before the loop.
        self._thread = asyncio.Semaphore(1)

    async def check(self, url: str) -> tuple[bool, float]:
        """Whether robots.txt lets our user agent fetch ``url``, and the host's
        ``Crawl-delay`` for our user agent (0 when it sets none). Never raises."""
        try:
            rules, delay, large = await self._rules_for(url)
            if rules is None:
                return True, delay
            if large:
                async with self._thread:
                    allowed = await asyncio.to_thread(rules.can_fetch, url, self._user_agent)
                return allowed, delay
            return rules.can_fetch(url, self._user_agent), delay
        except Exception as exc:
            log.info("robots.txt rules cannot be applied to %s (%s): allowed", url, describe(exc))
            return True, 0.0

    async def _rules_for(self, url: str) -> tuple[Protego | None, float, bool]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in self._rules:
            return self._rules[origin]
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._rules:
                self._rules[origin] = await self._fetch(origin + "/robots.txt")
        return self._rules[origin]

    async def _fetch(self, url: str) -> tuple[Protego | None, float, bool]:
        try:
            if self._shared is None:
                page = await self._fetcher.fetch(Request(url), truncate_at=ROBOTS_MAX_BYTES)
                text = page.text
            else:
                shared = await self._shared(
                    url.removesuffix("/robots.txt"), lambda: self._text(url)
                )
                if shared is None:
                    return None, 0.0, False
                text = shared
            async with self._thread:
                rules, delay = await asyncio.to_thread(_parse_robots, text, self._user_agent)
        except FetchError as failure:
            log.info("no robots.txt rules from %s (%s): all allowed", url, failure.reason)
            return None, 0.0, False
        except Exception as exc:
            log.info("no robots.txt rules from %s (%s): all allowed", url, describe(exc))
            return None, 0.0, False
        if delay > MAX_BACKOFF:
            log.warning(
                "%s asks for Crawl-delay: %g; waiting %g s between its pages instead",
                url,
                delay,
                MAX_BACKOFF,
            )
            delay = MAX_BACKOFF
        return rules, delay, text.count("\n") > ROBOTS_INLINE_RULES

    async def _text(self, url: str) -> str | None:
        """robots.txt at ``url`` for the crawl shared with other processes; ``None``: none."""
        try:
            page = await self._fetcher.fetch(Request(url), truncate_at=ROBOTS_MAX_BYTES)
        except FetchError as failure:
            log.info("no robots.txt rules from %s (%s): all allowed", url, failure.reason)
            return None
        return page.text


def _parse_robots(text: str, user_agent: str) -> tuple[Protego, float]:
    """robots.txt's rules and our ``Crawl-delay`` (0 when none, or not a number)."""
    from protego import Protego

    rules = Protego.parse(text)
    delay = rules.crawl_delay(user_agent)
    return rules, float(delay) if delay is not None and math.isfinite(delay) and delay > 0 else 0.0
