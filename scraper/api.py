"""Using scraper from Python: ``crawl``, ``acrawl``, ``run`` and ``load_spiders``.

::

    for record in scraper.crawl("spiders.yaml", "maoyan", offline=True): ...
    result = scraper.run("spiders.yaml", "books", output="books.db")
    async for record in scraper.acrawl(spiders, "douban", concurrency=4): ...

Each takes the spiders as ``load_spiders`` does (a path, YAML text, a dict, or
what ``load_spiders`` returned) and a spider's name; keyword arguments named as
the settings (``concurrency=4``, ``max_pages=3``) override the spider's for this
call and are checked as the spider file's are. Errors are the package's
exceptions (``scraper.errors``), with the messages ``scraper`` prints.

The crawl itself is ``scraper.embed``'s: this module is imported with
``scraper``, so it imports the crawl's modules only when a function is called.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from scraper.errors import SpecError

if TYPE_CHECKING:
    from scraper.embed import Job
    from scraper.models import Record
    from scraper.output import OutputOptions
    from scraper.spec import CrawlSettings, SpiderFile, SpiderSpec
    from scraper.stats import CrawlStats

SpiderSource = Union[str, "os.PathLike[str]", Mapping[str, Any]]
"""A spider file's path, its YAML text (a str with a line break), or the same as a dict."""

_CRAWL_OPTIONS = ("offline", "cassette")


@dataclass(frozen=True, eq=False)
class Spiders(Mapping[str, "SpiderSpec"]):
    """Spiders loaded by ``load_spiders``: a read-only mapping of name -> ``SpiderSpec``.

    ``folder`` is where their callback modules (``spiders.maoyan:parse`` is in
    ``spiders/maoyan.py`` there) and cassettes (``spiders/cassettes/NAME.yaml``) are.
    """

    file: SpiderFile
    folder: Path

    def __getitem__(self, name: str) -> SpiderSpec:
        return self.file.spiders[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.file.spiders)

    def __len__(self) -> int:
        return len(self.file.spiders)

    def __repr__(self) -> str:
        return f"<Spiders from {self.file.path}: {', '.join(self) or 'none'}>"

    def spider(self, name: str) -> SpiderSpec:
        """The spider called ``name``, or ``SpiderNotFound`` naming the ones there are."""
        return self.file.get(name)

    def cassette(self, name: str) -> Path:
        """Where the cassette of spider ``name`` is: ``spiders/cassettes/NAME.yaml`` in
        ``folder``."""
        from scraper.cassette import CASSETTE_DIR

        return self.folder / CASSETTE_DIR / f"{name}.yaml"


@dataclass(frozen=True)
class RunResult:
    """What ``run`` did: its counts as plain values, and the exit status ``scraper run``
    would give (0: every page fetched and extracted; 1: some pages failed)."""

    spider: str
    output: Path | None
    pages: int
    records: int
    failed: Mapping[str, int]
    """Pages that failed, by reason (``{"http 404": 2}``)."""
    dropped: Mapping[str, int]
    """Records left out, by reason (``{"duplicate": 3}``)."""
    skipped: Mapping[str, int]
    """Links not followed, by reason (``{"robots.txt": 1}``)."""
    no_match: Mapping[str, int]
    """Pages whose pattern matched nothing, by page kind."""
    elapsed: float
    """Seconds the crawl took."""
    rows: Mapping[str, int] | None
    """Rows a SQLite output added and updated (``{"new": 58, "updated": 2}``); ``None``
    for other outputs."""
    exit_status: int
    summary: str
    """The summary ``scraper run`` prints, one fact a line."""

    @property
    def failures(self) -> int:
        """Pages that failed, all reasons together."""
        return sum(self.failed.values())

    @classmethod
    def of(cls, spider: str, output: Path | None, stats: CrawlStats) -> RunResult:
        """The result of a run of ``spider`` into ``output`` that counted ``stats``."""
        from scraper.console import EXIT_FAILURES, EXIT_OK

        return cls(
            spider=spider,
            output=output,
            pages=stats.pages,
            records=stats.records,
            failed=dict(stats.failed),
            dropped=dict(stats.dropped),
            skipped=dict(stats.skipped),
            no_match=dict(stats.empty_pages),
            elapsed=stats.elapsed,
            rows=None if stats.rows is None else dict(stats.rows),
            exit_status=EXIT_FAILURES if stats.failures else EXIT_OK,
            summary=stats.summary(),
        )


