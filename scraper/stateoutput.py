"""A crawl state and the output file it vouches for (``scraper run -o PATH --resume``).

The state (``scraper.state``) notes, with each page it marks done, the output's
size and a checksum of its last bytes before that size. Here the two are paired:
a state at the output's own path is refused, and so is a state of --incremental
re-crawls where a run would write their output anew; a run's state is opened for
its output, and resuming cuts the output back to what the state vouches for,
once its bytes up to there are found unchanged. A SQLite output is never cut like
a file: it rewinds itself (``scraper.output.sqlite``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from scraper.errors import ScraperError
from scraper.state import CrawlState, tail_digest

log = logging.getLogger("scraper")


def open_state(path: Path, output: Path, spider: str, *, in_bytes: bool) -> CrawlState:
    """The state of the crawl writing ``output``: resumed if ``path`` exists, else new.

    Resuming cuts ``output`` back to what the state vouches for (records of
    pages not marked done are fetched again), once its bytes up to there are
    found unchanged; a new state starts a new output. An output that does not
    count its size ``in_bytes`` (a SQLite table, which counts pages) is neither
    cut nor removed here: it is rewound to ``output_size`` by its own means.
    """
    check_paths(path, output)
    if in_bytes and output.exists() and not stat.S_ISREG(output.stat().st_mode):
        raise ScraperError(
            f"--resume needs the output to be a regular file, and {output} is not one "
            "(a pipe or a device cannot be cut back to the last complete page)."
        )
    resuming = path.is_file()
    state = CrawlState(path, spider, output if in_bytes else None)
    if not resuming:
        if in_bytes:
            output.unlink(missing_ok=True)
        return state
    if in_bytes:
        try:
            cut_back(state)
        except ScraperError:
            state.close()
            raise
    # Resuming is the normal use of --resume, a finished crawl included: not a warning.
    done, left = state.progress()
    if left:
        log.info(
            "resuming from %s: %d pages done, %d to fetch (pending or failed), "
            "then any start URL not requested yet",
            path,
            done,
            left,
        )
    else:
        log.info(
            "resuming from %s: %d pages done, none pending or failed; only start URLs "
            "not requested yet are fetched (none, if the crawl had finished)",
            path,
            done,
        )
    return state


def cut_back(state: CrawlState) -> None:
    """Cut ``state.output`` back to the size ``state`` vouches for, after checking that
    it is the output noted (its size, its last bytes). A missing output the state
    vouches for no bytes of is left to be written anew."""
    output, size, tail = state.output, state.output_size, state.output_tail
    assert output is not None
    if size == 0 and not output.exists():
        return
    have = output.stat().st_size if output.exists() else 0
    changed = have < size
    if not changed and tail is not None:
        with output.open("rb") as file:
            changed = tail_digest(file.fileno(), size) != tail
    if changed:
        raise ScraperError(
            f"{output} is not the output that {state.path} vouches for: its first "
            f"{size} bytes changed since the last run (edited, cut or replaced), so "
            f"resuming could cut a line or lose records. To start over, delete "
            f"{state.path} (the next run writes {output} anew); to keep this "
            f"output, move it away first."
        )
    os.truncate(output, size)


def check_paths(path: Path, output: Path) -> None:
    """Refuse a state file that is the output itself (each would overwrite the other)."""
    if _same_file(path, output):
        raise ScraperError(
            f"--state {path} is the output file itself; give the state its own path "
            f"(the default is {output}.state)."
        )


def check_fresh(path: Path, output: Path) -> None:
    """Before a run that writes ``output`` anew (and removes its state): refuse a state
    that keeps the history of --incremental re-crawls of it."""
    if _kind(path) == "incremental":
        raise ScraperError(
            f"{path} keeps the history of --incremental re-crawls of {output}: add "
            f"--incremental to add to it, or delete {path} to start over (a run without "
            f"it writes {output} anew)."
        )


def _kind(path: Path) -> str | None:
    """The kind of run a state file was kept for ("resume", "incremental"), if it can be
    read (read-only: nothing is created or changed)."""
    import sqlite3

    if not path.is_file():
        return None
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            row = db.execute("select value from meta where name = 'kind'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
