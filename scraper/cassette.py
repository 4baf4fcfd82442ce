"""Record a crawl's HTTP traffic into a vcrpy cassette, or replay one with no network.

Both go through httpx's own transport, which vcrpy knows how to patch (it does
not patch the aiohttp transport of the fast path). Requests are matched on
method and URL; a request the cassette does not hold fails as ``not in
cassette``, naming its URL, and never reaches the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import yaml

from scraper.errors import CassetteError
from scraper.wire import NotInCassette

CASSETTE_DIR = Path("spiders") / "cassettes"


def default_cassette(spider_file: Path, spider_name: str) -> Path:
    """``spiders/cassettes/NAME.yaml`` beside the spider file."""
    return spider_file.parent / CASSETTE_DIR / f"{spider_name}.yaml"


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
