"""The pycurl loop (``pycurl_loop``) over HTTP/2: every request multiplexed on one
connection to the site (h2c with prior knowledge; nginx listens with ``http2``), to see
whether HTTP/2 multiplexing helps a crawl of one host, as issue 15 asks."""

from __future__ import annotations

from clients import parse_job
from clients.pycurl_loop import crawl

if __name__ == "__main__":
    crawl(parse_job(__doc__ or ""), http2=True)
