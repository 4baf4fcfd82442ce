"""Record a crawl's HTTP traffic into a vcrpy cassette, or replay one with no network.

Both go through httpx's own transport, which vcrpy knows how to patch (it does
not patch the aiohttp transport of the fast path). Requests are matched on
method and URL; a request the cassette does not hold fails as ``not in
cassette``, naming its URL, and never reaches the network.

A cassette to replay is checked before vcrpy reads it (``check_cassette``): a
cassette edited by hand or cut short is a ``CassetteError`` naming the file and
the interaction, never an exception from deep inside vcrpy or httpx.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from scraper.errors import CassetteError
from scraper.wire import NotInCassette

CASSETTE_DIR = Path("spiders") / "cassettes"


def default_cassette(spider_file: Path, spider_name: str) -> Path:
    """``spiders/cassettes/NAME.yaml`` beside the spider file."""
    return spider_file.parent / CASSETTE_DIR / f"{spider_name}.yaml"


def check_cassette(path: Path) -> None:
    """Refuse a cassette whose interactions vcrpy and httpx could not replay.

    Each interaction needs ``request: {method, uri, body, headers}`` and
    ``response: {status: {code, message}, headers, body: {string}}`` with the types
    vcrpy writes; the error names the first entry that differs.
    """
    try:
        data = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise CassetteError(f"the cassette {path} cannot be read: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise CassetteError(f"the cassette {path} is not valid YAML: {detail}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(
            f"the cassette {path} has no 'interactions:' list; it is not a cassette "
            "scraper recorded. Record it again with --record."
        )
    for number, interaction in enumerate(data["interactions"], 1):
        problem = _interaction_problem(interaction)
        if problem:
            raise CassetteError(
                f"the cassette {path}: interaction {number}: {problem}. Fix that entry, or "
                "record the cassette again with --record."
            )


_TEXT = (str, bytes)
_SHAPE: dict[str, Any] = {
    "request": {
        "method": str,
        "uri": str,
        "body": (str, bytes, type(None)),
        "headers": ("headers", (str, list)),
    },
    "response": {
        "status": {"code": int, "message": str},
        "headers": ("headers", list),
        "body": {"string": _TEXT},
    },
}
"""What vcrpy and httpx read from an interaction: a mapping of keys, a type (or
types), or ("headers", what each header's value is: a list holds strings)."""


def _interaction_problem(value: Any, shape: Any = None, where: str = "") -> str | None:
    """What in ``value`` differs from ``shape`` (an interaction by default), or ``None``."""
    shape = _SHAPE if shape is None else shape
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where.rstrip(': ') or 'the entry'} must be a mapping, not {_describe(value)}"
        for key, inner in shape.items():
            if key not in value:
                return f"{where}{key} is missing"
            problem = _interaction_problem(value[key], inner, f"{where}{key}: ")
            if problem:
                return problem
        return None
    if isinstance(shape, tuple) and shape[:1] == ("headers",):
        if not isinstance(value, dict):
            return f"{where.rstrip(': ')} must be a mapping of header: [values]"
        for name, values in value.items():
            items = values if isinstance(values, list) else [values]
            if (
                not isinstance(name, str)
                or not isinstance(values, shape[1])
                or not all(isinstance(item, str) for item in items)
            ):
                return f"{where}{name}: must be a list of strings, not {_describe(values)}"
        return None
    if isinstance(value, bool) or not isinstance(value, shape):
        return f"{where.rstrip(': ')} must be {_KINDS.get(shape, 'text')}, not {_describe(value)}"
    return None


_KINDS: dict[Any, str] = {int: "a whole number", str: "text"}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "empty" if value is None else repr(value)


@contextmanager
def cassette_transport(
    path: Path,
    *,
    record: bool,
    inner: httpx.AsyncBaseTransport | None = None,
    spider: str = "NAME",
) -> Iterator[httpx.AsyncBaseTransport]:
    """A transport that records into ``path`` (``record=True``) or replays it.

    ``inner`` is the transport that really sends while recording (default:
    ``httpx.AsyncHTTPTransport``); it must be one that vcrpy patches.
    """
    import vcr
    from vcr.errors import CannotOverwriteExistingCassetteException

    if record:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    elif not path.is_file():
        raise CassetteError(
            f"no cassette at {path}: record one first with 'scraper run {spider} --record' "
            "(needs the network), or name another with --cassette PATH."
        )
    else:
        check_cassette(path)
    recorder = vcr.VCR(
        record_mode="all" if record else "none",
        match_on=("method", "uri"),
        decode_compressed_response=True,
    )

    class ReplayTransport(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self._inner = inner or httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return await self._inner.handle_async_request(request)
            except CannotOverwriteExistingCassetteException:
                raise NotInCassette(
                    f"{request.url} is not in the cassette {path}; record it again with --record"
                ) from None

        async def aclose(self) -> None:
            await self._inner.aclose()

    with ExitStack() as stack:
        try:
            stack.enter_context(recorder.use_cassette(str(path)))
        except (yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
            raise CassetteError(f"the cassette {path} cannot be read: {exc}.") from None
        yield ReplayTransport()
