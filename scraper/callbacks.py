"""Turning ``callback: module:function`` from the YAML into the user's function.

Modules are imported from the folder that holds the spider file (so
``spiders.maoyan:parse`` is ``def parse(page)`` in ``spiders/maoyan.py`` beside
``spiders.yaml``), and only modules the YAML names are imported.

The folder is on ``sys.path`` only while they are imported: a ``protego.py`` or
``sqlite3.py`` beside the spider file must never stand in for the tool's own
modules, which are imported before the folder is added (``TOOL_MODULES``). A
callback module's own imports at its top work as in any script; one it makes
later, inside a function, finds its package's modules (``from spiders import
helper``: a package keeps its ``__path__``) but no longer other top-level modules
of the folder.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scraper.errors import CallbackError
from scraper.spec import SpiderSpec

Callback = Callable[..., Iterable[Any] | None]

TOOL_MODULES = (
    "json",
    "difflib",
    "sqlite3",
    "protego",
    "charset_normalizer",
    "lxml.html",
    "httpx",
    "aiohttp",
    "vcr",
)
"""What scraper imports lazily, after callbacks are loaded: imported first, so that a
module of that name in the spider's folder cannot be taken for it (~0.2 s, paid only
by spiders with callbacks)."""


def resolve_callbacks(spider: SpiderSpec, root: Path) -> Mapping[str, Callback]:
    """The callback of each page kind that names one, by page kind."""
    resolved: dict[str, Callback] = {}
    for page in spider.pages.values():
        if page.callback is not None:
            resolved[page.name] = import_callback(page.callback, root, spider)
    return resolved


def import_callback(name: str, root: Path, spider: SpiderSpec) -> Callback:
    """Import ``module:function`` with ``root`` first on ``sys.path`` while it loads."""
    module_name, _, function_name = name.partition(":")
    where = f"{spider.location}: spider {spider.name!r}" if spider.location else spider.name
    root_text = str(root.resolve())
    try:
        with _first_on_path(root_text):
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CallbackError(
                f"{where}: callback {name!r}: there is no module {module_name!r} "
                f"(looked in {root_text}); create {module_name.replace('.', '/')}.py there."
            ) from None
        raise CallbackError(
            f"{where}: callback {name!r}: importing {module_name!r} failed: {exc}."
        ) from None
    except Exception as exc:  # a user's module can fail in any way while it loads
        raise CallbackError(
            f"{where}: callback {name!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}."
        ) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise CallbackError(
            f"{where}: callback {name!r}: module {module_name!r} has no {function_name!r}; "
            f"define def {function_name}(page) in {module.__file__}."
        )
    if not callable(function):
        raise CallbackError(f"{where}: callback {name!r}: {function_name!r} is not a function.")
    return function  # type: ignore[no-any-return]


@contextmanager
def _first_on_path(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` for the ``with`` block, the tool's modules loaded."""
    for module in TOOL_MODULES:
        importlib.import_module(module)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
