"""The exceptions scraper raises, and what each means to a user.

::

    ScraperError                 anything scraper reports to a user (exit code 2)
    ├── SpecError                a spiders.yaml that cannot be used; knows file:line:col
    │   ├── SpiderNotFound       `scraper run NAME` with a NAME the file does not define
    │   └── CallbackError        a `module:function` callback that cannot be imported
    ├── CassetteError            a cassette that is missing or cannot be read
    └── OutputError              an output that cannot be written: path, disk (exit code 1)

    FetchError                   one page could not be fetched; counted by ``reason``,
                                 never stops a crawl (not a ScraperError: it never
                                 reaches the user as a message of its own)

Every message is one paragraph a user can act on: what is wrong, where, and what
to change. ``scraper.cli`` is the one place that turns these into text on stderr
and an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass


class ScraperError(Exception):
    """Base of every error shown to the user; ``exit_code`` is what the CLI exits with."""

    exit_code = 2


@dataclass(frozen=True)
class Location:
    """A place in a YAML file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(ScraperError):
    """A spider file that cannot be loaded; the message starts with ``file:line:col``."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class SpiderNotFound(SpecError):
    """The named spider is not defined in the spider file."""


class CallbackError(SpecError):
    """A ``callback: module:function`` that does not name an importable function."""


class CassetteError(ScraperError):
    """A cassette that cannot be replayed: missing file, or a request it does not hold."""


class OutputError(ScraperError):
    """The output cannot be written (unwritable path, full disk)."""

    exit_code = 1


class FetchError(Exception):
    """One page failed; ``reason`` is the short key it is counted under in the stats."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception (the first of an exception group), for a log line."""
    inner = getattr(exc, "exceptions", None)  # an exception group, from anyio's task groups
    if isinstance(inner, tuple) and inner and isinstance(inner[0], BaseException):
        return describe(inner[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
