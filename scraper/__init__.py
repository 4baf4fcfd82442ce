"""scraper: regex-driven web scraping. Spiders in YAML, parallel fetching, JSON Lines out.

The public API is what ``__all__`` lists; the rest is internal. From Python::

    for record in scraper.crawl("spiders.yaml", "maoyan", offline=True): ...

``crawl``, ``acrawl``, ``run`` and ``load_spiders`` are described in
``scraper.api``; they import the crawl's modules when called, so importing
``scraper`` stays quick.
"""

from scraper.api import RunResult, Spiders, acrawl, crawl, load_spiders, run
from scraper.errors import (
    CallbackError,
    CassetteError,
    FetchError,
    OutputError,
    ScraperError,
    SpecError,
    SpiderNotFound,
)
from scraper.models import Page, Record, Request

__all__ = [
    "CallbackError",
    "CassetteError",
    "FetchError",
    "OutputError",
    "Page",
    "Record",
    "Request",
    "RunResult",
    "ScraperError",
    "SpecError",
    "SpiderNotFound",
    "Spiders",
    "__version__",
    "acrawl",
    "crawl",
    "load_spiders",
    "run",
]

__version__ = "0.1.0"
