"""A fuzzing HTTP server: every answer is made up from a seed, a round and the request path.

``FuzzServer`` is a raw asyncio server on 127.0.0.1, run in a thread of its own, with
one listening port per round, so that each round (one crawl) has its own origin and
its own robots.txt. An answer depends only on ``(seed, round, path)`` (and the port,
which appears in absolute links), so a failure can be replayed:
``python -m tests.fuzzserver SEED ROUND PATH`` prints the answer's bytes.

The paths a crawl meets:

- ``/g/N`` good: 200, ``text/html; charset=utf-8``, a right Content-Length and
  ``RECORDS`` records. The records must be written exactly.
- ``/o/N`` odd but valid: a 200 that a crawler must read, with ASCII records, under odd
  charset labels (``undefined``, ``utf-7``, ``cp037``, ``punycode``, ...), odd but legal
  framing, compression, header spelling, cookie floods, links to bad URLs and records
  whose value is not finite (which must be dropped). Its records must be written exactly.
- ``/robots.txt``: robots.txt text (never disallowing ``/g/``, ``/o/`` or ``/f/``) inside a
  wild answer.
- anything else (``/f/N`` start pages, ``/l/N`` links, ``/r/...`` redirect targets): wild.
  Any status line (valid, 1xx, 3xx with and without Location, garbage), any framing
  (Content-Length right, wrong, absent, negative, huge; chunks good and broken), any
  Content-Encoding on compressed or plain bodies, any charset, Location and Retry-After
  values that are hard to parse, Set-Cookie floods, odd and very long header lines,
  bodies of records, links, binary, nothing. A crawl may fetch such a page or fail it,
  by a named reason.

A wild answer whose framing could leave bytes on the connection closes it, so that it
cannot spoil the answer to the next request on a kept-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import random
import re
import sys
import threading
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

RECORDS = 3
"""Records on each good and odd page."""
LINK_POOL = 10
"""Links point to /l/0 .. /l/9, so following stays bounded whatever the pages say."""
HANG_LIMIT = 5.0
"""Seconds a hanging answer keeps its connection open at most."""

_PAGE = re.compile(r"/([go])/(\d+)")
Row = tuple[str, str, str]  # k, name, v as written in the page


@dataclass
class Answer:
    """What the server sends for one request, and what a crawl must make of it."""

    data: bytes
    then: str = "close"
    """``keep`` (the connection stays open for the next request), ``close`` or ``hang``
    (sent, then held open without a byte more until the client gives up)."""
    notes: list[str] = field(default_factory=list)
    """The generator's choices, for a failure message."""
    records: list[dict[str, Any]] | None = None
    """Good and odd pages: the records (without ``url``) the crawl must write exactly."""
    nonfinite: int = 0
    """Odd pages: records whose value is not finite, which must be dropped."""


def answer_for(seed: int | str, round_: int, path: str, port: int) -> Answer:
    """The answer to ``GET path`` in round ``round_``; the same for the same arguments."""
    rng = random.Random(f"{seed}:{round_}:{path}")
    page = _PAGE.fullmatch(path)
    if page and page[1] == "g":
        return good_answer(round_, path)
    if page and page[1] == "o":
        return odd_answer(rng, round_, path, port)
    if path == "/robots.txt":
        return wild_answer(rng, round_, path, port, text=robots_text(rng))
    return wild_answer(rng, round_, path, port)


# -- pieces -------------------------------------------------------------------------------------


def records_html(rows: list[Row]) -> str:
    return "\n".join(f'<li data-k="{k}"><b>{name}</b><i>{v}</i></li>' for k, name, v in rows)


def as_records(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"k": k, "name": name, "v": float(v)} for k, name, v in rows]


def _message(status: bytes, headers: list[bytes], body: bytes, eol: bytes = b"\r\n") -> bytes:
    return status + eol + b"".join(h + eol for h in headers) + eol + body


