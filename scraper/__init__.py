"""scraper: regex-driven web scraping. Spiders in YAML, parallel fetching, JSON Lines out.

The public API is what ``__all__`` lists; the rest is internal.
"""

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
    "ScraperError",
    "SpecError",
    "SpiderNotFound",
    "__version__",
]

__version__ = "0.1.0"