def load_spiders(source: SpiderSource | Spiders, *, base: str | Path | None = None) -> Spiders:
    """Load and check every spider of ``source``; raise ``SpecError`` on the first problem.

    ``source`` is a spider file's path, the YAML text of one (a str with a line
    break; errors then name ``<string>``), or the same as a dict (errors name
    ``<dict>``). Callbacks and cassettes are found in ``base``: by default the
    spider file's folder, or the current directory for text and dicts.
    """
    from scraper.spec import load_spiders as load_file
    from scraper.spec import parse_spiders

    if isinstance(source, Spiders):
        return source if base is None else Spiders(source.file, Path(base).resolve())
    if isinstance(source, Mapping):
        spider_file = _parse_dict(source)
        folder = Path.cwd()
    elif isinstance(source, str) and "\n" in source:
        spider_file = parse_spiders(source, "<string>")
        folder = Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        spider_file = load_file(Path(source))
        folder = Path(source).parent
    else:
        raise TypeError(
            f"load_spiders() takes a path, YAML text or a dict, not {type(source).__name__}."
        )
    return Spiders(spider_file, Path(base if base is not None else folder).resolve())


def crawl(
    spiders: SpiderSource | Spiders,
    name: str,
    *,
    offline: bool = False,
    cassette: str | Path | None = None,
    **settings: Any,
) -> Generator[Record, None, None]:
    """The records of spider ``name``, as its pages come in (a generator of dicts).

    ``offline=True`` replays the spider's cassette (``spiders/cassettes/NAME.yaml``
    beside the spider file, or ``cassette=PATH``) instead of the network; other
    keyword arguments override the spider's settings. The crawl runs on an event
    loop of its own in a worker thread, so this works where a loop already runs
    (Jupyter); a reader that is behind holds it (at most 1,000 records wait).
    Leaving the ``for`` loop early (or ``close()``) stops the crawl: nothing is
    left running. Sets no signal handlers: Ctrl-C raises ``KeyboardInterrupt``
    in the loop, which stops the crawl likewise.
    """
    from scraper.embed import records_in_thread

    return records_in_thread(_job("crawl", spiders, name, offline, cassette, settings))


def acrawl(
    spiders: SpiderSource | Spiders,
    name: str,
    *,
    offline: bool = False,
    cassette: str | Path | None = None,
    **settings: Any,
) -> AsyncGenerator[Record, None]:
    """``crawl`` for a coroutine: the crawl runs as a task on the running event loop.

    ``async for record in scraper.acrawl(...)`` takes the same arguments as
    ``crawl``. Leaving the loop early stops the crawl once the generator is
    closed, which ``contextlib.aclosing`` makes immediate; cancelling the reader
    stops it too.
    """
    from scraper.embed import records_on_loop

    return records_on_loop(_job("acrawl", spiders, name, offline, cassette, settings))


def run(
    spiders: SpiderSource | Spiders,
    name: str,
    output: str | Path | None = None,
    *,
    format: str | None = None,
    bom: bool = False,
    table: str | None = None,
    key: Sequence[str] | None = None,
    resume: bool = False,
    incremental: bool = False,
    since: float | None = None,
    offline: bool = False,
    cassette: str | Path | None = None,
    **settings: Any,
) -> RunResult:
    """Run spider ``name`` to the end, its records written to ``output``; what it did.

    ``output`` is a path whose extension chooses the format (``.jsonl``, ``.csv``,
    ``.json``, ``.db``), or ``format=`` says it, as ``scraper run -o`` does (with
    ``bom``, ``table`` and ``key`` as ``--bom``, ``--table`` and ``--key``); ``"-"``
    is stdout. With ``output=None`` the records are counted, not kept. ``resume=True``
    is ``--resume``: the crawl state is kept beside the output, and a run that was
    interrupted continues. ``incremental=True`` is ``--incremental`` (``since=DAYS``
    its ``--since``): a re-crawl that fetches and writes only what is new since the
    last run, its state kept beside the output. ``offline``, ``cassette`` and
    settings as for ``crawl``.
    The crawl runs in a worker thread; a ``KeyboardInterrupt`` stops it, leaves the
    output whole and is raised on.
    """
    from contextlib import ExitStack

    from scraper.commands import claim_path
    from scraper.embed import run_in_thread
    from scraper.output import OutputOptions
    from scraper.stateoutput import check_paths

    job = _job("run", spiders, name, offline, cassette, settings)
    path = None if output is None or str(output) == "-" else Path(output)
    if resume and path is None:
        raise TypeError("run(resume=True) needs an output file: add output=PATH.")
    if incremental and path is None:
        raise TypeError("run(incremental=True) needs an output file: add output=PATH.")
    if since is not None and not incremental:
        raise TypeError("run(): since= goes with incremental=True.")
    keys = None if key is None else (key,) if isinstance(key, str) else tuple(key)
    options = OutputOptions(format=format, bom=bom, table=table, key=keys)
    with ExitStack() as stack:
        if path is not None:
            state_path = Path(f"{path}.state")
            check_paths(state_path, path)
            for claimed in (path, state_path) if resume or incremental else (path,):
                claim_path(stack, claimed, "path")
        stats = run_in_thread(
            lambda: _into_output(job, output, resume, options, incremental, since)
        )
    return RunResult.of(job.spider.name, path, stats)


