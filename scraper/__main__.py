"""``python -m scraper``: the same as the ``scraper`` command."""

from scraper.cli import run

run()