def _chunked(body: bytes, rng: random.Random, extension: bytes = b"") -> bytes:
    out, at = [], 0
    while at < len(body):
        size = min(rng.randint(1, len(body) // 3 + 1), len(body) - at)
        out.append(b"%x%s\r\n%s\r\n" % (size, extension, body[at : at + size]))
        at += size
    return b"".join(out) + b"0\r\n\r\n"


@functools.lru_cache(maxsize=2)
def _zeros_gzip(size: int) -> bytes:
    return gzip.compress(bytes(size), 9)


def _compress(kind: str, body: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(body, 6, mtime=0)
    if kind == "deflate":
        return zlib.compress(body)
    if kind == "raw-deflate":
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        return packer.compress(body) + packer.flush()
    return body


def _link_spellings(port: int, n: int) -> list[str]:
    """Ways to write the link /l/N that all lead to /l/N from any page of a round."""
    return [
        f"/l/{n}",
        f"../l/{n}",
        f"http://127.0.0.1:{port}/l/{n}",
        f"HTTP://127.0.0.1:{port}/l/{n}#part",
        f"//127.0.0.1:{port}/l/{n}",
        f" /l/{n} ",
    ]


def bad_links(port: int) -> list[str]:
    """Links that cannot be parsed, lead nowhere a crawl may go, or are merely strange."""
    return [
        "http://[oops/",
        "http://a＃b.example/",
        "http://user@[oops/",
        "http://[::1",
        "javascript:alert(1)",
        "mailto:someone@example.org",
        "file:///etc/passwd",
        "data:text/html,hi",
        "ftp://127.0.0.1/l/1",
        "",
        " ",
        "#",
        "?",
        "http://",
        "http:",
        "//",
        "http://%zz/",
        "http://a b/",
        "http://xn--/",
        "http://０１２７.0.0.1/",
        f"http://localhost:{port}/l/1",
        f"http://[::1]:{port}/l/1",
        "http://127.0.0.1:99999/l/1",
        "http://127.0.0.1:0/l/1",
        "http://127.0.0.1:-1/l/1",
        f"https://127.0.0.1:{port}/l/2",
        f"http://127.0.0.1:{port}/l/" + "a" * 5000,
        f"http://127.0.0.1:{port}/l/%",
        "\x00",
        "&#0;",
        "&#xD800;",
        "http://127.0.0.1:" + "9" * 40 + "/",
    ]


ODD_LABELS = [
    "utf-8",
    "UTF-8",
    "utf8",
    "latin1",
    "iso-8859-1",
    "windows-1252",
    "gbk",
    "gb2312",
    "shift_jis",
    "euc-kr",
    "koi8-r",
    "iso-8859-2",
    "x-user-defined",
    "undefined",
    "punycode",
    "utf-7",
    "cp037",
    "ebcdic-cp-us",
    "cp500",
    "unicode_escape",
    "raw_unicode_escape",
    "idna",
    "hex",
    "base64",
    "rot13",
    "zip",
    "uu",
    "mbcs",
    "x-no-such-charset",
    "",
    "none",
]
"""Labels under which an ASCII page must still be read as written: ASCII-compatible web
encodings, and labels that are no web encoding at all (which must be ignored)."""

WILD_LABELS = [
    *ODD_LABELS,
    "utf-16",
    "utf-16le",
    "utf-16be",
    "utf-32",
    "hz-gb-2312",
    "iso-2022-kr",
    "replacement",
    "big5",
    "euc-jp",
    "gb18030",
    "utf-8-sig",
    "ascii",
    "ucs-2",
    "bz2",
    "quopri",
    "utf8mb4",
    "x-mac-cyrillic",
]

NONFINITE = ["inf", "nan", "1e999", "-Infinity", "NaN", "-1e400", "infinity"]


def _meta(rng: random.Random, label: str) -> str:
    return rng.choice(
        [
            f'<meta charset="{label}">',
            f"<meta charset={label}>",
            f"<meta charset='{label}'>",
            f'<META CHARSET=" {label} ">',
            f'<meta http-equiv="Content-Type" content="text/html; charset={label}">',
        ]
    )


def _cookies(rng: random.Random, count: int) -> list[bytes]:
    odd = [
        "=novalue",
        ";;;",
        "a=b; Domain=localhost",
        "a=b; Domain=.127.0.0.1",
        "a=b; Expires=Foo, 99 Bar 99999",
        "a=b; Max-Age=-1",
        'a="unterminated',
        "é=ü",
        "a=b; Path",
        "x" * 5000 + "=1",
        "a=b; SameSite=Nonsense; Secure; HttpOnly",
        "$Version=1; a=b",
    ]
    lines = []
    for k in range(count):
        value = rng.choice(odd) if rng.random() < 0.1 else f"c{k}={'v' * rng.randint(1, 40)}"
        lines.append(b"Set-Cookie: " + value.encode("utf-8"))
    return lines


# -- good and odd pages -------------------------------------------------------------------------


def good_rows(round_: int, path: str) -> list[Row]:
    n = int(path.rsplit("/", 1)[1])
    return [(f"g-{round_}-{n}-{j}", f"good é中 {j}", str(n + j / 4)) for j in range(RECORDS)]


def good_answer(round_: int, path: str) -> Answer:
    rows = good_rows(round_, path)
    body = f"<html><body><ul>\n{records_html(rows)}\n</ul></body></html>".encode()
    headers = [b"Content-Type: text/html; charset=utf-8", b"Content-Length: %d" % len(body)]
    return Answer(_message(b"HTTP/1.1 200 OK", headers, body), "keep", ["good"], as_records(rows))


def odd_answer(rng: random.Random, round_: int, path: str, port: int) -> Answer:
    n = int(path.rsplit("/", 1)[1])
    notes: list[str] = []
    rows = [(f"o-{round_}-{n}-{j}", f"odd {j}", str(n + j / 2)) for j in range(RECORDS)]
    nonfinite = [
        (f"o-{round_}-{n}-x{j}", "odd not finite", rng.choice(NONFINITE))
        for j in range(rng.choice([0, 0, 0, 1, 2]))
    ]
    if nonfinite:
        notes.append(f"not finite: {[row[2] for row in nonfinite]}")
    shown = rows + nonfinite
    rng.shuffle(shown)
    links = [rng.choice(_link_spellings(port, rng.randrange(LINK_POOL))) for _ in range(2)]
    links += rng.sample(bad_links(port), rng.randint(0, 6))
    notes.append(f"links {links!r}"[:300])

    label = rng.choice(ODD_LABELS)
    where = rng.choice(["header", "meta", "both", "none"])
    notes.append(f"charset {label!r} in {where}")
    meta = _meta(rng, label) if where in ("meta", "both") else ""
    header_label = label if where in ("header", "both") else None
    if where == "both":
        meta = _meta(rng, rng.choice(ODD_LABELS))
    anchors = "\n".join(f'<a href="{href}">link</a>' for href in links)
    html = f"<html><head>{meta}</head><body><ul>\n{records_html(shown)}\n</ul>\n{anchors}\n</body>"
    body = html.encode("utf-8")  # ASCII, but for a fullwidth sign in a link or two

    media = rng.choice(["text/html", "TEXT/HTML", "application/xhtml+xml", "text/plain"])
    if header_label is None:
        content_type = rng.choice([media, None])
    else:
        content_type = rng.choice(
            [
                f"{media}; charset={header_label}",
                f"{media};charset={header_label}",
                f'{media}; charset="{header_label}"',
                f"{media}; q=1; CHARSET={header_label}",
            ]
        )
    headers: list[bytes] = []
    if content_type is not None:
        name = rng.choice(["Content-Type: ", "content-type:", "CONTENT-TYPE:\t"])
        headers.append(name.encode() + content_type.encode())
        notes.append(f"Content-Type {content_type!r}")

    compression = rng.choice(["none"] * 4 + ["identity", "gzip", "deflate", "raw-deflate"])
    if compression != "none":
        body = _compress(compression, body)
        name = "deflate" if compression == "raw-deflate" else compression
        headers.append(b"Content-Encoding: " + name.encode())
        notes.append(f"Content-Encoding {compression}")

    framing = rng.choice(["length", "length", "chunked", "close", "http/1.0"])
    notes.append(f"framing {framing}")
    status, then = b"HTTP/1.1 " + rng.choice([b"200 OK", b"200 ", b"200 Fine by me"]), "keep"
    if framing in ("length", "http/1.0"):
        spelling = rng.choice(
            [b"Content-Length: %d", b"content-length:%d", b"CONTENT-LENGTH:  %d "]
        )
        headers.append(spelling % len(body))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        body = _chunked(body, rng, rng.choice([b"", b";ext=1"]))
    if framing == "close":
        headers.append(b"Connection: close")
        then = "close"
    if framing == "http/1.0":
        status, then = b"HTTP/1.0 200 OK", "close"

    cookies = rng.choice([0] * 6 + [10, 30, 90])  # aiohttp refuses more than 128 header lines
    headers += _cookies(rng, cookies)
    extras = [
        b"X-Pad: " + b"a" * 4000,
        b"Location: http://[oops/",
        b"Retry-After: \xc2\xb2",
        b"X-Odd-Case: yes",
        b"x-empty:",
        b"Server:   spaces   ",
        b"Link: <http://[oops/>; rel=next",
        b"Refresh: 0; url=javascript:alert(1)",
    ]
    headers += rng.sample(extras, rng.randint(0, 3))
    rng.shuffle(headers)
    if cookies:
        notes.append(f"{cookies} Set-Cookie")
    answer = Answer(_message(status, headers, body), then, ["odd", *notes], as_records(rows))
    answer.nonfinite = len(nonfinite)
    return answer


# -- wild answers -------------------------------------------------------------------------------

STATUS_LINES = [
    *[b"HTTP/1.1 200 OK"] * 12,
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 200",
    b"HTTP/1.1 201 Created",
    b"HTTP/1.1 203 Whatever",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 206 Partial Content",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.1 103 Early Hints",
    *[b"HTTP/1.1 %d Moved" % s for s in (300, 301, 302, 303, 304, 305, 307, 308)],
    *[b"HTTP/1.1 %d Moved" % s for s in (301, 302, 307)] * 3,
    *[b"HTTP/1.1 %d Nope" % s for s in (400, 401, 403, 404, 405, 408, 410, 418, 429, 451)],
    *[b"HTTP/1.1 %d Oops" % s for s in (500, 501, 502, 503, 504, 599)],
    b"HTTP/1.1 429 Slow Down",
    b"HTTP/1.1 503 Busy",
    b"HTTP/1.1 299 Odd",
    b"HTTP/1.1 399 Odd",
    b"HTTP/1.1 999 Odd",
    b"HTTP/1.1 600 Odd",
    b"HTTP/1.1 000 Odd",
    b"HTTP/1.1 42 Odd",
    b"HTTP/1.1 2000 Odd",
    b"HTTP/1.1 -200 Odd",
    b"HTTP/1.1 20O OK",
    b"HTTP/1.1 abc OK",
    b"HTTP/9.9 200 OK",
    b"HTTP/2 200",
    b"ICY 200 OK",
    b"HTTP/1.1200 OK",
    b"http/1.1 200 ok",
    b"HTTP/1.1  200  OK",
    b"\x00\xff\xfe garbage",
    b"",
    b"<html>",
    b"HTTP/1.1 200 " + b"long reason " * 1000,
    b"HTTP/1.1 200 \xc3\xa9\xff",
]

LOCATIONS = [
    "/r/{k}",
    "../r/{k}",
    "http://127.0.0.1:{port}/r/{k}",
    "//127.0.0.1:{port}/r/{k}",
    "HTTP://127.0.0.1:{port}/r/{k}",
    "/r/{k}#part",
    "\t/r/{k} ",
    "http://localhost:{port}/r/{k}",
    "https://127.0.0.1:{port}/r/{k}",
    "http://127.0.0.1:99999/",
    "http://127.0.0.1:" + "9" * 40 + "/",
    "http://[oops/",
    "http://a＃b.example/",
    "http://user@[oops/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:,x",
    "mailto:a@b",
    "",
    " ",
    "?q=1",
    "#only",
    "http://",
    "http:///r/1",
    "http://a b/",
    "/r/é",
    "/r/" + "a" * 6000,
    "/r/" + "a" * 100_000,
    "{self}",
    "{self}?again",
]

RETRY_AFTERS = [
    "5",
    "0",
    "-1",
    "99999999999999999999",
    "²",
    "٣",
    "¹²³",
    "Wed, 21 Oct 2015 07:28:00 -0000",
    "Wed, 21 Oct 2015 07:28:00 +0000",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Fri, 31 Dec 9999 23:59:59 -0000",
    "Mon, 99 Foo 2015 99:99:99 GMT",
    "soon",
    "",
    "1.5",
    "NaN",
    "inf",
    "1e309",
    "0x10",
    " 7 ",
]

NAMES = [
    "plain",
    "é中文",
    "😀",
    "a+2D0-b",  # a lone surrogate, read as utf-7
    "a\\ud800b",  # a lone surrogate, read as unicode_escape
    "&amp;&#0;&#xD800;",
    "\x0b\x01\x00",
    "tab\tnew\nline",
    "x" * 300,
    "ﬁ\u200b\ufeff",
]
VALUES = ["1.5", "2", "-0", "", "x", "1,000.5", "1_0", "٣", "0x1", "1e5", *NONFINITE]

ROBOTS = [
    "User-agent: *\nDisallow: /l/{k}\n",
    "User-agent: *\nDisallow: /l/\nAllow: /l/1\n",
    "User-agent: scraper\nDisallow: /l/2\nCrawl-delay: 0.01\n",
    "User-agent: *\nCrawl-delay: abc\n",
    "User-agent: *\nCrawl-delay: -1\nDisallow: /l/{k}\n",
    "User-agent: *\nCrawl-delay: 1e-300\n",
    "User-agent: *\nCrawl-delay: 0.02\nDisallow: /l/*3$\n",
    "Sitemap: http://[oops/\nUser-agent: *\nDisallow: /l/4\n",
    "\ufeffUser-agent: *\nDisallow: /l/5\n",
    "User-agent: *\r\nDisallow: /l/6\r\n" * 2000,
    "<html><body>not robots</body></html>",
    "User-agent: *\nDisallow: *l/7*\n",
    "User-agent: *\nDisallow: /%zz\nDisallow: /l/%\n",
    "User-agent: *\nRequest-rate: 1/0\nDisallow: /l/8\n",
    "User-agent: *\nRequest-rate: x/y\n",
    "User-agent: *\nVisit-time: 2500-0100\n",
    "Disallow: /l/9\n",
    "User-agent: *\nDisallow: /l/\x00\n",
    "",
]


def robots_text(rng: random.Random) -> str:
    return rng.choice(ROBOTS).replace("{k}", str(rng.randrange(LINK_POOL)))


def wild_text(rng: random.Random, round_: int, path: str, port: int) -> str:
    """HTML with records whose fields are awkward, links good and bad, and odd tags."""
    tag = f"{round_}-{zlib.crc32(path.encode()):x}"
    rows = [
        (f"w-{tag}-{j}", rng.choice(NAMES), rng.choice(VALUES)) for j in range(rng.randint(0, 4))
    ]
    links = [rng.choice(_link_spellings(port, rng.randrange(LINK_POOL))) for _ in range(2)]
    links += rng.sample(bad_links(port), rng.randint(0, 5))
    parts = [records_html(rows), *(f'<a href="{href}">x</a>' for href in links)]
    if rng.random() < 0.3:
        parts.insert(0, _meta(rng, rng.choice(WILD_LABELS)))
    if rng.random() < 0.05:
        parts.insert(
            0,
            rng.choice(
                [
                    '<base href="http://[oops/">',
                    f'<base href="http://localhost:{port}/">',
                    '<base href="javascript:x">',
                    "<base href=>",
                ]
            ),
        )
    rng.shuffle(parts)
    return "<html><body>" + "\n".join(parts) + "</body></html>"


def _encode(rng: random.Random, text: str, notes: list[str]) -> bytes:
    encoding = rng.choice(
        ["utf-8"] * 6 + ["gb18030", "shift_jis", "utf-16", "utf-7", "cp037", "latin-1", "ascii"]
    )
    notes.append(f"body in {encoding}")
    return text.encode(encoding, errors="replace")


def wild_answer(
    rng: random.Random, round_: int, path: str, port: int, text: str | None = None
) -> Answer:
    notes: list[str] = []
    shape = rng.choices(
        ["text", "binary", "empty", "truncated", "huge", "bomb"], [80, 6, 5, 5, 2, 2]
    )[0]
    if text is None:
        text = wild_text(rng, round_, path, port)
    body = _encode(rng, text, notes)
    if shape == "binary":
        body = rng.randbytes(rng.randint(1, 3000))
    elif shape == "empty":
        body = b""
    elif shape == "truncated":
        body = body[: rng.randint(0, len(body))]
    elif shape == "huge":
        body = b"<p>" + b"x" * (2 << 20)
    notes.append(f"body {shape}, {len(body)} bytes")

    status = rng.choice(STATUS_LINES)
    notes.append(f"status line {status[:60]!r}")
    headers: list[bytes] = []
    healthy = status.startswith(b"HTTP/1.1 ") and status[9:12] in (b"200", b"301", b"404")

    roll = rng.random()
    if roll < 0.7:
        label = rng.choice(WILD_LABELS)
        media = rng.choice(
            ["text/html"] * 6 + ["text/plain", "application/octet-stream", "image/png", ""]
        )
        content_type = f"{media}; charset={label}" if rng.random() < 0.6 else media
        headers.append(b"Content-Type: " + content_type.encode())
        notes.append(f"Content-Type {content_type!r}")
    elif roll < 0.75:
        headers += [b"Content-Type: text/html; charset=utf-8", b"Content-Type: image/png"]
        healthy = False

    is_redirect = status[9:10] == b"3"
    if (is_redirect and rng.random() < 0.8) or rng.random() < 0.05:
        location = rng.choice(LOCATIONS).format(k=rng.randrange(100), port=port, self=path)
        headers.append(b"Location: " + location.encode("utf-8"))
        notes.append(f"Location {location[:80]!r}")
    if b" 429 " in status or b" 503 " in status or rng.random() < 0.05:
        retry_after = rng.choice(RETRY_AFTERS)
        headers.append(b"Retry-After: " + retry_after.encode("utf-8"))
        notes.append(f"Retry-After {retry_after!r}")
    if rng.random() < 0.05:
        count = rng.choice([50, 300, 1000])
        headers += _cookies(rng, count)
        notes.append(f"{count} Set-Cookie")
    if rng.random() < 0.15:
        odd_lines = [
            b"X-Space-Before-Colon : 1",
            b"X-Folded: a\r\n b",
            b"\tX-Leading-Tab: 1",
            b"NoColonHere",
            b": empty-name",
            b"X-Nul: a\x00b",
            b"X-Utf8: \xc3\xa9\xe4\xb8\xad",
            b"X-Latin1: \xe9",
            b"X-CR: a\rb",
            b"x-lower: 1",
            b"X-TRAILING-SPACE: 1   ",
        ]
        chosen = rng.sample(odd_lines, rng.randint(1, 3))
        headers += chosen
        notes.append(f"odd header lines {chosen!r}")
        healthy = False
    if rng.random() < 0.04:
        size = rng.choice([9000, 70_000, 300_000])
        headers.append(b"X-Long: " + b"h" * size)
        notes.append(f"a {size}-byte header")
        healthy = False
    if rng.random() < 0.02:
        headers += [b"X-Many-%d: %d" % (i, i) for i in range(rng.choice([200, 2000]))]
        notes.append("many headers")
        healthy = False

    compression = rng.choices(
        [
            "none",
            "gzip",
            "deflate",
            "raw-deflate",
            "gzip-lie",
            "deflate-lie",
            "gzip-cut",
            "gzip-garbage-after",
            "br",
            "gzip, gzip",
            "x-gzip",
            "identity",
            "compress",
            "GZIP",
        ],
        [50, 8, 4, 3, 6, 3, 4, 2, 3, 2, 2, 3, 2, 2],
    )[0]
    if shape == "bomb":
        compression = "bomb"
        body = _zeros_gzip(3 << 20)
        headers.append(b"Content-Encoding: gzip")
    elif compression != "none":
        label = compression.removesuffix("-lie").removesuffix("-cut").removesuffix("-garbage-after")
        if compression in ("gzip", "deflate", "raw-deflate", "GZIP"):
            body = _compress(compression.lower(), body)
        elif compression == "gzip-cut":
            body = _compress("gzip", body)
            body = body[: len(body) // 2]
        elif compression == "gzip-garbage-after":
            body = _compress("gzip", body) + b"\x00garbage"
        elif compression == "gzip, gzip":
            body = _compress("gzip", _compress("gzip", body))
        label = "deflate" if label == "raw-deflate" else label
        headers.append(b"Content-Encoding: " + label.encode())
    notes.append(f"compression {compression}")

    framing = rng.choices(
        [
            "length",
            "length-short",
            "length-long",
            "length-long-hang",
            "no-length",
            "no-length-hang",
            "length-negative",
            "length-huge",
            "length-junk",
            "length-twice",
            "chunked",
            "chunked-ext",
            "chunked-bad-size",
            "chunked-no-end",
            "chunked-no-end-hang",
            "chunked-lie",
            "chunked-and-length",
            "te-identity",
        ],
        [40, 4, 4, 1, 8, 1, 3, 3, 3, 3, 12, 2, 3, 3, 1, 3, 3, 2],
    )[0]
    notes.append(f"framing {framing}")
    then = "close"
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
        then = "keep" if healthy else "close"
    elif framing == "length-short":
        headers.append(b"Content-Length: %d" % max(0, len(body) - rng.randint(1, 50)))
    elif framing.startswith("length-long"):
        headers.append(b"Content-Length: %d" % (len(body) + rng.randint(1, 5000)))
        then = "hang" if framing.endswith("hang") else "close"
    elif framing == "no-length-hang":
        then = "hang"
    elif framing == "length-negative":
        headers.append(b"Content-Length: -%d" % rng.randint(1, 100))
    elif framing == "length-huge":
        headers.append(
            b"Content-Length: " + rng.choice([b"99999999999999999999", b"1e9", b"%d" % (1 << 40)])
        )
    elif framing == "length-junk":
        headers.append(
            b"Content-Length: " + rng.choice([b"abc", b"12abc", b"1 2", b"+5", b"", b"0x10"])
        )
    elif framing == "length-twice":
        headers += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
    elif framing in ("chunked", "chunked-ext"):
        headers.append(b"Transfer-Encoding: chunked")
        body = _chunked(body, rng, b";a=b" if framing == "chunked-ext" else b"")
        then = "keep" if healthy else "close"
    elif framing == "chunked-bad-size":
        headers.append(b"Transfer-Encoding: chunked")
        body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    elif framing.startswith("chunked-no-end"):
        headers.append(b"Transfer-Encoding: chunked")
        body = _chunked(body, rng).removesuffix(b"0\r\n\r\n")
        then = "hang" if framing.endswith("hang") else "close"
    elif framing == "chunked-lie":
        headers.append(b"Transfer-Encoding: chunked")
        body = b"%x\r\n" % (len(body) + 100) + body + b"\r\n0\r\n\r\n"
    elif framing == "chunked-and-length":
        headers += [b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(body)]
        body = _chunked(body, rng)
    elif framing == "te-identity":
        headers.append(b"Transfer-Encoding: identity")

    rng.shuffle(headers)
    eol = rng.choices([b"\r\n", b"\n"], [95, 5])[0]
    if eol != b"\r\n":
        notes.append("bare LF line ends")
        then = "close" if then == "keep" else then
    data = _message(status, headers, body, eol)
    if rng.random() < 0.03:
        data = b"HTTP/1.1 100 Continue\r\n\r\n" + data
        notes.append("after a 100 Continue")
        then = "close" if then == "keep" else then
    return Answer(data, then, notes)


# -- the server ---------------------------------------------------------------------------------


class FuzzServer:
    """Serves ``rounds`` rounds, each on a port of its own on 127.0.0.1, from a thread.

    ``requests(round_)`` lists the request targets each round's port received.
    """

    def __init__(self, seed: int | str, rounds: int) -> None:
        self.seed = seed
        self.rounds = rounds
        self.ports: list[int] = []
        self._requests: dict[int, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.AbstractServer] = []

    def __enter__(self) -> FuzzServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(60)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, round_: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[round_]}{path}"

    def requests(self, round_: int) -> list[str]:
        with self._lock:
            return list(self._requests[round_])

    def answer(self, round_: int, path: str) -> Answer:
        return answer_for(self.seed, round_, path, self.ports[round_])

    async def _start(self) -> None:
        for round_ in range(self.rounds):
            server = await asyncio.start_server(
                functools.partial(self._serve, round_), "127.0.0.1", 0, limit=1 << 20
            )
            self._servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(
        self, round_: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                try:
                    # Not a GET (a TLS hello, say): hang up at once rather than wait.
                    if await reader.readexactly(4) != b"GET ":
                        return
                    head = b"GET " + await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                parts = head.split(b"\r\n", 1)[0].split(b" ")
                if len(parts) != 3 or parts[0] != b"GET":
                    return
                path = parts[1].decode("latin-1")
                with self._lock:
                    self._requests[round_].append(path)
                answer = answer_for(self.seed, round_, path, self.ports[round_])
                writer.write(answer.data)
                await writer.drain()
                if answer.then == "keep":
                    continue
                if answer.then == "hang":
                    # Until the client gives up. A client that took the answer for whole
                    # (a 204 says it has no body) sends its next request: hang up on it
                    # at once, so that the next page is retried, not left to time out.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HANG_LIMIT):
                            await reader.read(1)
                return
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()


def main(argv: list[str]) -> int:
    """``python -m tests.fuzzserver SEED ROUND PATH [PORT]``: print one answer."""
    if len(argv) not in (3, 4):
        print("usage: python -m tests.fuzzserver SEED ROUND PATH [PORT]", file=sys.stderr)
        return 2
    seed, round_, path = argv[0], int(argv[1]), argv[2]
    port = int(argv[3]) if len(argv) == 4 else 8000
    seed_value: int | str = int(seed) if seed.isdigit() else seed
    answer = answer_for(seed_value, round_, path, port)
    print("\n".join(answer.notes))
    print(f"then: {answer.then}")
    print(repr(answer.data[:4000]) + (" ..." if len(answer.data) > 4000 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
