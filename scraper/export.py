"""Moved to ``scraper.output``; these names stay for the modules and tests that import
them from here (``redisfrontier`` encodes its stream records with ``_ENCODER``)."""

from scraper.output import RecordSink
from scraper.output.file import ENCODER as _ENCODER
from scraper.output.file import rejection as _rejection
from scraper.output.jsonl import JsonLinesWriter
from scraper.output.lock import RunLock

__all__ = ["_ENCODER", "JsonLinesWriter", "RecordSink", "RunLock", "_rejection"]