async def _into_output(
    job: Job,
    output: str | Path | None,
    resume: bool,
    options: OutputOptions,
    incremental: bool = False,
    since: float | None = None,
) -> CrawlStats:
    """Crawl ``job`` into ``output`` as ``scraper run -o`` does (``None``: nowhere).

    The output and the state are opened here, in the crawl's thread, which is the
    one SQLite lets use them.
    """
    from contextlib import ExitStack

    from scraper.commands import open_output
    from scraper.output import row_counts

    if output is None:
        return await job.crawl(_Counted())
    with ExitStack() as stack:
        writer, state = open_output(
            stack,
            output,
            job.spider,
            options=options,
            resume=resume,
            incremental=incremental,
            since=since,
        )
        stats = await job.crawl(writer, state=state)
        stats.rows = row_counts(writer)
        return stats


class _Counted:
    """The sink of ``run(output=None)``: records are counted by the crawl, not kept."""

    size = 0

    def write(self, records: Any, *, url: str | None = None) -> Any:
        from collections import Counter

        return Counter()


def _job(
    function: str,
    spiders: SpiderSource | Spiders,
    name: str,
    offline: bool,
    cassette: str | Path | None,
    settings: Mapping[str, Any],
) -> Job:
    """Spider ``name`` ready to crawl: its settings overridden, its callbacks imported."""
    import dataclasses

    from scraper.callbacks import resolve_callbacks
    from scraper.embed import Job

    loaded = load_spiders(spiders)
    spider = loaded.spider(name)
    if settings:
        spider = dataclasses.replace(spider, settings=_settings(function, spider, settings))
    if cassette is not None and not offline:
        raise TypeError(f"{function}(): cassette= goes with offline=True.")
    replay = None
    if offline:
        replay = Path(cassette) if cassette is not None else loaded.cassette(name)
    return Job(spider, resolve_callbacks(spider, loaded.folder), replay)


def _settings(function: str, spider: SpiderSpec, given: Mapping[str, Any]) -> CrawlSettings:
    """``spider``'s settings with those ``given`` as keyword arguments, read as YAML is."""
    import yaml

    from scraper.spec import SETTING_KEYS, _SpecReader
    from scraper.yamlnodes import close_match, compose

    for key in given:
        if key not in SETTING_KEYS:
            close = close_match(key, (*SETTING_KEYS, *_CRAWL_OPTIONS))
            hint = f"; did you mean {close!r}?" if close else "."
            raise TypeError(
                f"{function}() got an unexpected keyword argument {key!r}{hint} Its settings "
                f"are {', '.join(SETTING_KEYS)} (see README.md, 'Settings')."
            )
    what = f"{function}()"
    try:
        text = yaml.safe_dump(_plain(given), allow_unicode=True)
        node = compose(text, what)
        assert node is not None
        return _SpecReader(what).settings(node, spider.settings, what, ())
    except yaml.representer.RepresenterError as exc:
        raise TypeError(
            f"{what}: {exc.args[-1]!r} is not a setting's value: give text, numbers, "
            "True/False, lists or dicts of them."
        ) from None
    except SpecError as exc:
        raise SpecError(exc.message) from None  # a place in YAML made up here means nothing


def _parse_dict(data: Mapping[str, Any]) -> SpiderFile:
    """Spiders from a dict shaped as a spider file, with the file's checks and messages."""
    import yaml

    from scraper.spec import parse_spiders

    try:
        text = yaml.safe_dump(_plain(data), allow_unicode=True, sort_keys=False)
    except yaml.representer.RepresenterError as exc:
        raise SpecError(
            f"<dict>: {exc.args[-1]!r} cannot be in a spider file: give text, numbers, "
            "True/False, lists and dicts."
        ) from None
    try:
        return parse_spiders(text, "<dict>")
    except SpecError as exc:
        if exc.location is None:
            raise
        raise SpecError(f"<dict>: {exc.message}") from None


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and mappings as dicts, as YAML writes them."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
