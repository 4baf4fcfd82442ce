"""The machine limit: a bare loop over pycurl's ``CurlMulti`` (libcurl does the HTTP work,
Python is called once per finished page, not per socket event). N easy handles are reused
from page to page, so their connections are kept alive; each body goes to a ``BytesIO``,
then the same pattern and JSON Lines write as the aiohttp loop."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import TextIO

import pycurl

from clients import Job, parse_job

SELECT_TIMEOUT = 1.0
"""Seconds ``select()`` may wait for a socket; libcurl's own timers are met by perform()."""


def crawl(job: Job, *, http2: bool = False) -> None:
    """Fetch every URL of ``job``, ``job.concurrency`` at once, writing records as they come;
    with ``http2``, all of them multiplexed on one HTTP/2 connection (prior knowledge, h2c)."""
    multi = pycurl.CurlMulti()
    idle = [pycurl.Curl() for _ in range(job.concurrency)]
    if http2:
        multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, 1)
        for handle in idle:
            handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
            handle.setopt(pycurl.PIPEWAIT, 1)
    urls = iter(job.urls)
    bodies: dict[pycurl.Curl, BytesIO] = {}
    with open(job.output, "w", encoding="utf-8") as out:
        while True:
            _start(multi, idle, urls, bodies)
            if not bodies:
                break
            while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                pass
            finished = _finished(multi)
            for handle in finished:
                multi.remove_handle(handle)
                _write(job, handle, bodies.pop(handle), out)
                idle.append(handle)
            if not finished:
                multi.select(SELECT_TIMEOUT)


def _start(
    multi: pycurl.CurlMulti,
    idle: list[pycurl.Curl],
    urls: Iterator[str],
    bodies: dict[pycurl.Curl, BytesIO],
) -> None:
    """Give each idle handle the next URL, if any are left."""
    while idle:
        url = next(urls, None)
        if url is None:
            return
        handle = idle.pop()
        body = BytesIO()
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.WRITEDATA, body)
        bodies[handle] = body
        multi.add_handle(handle)


def _finished(multi: pycurl.CurlMulti) -> list[pycurl.Curl]:
    """The handles whose transfer ended well since the last call; a failed one ends the run."""
    finished: list[pycurl.Curl] = []
    while True:
        queued, ok, failed = multi.info_read()
        finished += ok
        for handle, _, message in failed:
            raise SystemExit(f"{handle.getinfo(pycurl.EFFECTIVE_URL)}: {message}")
        if not queued:
            return finished


def _write(job: Job, handle: pycurl.Curl, body: BytesIO, out: TextIO) -> None:
    status = handle.getinfo(pycurl.RESPONSE_CODE)
    if status != 200:
        raise SystemExit(f"{handle.getinfo(pycurl.EFFECTIVE_URL)}: HTTP {status}")
    text = body.getvalue().decode("utf-8")  # nginx serves the site as utf-8
    job.write_records(text, out)


if __name__ == "__main__":
    crawl(parse_job(__doc__ or ""))
