"""Fuzzing the spider-file loader: whatever the text, a SpiderFile or a SpecError, nothing else.

``parse_spiders`` is fed random text, random YAML documents built from the real keys of
the format and values that are awkward on purpose (regex fragments, templates, numbers at
the edges, nesting), and mutations of the shipped spiders.yaml. Every input must load or
be refused with a ``SpecError`` that names the file; any other exception is a bug. The
runs are derandomized, so a failure is the same on every machine.

Known crashers found this way are pinned in ``CRASHERS``, one test each.
"""

from __future__ import annotations

import contextlib
import difflib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from scraper.errors import SpecError
from scraper.expect import EXPECT_KEYS
from scraper.regexspec import FLAG_ALIASES, FLAGS
from scraper.spec import (
    PAGE_KEYS,
    SETTING_KEYS,
    SPIDER_KEYS,
    TOP_KEYS,
    SpiderFile,
    parse_spiders,
)

FILENAME = "spiders.yaml"
SHIPPED = (Path(__file__).resolve().parents[1] / "spiders.yaml").read_text(encoding="utf-8")

TRIED: Counter[str] = Counter()
"""Documents tried, by test; reported at the end of the module."""

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    report_multiple_bugs=False,  # one falsifying example a test; CRASHERS pins the others
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def report_documents_tried(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many documents the module tried, past pytest's output capture."""
    yield
    if not TRIED:
        return
    parts = ", ".join(f"{name}: {n}" for name, n in sorted(TRIED.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\ntest_fuzz: {sum(TRIED.values())} spider documents tried ({parts})")


def loads_or_refuses(text: str, source: str) -> SpiderFile | SpecError:
    """Parse ``text``; a SpecError is an answer, any other exception fails the test."""
    TRIED[source] += 1
    try:
        spider_file = parse_spiders(text, FILENAME)
    except SpecError as error:
        message = str(error)
        assert message.startswith(FILENAME), message
        assert message.strip(), "an empty message"
        assert "Traceback" not in message, message
        return error
    assert isinstance(spider_file, SpiderFile)
    return spider_file


# -- (a) any text ---------------------------------------------------------------------------------


@settings(FUZZ, max_examples=1500)
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    loads_or_refuses(text, "text")


TOKENS = [*" \t\n:-[]{},'\"&*!|>#%@`?\\", "spiders", "start", "pattern", "x", "http://a/{n}"]


@settings(FUZZ, max_examples=500)
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_yaml_punctuation(text: str) -> None:
    loads_or_refuses(text, "punctuation")


# -- (b) YAML documents made of the format's own keys ---------------------------------------------

REGEX_FRAGMENTS = [
    "(",
    ")",
    "(?P<x>",
    "(?P<x>a)",
    '(?P<url>[^"]+)',
    "(a)(b)",
    "[",
    "[^<]+",
    "\\",
    "\\d+",
    "*",
    "a{2,1}",
    "x{99999}",
    "(?i)",
    "(?L)x",
    "(?P<_h>x)",
    "(?P=x)",
    ".*?",
    "(?:\\.\\d+)+",
    "(?>a+|b)*",
    "\\p{Han}+",
    "(?<=a|bc)",
]
TEMPLATES = [
    "http://a/",
    "https://b.example/p/{n}",
    "http://a/{n}/{m}",
    "http://{n}/",
    "{x}",
    "http://a/{",
    "http://a/}",
    "http://a/{}",
    "http://a/{0}",
    "http://a/{n:d}",
    "http://a/{n!r}",
    "http://a/{n.real}",
    "http://a/{n[0]}",
    "ftp://a/",
    "a",
    "",
]
WORDS = [
    "main",
    "list",
    "detail",
    "int",
    "float",
    "text",
    "strip",
    "raw",
    "required",
    "unescape",
    "urljoin",
    "paragraphs",
    "split",
    "findall",
    "json",
    "json_string",
    "sub",
    "default",
    "range",
    "url",
    "page",
    "to",
    "n",
    "m",
    "spiders.x:parse",
    "a:b:c",
    "yes",
    "no",
    "~",
    "2001-02-30",
    "0x1F",
    "1_000",
    "{a}.{b}",
    *FLAGS,
    *FLAG_ALIASES,
]
TAGS = ["!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!null ", "!!str ", "!!binary ", "!!map "]
"""Explicit tags of plain YAML: the loader allows them, so it must cope with what they build."""
KEYS = sorted({*TOP_KEYS, *SPIDER_KEYS, *PAGE_KEYS, *SETTING_KEYS, *EXPECT_KEYS, "url", "to"})
KEYS += ["path", "field", "carry"]  # of follow rules

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=40),
    st.integers(),
    st.floats(),
    st.sampled_from(REGEX_FRAGMENTS + TEMPLATES + WORDS),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=8,
)
"""Any YAML value, made of the format's words and keys as often as of anything else."""


@st.composite
def entries(
    draw: st.DrawFn,
    plausible: dict[str, st.SearchStrategy[Any]],
    required: tuple[str, ...] = (),
    max_keys: int = 4,
) -> dict[str, Any]:
    """A mapping of a few of ``plausible``'s keys, each value plausible nine times in ten.

    Mostly-right documents get past the first checks, to the ones deep in the loader.
    """
    chosen = draw(st.lists(st.sampled_from(sorted(plausible)), max_size=max_keys, unique=True))
    result: dict[str, Any] = {}
    for key in [*required, *chosen]:
        right = draw(st.integers(0, 9)) > 0
        result[key] = draw(plausible[key] if right else values)
    if draw(st.integers(0, 9)) == 0:
        result[draw(keys)] = draw(values)
    return result


def some_of(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value of ``strategy`` or a short list of them."""
    return st.one_of(strategy, st.lists(strategy, max_size=3))


def mapping_of(names: list[str], strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.dictionaries(st.sampled_from(names), strategy, max_size=3)


patterns = st.lists(st.sampled_from(REGEX_FRAGMENTS), min_size=1, max_size=4).map("".join)
words = st.sampled_from(WORDS)
small = st.integers(-1, 50)
seconds = st.one_of(st.floats(-1, 30), small)
variables = mapping_of(
    ["n", "m", "x", "offset"],
    st.one_of(
        st.fixed_dictionaries({"range": st.lists(st.integers(-5, 10**5), max_size=4)}),
        st.lists(scalars, max_size=4),
        scalars,
    ),
)
processor = st.one_of(
    words, mapping_of(["sub", "default", "int", "raw", "split", "findall"], values)
)
SETTINGS = {
    **dict.fromkeys(["concurrency", "per_host", "max_bytes", "retries", "max_redirects"], small),
    **dict.fromkeys(["max_depth", "max_pages"], small),
    **dict.fromkeys(["timeout", "extract_timeout", "callback_timeout"], seconds),
    **dict.fromkeys(["delay", "jitter"], seconds),
    "robots": st.booleans(),
    "wire": st.sampled_from(["aiohttp", "curl", "CURL", "httpx", ""]),
    "proxy": st.sampled_from(["http://127.0.0.1:3128", "socks5://p:1080", "ftp://p", "p"]),
    "content_types": some_of(st.sampled_from(["text/", "*", "json", "TEXT/HTML"])),
    "only": some_of(patterns),
    "skip": some_of(patterns),
    "allowed_domains": some_of(st.sampled_from(["a", "b.example", ".c.example", "A.EXAMPLE"])),
    "headers": mapping_of(
        ["User-Agent", "Accept", "X-N", "Bad Name", "X\n"],
        st.one_of(st.text(max_size=8), small),
    ),
}
assert set(SETTINGS) == set(SETTING_KEYS)
JSON_PATHS = ["", "@", ".", "a", "a.b", ".a[0]", "a[-1].b", "a[*].x", '"a.b"', "a[]"]
JSON_PATHS += ["a..b", "a.", "a[", "a[x]", "a.0", '"a', "a b", "a.@", "[0]x", "-1", "a[1-]"]
json_paths = st.one_of(st.sampled_from(JSON_PATHS), st.text(max_size=6))
FOLLOW = {
    "pattern": patterns,
    "path": json_paths,
    "field": st.sampled_from(["a", "b", "x", "url", "_h"]),
    "carry": some_of(st.sampled_from(["a", "b", "x", "url"])),
    "to": st.sampled_from(["main", "list", "detail", "nowhere"]),
    "flags": some_of(words),
    "clean": mapping_of(["x", "a", "url", "x, a", "*"], some_of(processor)),
}
PAGE = {
    "pattern": patterns,
    "flags": some_of(words),
    "fields": st.one_of(
        some_of(st.sampled_from(["a", "b", "x", "_h", "url", "match"])),
        mapping_of(["a", "b", "x", "url", "_h"], json_paths),  # a JSON page kind's paths
    ),
    "clean": mapping_of(["a", "b", "x", "url", "match", "a, b", "*", "a,x,a"], some_of(processor)),
    "format": mapping_of(["s", "a", "_h"], st.sampled_from(WORDS + TEMPLATES)),
    "follow": some_of(
        st.one_of(
            *(
                entries(FOLLOW, required=(source, "to"), max_keys=2)
                for source in ("pattern", "path", "field")  # where a rule's links come from
            )
        )
    ),
    "callback": words,
    "from": patterns,
    "items": json_paths,
    "page_fields": entries(
        {
            "pattern": patterns,
            "flags": some_of(words),
            "clean": mapping_of(["x", "url", "_h", "x, url", "*"], some_of(processor)),
        },
        required=("pattern",),
    ),
}
EXPECT = {
    **dict.fromkeys(["min_records", "max_records", "max_failed_pages", "max_empty_pages"], small),
    "required": some_of(words),
    "unique": some_of(words),
    "sample": some_of(mapping_of(["a", "x", "n"], scalars)),
}
SPIDER_ENTRIES = {
    "start": some_of(
        st.one_of(
            st.sampled_from(TEMPLATES),
            st.fixed_dictionaries({"url": st.sampled_from(TEMPLATES)}, optional={"page": words}),
        )
    ),
    "vars": variables,
    "description": scalars,
    "constants": mapping_of(["source", "n", "url"], values),
    "url_field": words,
    "unique": some_of(st.sampled_from(["a", "x", "url", "source", "match", "_h", "a"])),
    "expect": entries(EXPECT),
    "pages": mapping_of(
        ["main", "list", "detail"],
        entries(
            {
                **PAGE,
                "constants": mapping_of(["source", "n"], values),
                "unique": some_of(st.sampled_from(["a", "b", "x", "url", "source", "n"])),
            }
        ),
    ),
    **PAGE,
    **SETTINGS,
}
documents = st.one_of(
    st.fixed_dictionaries(
        {
            "spiders": mapping_of(
                ["a", "b", "maoyan"], entries(SPIDER_ENTRIES, required=("start",), max_keys=5)
            )
        },
        optional={"defaults": entries(SETTINGS)},
    ),
    values,
)


@settings(FUZZ, max_examples=1500)
@given(documents, st.booleans(), st.sampled_from(["", "", *TAGS]), st.integers(0, 10_000))
def test_structured_yaml(document: Any, flow_style: bool, tag: str, where: int) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow_style, allow_unicode=True)
    if tag:  # an explicit tag on one value: the loader must refuse what it cannot build
        colon = text.find(": ", where % (len(text) or 1))
        if colon >= 0:
            text = text[: colon + 2] + tag + text[colon + 2 :]
    loads_or_refuses(text, "structured")


# -- (c) mutations of the shipped spiders.yaml ----------------------------------------------------

TOKENS_INSERTED = [
    *":{}[],'\"&*!|>#%@`?-\\\t \n()",
    *TAGS,
    "{}",
    "{n:d}",
    "{offset",
    "&a ",
    "*a",
    "<<: ",
    "? ",
    "--- ",
    "2001-02-30",
    "1e400",
    "- ",
    "  ",
]
SPECIAL = frozenset("{}[]()'\":\\-&*!#")
LINE_OPS = ["drop", "dup", "swap", "indent", "dedent"]
CHAR_OPS = ["del", "ins", "repl", "tag"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """spiders.yaml with a few characters or lines deleted, inserted, moved or re-indented.

    Half the character edits land on a character YAML, regexes or templates give meaning
    to (quotes, brackets, braces, colons ...), where a small edit changes the most.
    """
    text = SHIPPED
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 5]))):
        op = draw(st.sampled_from(CHAR_OPS + LINE_OPS))
        if op in CHAR_OPS:
            special = [i for i, char in enumerate(text) if char in SPECIAL]
            anywhere = st.integers(0, max(len(text) - 1, 0))
            at = draw(st.one_of(anywhere, st.sampled_from(special)) if special else anywhere)
            if op == "del":
                text = text[:at] + text[at + 1 :]
            elif op == "ins":
                text = text[:at] + draw(st.sampled_from(TOKENS_INSERTED)) + text[at:]
            elif op == "repl":
                piece = draw(st.one_of(st.sampled_from(TOKENS_INSERTED), st.characters()))
                text = text[:at] + piece + text[at + 1 :]
            else:  # a tag on the value after the next ': '
                colon = text.find(": ", at)
                if colon >= 0:
                    text = text[: colon + 2] + draw(st.sampled_from(TAGS)) + text[colon + 2 :]
            continue
        lines = text.splitlines(keepends=True) or ["\n"]
        row = draw(st.integers(0, len(lines) - 1))
        line = lines[row]
        if op == "drop":
            del lines[row]
        elif op == "dup":
            lines.insert(row, line)
        elif op == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[row], lines[other] = lines[other], lines[row]
        elif op == "indent":
            lines[row] = " " * draw(st.integers(1, 4)) + line
        else:
            spaces = len(line) - len(line.lstrip(" "))
            lines[row] = line[min(draw(st.integers(1, 4)), spaces) :]
        text = "".join(lines)
    return text


@settings(FUZZ, max_examples=1500)
@given(mutated())
def test_mutated_shipped_file(text: str) -> None:
    diff = difflib.unified_diff(SHIPPED.splitlines(), text.splitlines(), lineterm="", n=0)
    note("\n".join(diff))  # shown with a falsifying example: the mutation, not the whole file
    loads_or_refuses(text, "mutated")


def test_shipped_file_loads() -> None:
    spider_file = loads_or_refuses(SHIPPED, "shipped")
    assert isinstance(spider_file, SpiderFile)
    assert list(spider_file.spiders) == ["maoyan", "douban", "books"]


# -- crashers found by the fuzzers, pinned ---------------------------------------------------------

SPIDER = "spiders:\n  t:\n    start: {start}\n    pattern: {pattern}\n{extra}"

CRASHERS = {
    # YAML resolves these to timestamps, ints, floats or bools and the constructor fails
    # with ValueError, KeyError or AttributeError instead of a ConstructorError.
    "impossible date": {"extra": "    description: 2001-02-30\n"},
    "!!int on text": {"extra": "    concurrency: !!int abc\n"},
    "!!float on text": {"extra": "    timeout: !!float abc\n"},
    "!!bool on text": {"extra": "    robots: !!bool abc\n"},
    "!!timestamp on text": {"extra": "    description: !!timestamp abc\n"},
    # Start URL templates that str.format cannot fill.
    "start with a lone {": {"start": "'http://a/{'"},
    "start with a lone }": {"start": "'http://a/}'"},
    "start with {}": {"start": "'http://a/{}'"},
    "start with a format spec": {"start": "'http://a/{n:d}'", "extra": "    vars: {n: [a]}\n"},
    "start with a conversion": {"start": "'http://a/{n!z}'", "extra": "    vars: {n: [a]}\n"},
    "start with a nested field": {"start": "'http://a/{n:{m}}'", "extra": "    vars: {n: [a]}\n"},
    "range past ssize_t": {
        "start": "'http://a/{n}'",
        "extra": "    vars: {n: {range: [0, 100000000000000000000000000000]}}\n",
    },
    # Nesting deep enough for the recursive parsers.
    "deeply nested pattern": {"pattern": "'" + "(" * 2000 + ")" * 2000 + "'"},
    "deeply nested YAML": {"extra": "    constants: " + "[" * 3000 + "]" * 3000 + "\n"},
    # Recursion that PyYAML's composer survives but its constructor, or ours, did not.
    "recursive alias": {"extra": "    constants: &a {loop: *a}\n"},
    "recursive alias in a list": {"extra": "    vars: &a {n: [*a]}\n", "start": "'http://a/{n}'"},
    "a list 300 deep": {"extra": "    constants: {a: " + "[" * 300 + "]" * 300 + "}\n"},
    "a block list 300 deep": {
        "extra": "    constants:\n      a:\n"
        + "".join("  " * (depth + 4) + "-\n" for depth in range(300))
    },
    "a thousand vars": {
        "start": "'http://a/" + "".join(f"{{v{i}}}" for i in range(1000)) + "'",
        "extra": "    vars:\n" + "".join(f"      v{i}: [a]\n" for i in range(1000)),
    },
}


@pytest.mark.parametrize("name", list(CRASHERS))
def test_crasher_loads_or_is_refused(name: str) -> None:
    parts = {"start": "http://a/", "pattern": "x", "extra": "", **CRASHERS[name]}
    loads_or_refuses(SPIDER.format(**parts), "pinned")


# -- bombs: small files that ask for a lot ---------------------------------------------------------

LAUGHS = 9
"""Nine levels of ten aliases: 10**9 strings if anything expands them."""


def alias_bomb(extra: str = "", pattern: str = "x") -> str:
    """A spider whose constants hold a "billion laughs" (anchors l0..l9), then ``extra``."""
    lines = ["      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, LAUGHS + 1):
        lines.append(f"      l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    start = "http://a/{n}" if "vars:" in extra else "http://a/"
    head = f"spiders:\n  t:\n    start: '{start}'\n    pattern: '{pattern}'\n    constants:\n"
    return head + "\n".join(lines) + "\n" + extra


BOMBS = {
    "alias bomb in constants": alias_bomb(),
    "alias bomb in vars": alias_bomb(f"    vars:\n      n: [*l{LAUGHS}]\n"),
    "alias bomb in expect: sample": alias_bomb(f"    expect: {{sample: {{laughs: *l{LAUGHS}}}}}\n"),
    "alias bomb in a default": alias_bomb(
        f"    clean: {{a: {{default: *l{LAUGHS}}}}}\n", pattern="(?P<a>x)"
    ),
    # The docstring of StartTemplate promises that a range costs no memory.
    "range of a hundred million": SPIDER.format(
        start="'http://a/{n}'", pattern="x", extra="    vars: {n: {range: [0, 100000000]}}\n"
    ),
}

BOMB_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from scraper.errors import SpecError
from scraper.spec import parse_spiders
try:
    parse_spiders(sys.stdin.read(), "spiders.yaml")
except SpecError as error:
    print("SpecError", error)
else:
    print("loaded")
"""


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_loads_or_is_refused_quickly(name: str) -> None:
    # In a child process under a 1 GiB address-space limit, so a bomb that goes off costs
    # this test, not the machine.
    started = time.monotonic()
    try:
        child = subprocess.run(
            [sys.executable, "-c", BOMB_CHILD],
            input=BOMBS[name],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parents[1],
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: still loading after 5 s")
    elapsed = time.monotonic() - started
    assert child.returncode == 0, child.stderr[-1500:]
    assert child.stdout.startswith(("loaded", "SpecError spiders.yaml")), child.stdout
    assert elapsed < 3.0
