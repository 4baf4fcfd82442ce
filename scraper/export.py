"""Moved to ``scraper.output``: these names stay for the modules and tests that still
import them from here (``redisfrontier`` encodes its stream records with ``_ENCODER``).
New code imports from ``scraper.output``; once nothing imports from here, delete this."""

from scraper.output.file import ENCODER as _ENCODER
from scraper.output.file import rejection as _rejection
from scraper.output.jsonl import JsonLinesWriter

__all__ = ["_ENCODER", "JsonLinesWriter", "_rejection"]
