"""Hostile spider files, values, cassettes and callback folders (issue 10, the spec part).

Each test feeds one input that used to crash, freeze or corrupt a run and asserts what a
user sees now: the exact error (file:line:col and what to change), the records written,
the counts by reason, the exit status. Crawls run against tests/server.py's FixtureSite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from scraper.cli import main
from scraper.errors import SpecError
from scraper.spec import parse_spiders
from tests.server import FixtureSite
from tests.test_cli import ENV, jsonl

SPIDER = "spiders:\n  t:\n    start: {start}\n    pattern: '{pattern}'\n{extra}"


def refused(start: str = "http://a/", pattern: str = "x", extra: str = "", text: str = "") -> str:
    """The message ``parse_spiders`` refuses a one-spider file with."""
    document = text or SPIDER.format(start=start, pattern=pattern, extra=extra)
    with pytest.raises(SpecError) as caught:
        parse_spiders(document, "spiders.yaml")
    return str(caught.value)


# -- 1. spider files that crashed the loader, and sizes -------------------------------------------


def test_a_recursive_alias_is_refused_where_its_anchor_is() -> None:
    assert refused(text="spiders: &a [*a]\n") == (
        "spiders.yaml:1:10: this anchor (&name) is used by an alias (*name) inside its own "
        "value, so the value would never end; remove the alias."
    )


def test_a_list_300_deep_under_constants_is_refused() -> None:
    message = refused(extra="    constants:\n      a: " + "[" * 300 + "]" * 300 + "\n")
    assert message == (
        "spiders.yaml:6:70: lists or mappings nest more than 64 deep here; a spider file "
        "needs a few levels. Flatten it."
    )


def test_a_thousand_vars_are_refused() -> None:
    start = "'http://a/" + "".join(f"{{v{i}}}" for i in range(1000)) + "'"
    extra = "    vars:\n" + "".join(f"      v{i}: [a]\n" for i in range(1000))
    assert refused(start=start, extra=extra) == (
        "spiders.yaml:5:5: spider 't': vars defines 1,000 names; the most is 100. "
        "Put values that go together in one var's list."
    )


def test_a_hundred_vars_make_their_url_without_recursion() -> None:
    start = "'http://a/" + "".join(f"{{v{i}}}" for i in range(100)) + "'"
    extra = "    vars:\n" + "".join(f"      v{i}: [{i % 10}]\n" for i in range(100))
    spider = parse_spiders(SPIDER.format(start=start, pattern="x", extra=extra)).get("t")
    assert [r.url for r in spider.start] == ["http://a/" + "0123456789" * 10]


def test_check_refuses_a_spider_file_past_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", "/dev/zero"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: /dev/zero: the file is larger than 1 MiB, the most a spider file "
        "may be; a spider file needs a few kilobytes. Check that --file names the spider file.\n"
    )


def test_try_refuses_a_page_file_past_max_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["try", "/dev/zero", "--pattern", "x"]) == 2
    assert capsys.readouterr().err == (
        "scraper: error: /dev/zero is larger than 8,388,608 bytes, the most a page may be "
        "(max_bytes); try a smaller page, or raise max_bytes in the spider.\n"
    )


# -- 2. what check must catch ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            "      User-Agent: >\n        mybot/1.0\n",
            "spiders.yaml:6:19: spider 't': headers: User-Agent: the value 'mybot/1.0\\n' holds "
            "'\\n', which a header cannot send; write the value on one line, with no control "
            "characters (a '>' or '|' block keeps a line break at its end: use a plain or "
            "quoted string).",
        ),
        (
            '      X-Id: "a\\r\\nSet-Cookie: x=1"\n',
            "spiders.yaml:6:13: spider 't': headers: X-Id: the value 'a\\r\\nSet-Cookie: x=1' "
            "holds '\\r', which a header cannot send; write the value on one line, with no "
            "control characters (a '>' or '|' block keeps a line break at its end: use a plain "
            "or quoted string).",
        ),
        (
            "      'User Agent': mybot\n",
            "spiders.yaml:6:7: spider 't': headers: the header name 'User Agent' cannot be sent: "
            "a name is letters, digits and !#$%&'*+-.^_`|~, with no space, colon or control "
            "character.",
        ),
    ],
    ids=["folded value", "CR LF in a value", "space in a name"],
)
def test_check_refuses_headers_that_cannot_be_sent(headers: str, message: str) -> None:
    assert refused(extra="    headers:\n" + headers) == message


def test_a_socks_proxy_is_refused_at_load() -> None:
    assert refused(extra="    proxy: socks5://127.0.0.1:1080\n") == (
        "spiders.yaml:5:12: spider 't': proxy must be an http:// or https:// URL such as "
        "http://host:3128, not 'socks5://127.0.0.1:1080'; SOCKS and other proxies are not "
        "supported."
    )


def test_a_replacement_naming_a_missing_group_is_refused_at_the_sub() -> None:
    message = refused(pattern="(?P<a>x)", extra="    clean: {a: {sub: ['rec', '\\9']}}\n")
    assert message == (
        "spiders.yaml:5:22: spider 't': clean: a: sub replacement '\\9' cannot be used with the "
        "pattern 'rec' (no groups): no such group; refer only to its groups (\\1 or \\g<name>; "
        "\\g<0> is the whole match) and write a literal backslash as \\\\."
    )


@pytest.mark.parametrize(
    ("value", "column", "written"),
    [(".inf", 21, "'.inf'"), (".nan", 21, "'.nan'")],
)
def test_constants_json_cannot_hold_are_refused(value: str, column: int, written: str) -> None:
    assert refused(extra=f"    constants: {{d: [{value}]}}\n") == (
        f"spiders.yaml:5:{column}: spider 't': constants: d: {written} is not a finite "
        "number, which JSON cannot hold; quote it to keep it as text."
    )


def test_binary_constants_are_refused() -> None:
    assert refused(extra="    constants: {d: !!binary aGVsbG8=}\n") == (
        "spiders.yaml:5:20: spider 't': constants: d: a !!binary value cannot be written "
        "into a JSON record; remove the tag to keep it as text."
    )


def test_a_bare_date_is_read_as_the_text_written() -> None:
    extra = (
        "    clean: {a: {default: 2024-01-01}}\n"
        "    constants: {day: 2024-01-02, moment: 2001-12-14t21:59:43.10-05:00}\n"
    )
    spider = parse_spiders(SPIDER.format(start="http://a/", pattern="(?P<a>x)?", extra=extra))
    constants = spider.get("t").constants
    assert constants == {"day": "2024-01-02", "moment": "2001-12-14t21:59:43.10-05:00"}
    default = spider.get("t").pages["main"].clean["a"][0]
    assert default(None, None) == "2024-01-01"  # type: ignore[arg-type]


def test_a_date_default_carried_under_resume_is_written(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/list", "".join(f'<a href="/item/{n}">' for n in range(3)))
    for n in range(3):
        site.add(f"/item/{n}", f"<h1>item {n}</h1>")
    spiders = tmp_path / "spiders.yaml"
    spiders.write_text(
        textwrap.dedent(f"""\
        spiders:
          t:
            start: {site.url("/list")}
            pages:
              list:
                follow:
                  - pattern: '<a href="(?P<url>[^"]+)"(?P<day>)>'
                    to: item
                    clean: {{day: {{default: 2024-01-01}}}}
                pattern: 'never'
              item:
                pattern: '<h1>(?P<name>[^<]+)</h1>'
            constants: {{source: 2024-02-02}}
        """),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    code = main(["run", "t", "-f", str(spiders), "-o", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "WARNING" not in err  # every page kept in the state: no date JSON cannot store
    records = sorted(jsonl(out.read_text(encoding="utf-8")), key=lambda r: r["name"])
    assert records == [
        {"name": f"item {n}", "day": "2024-01-01", "source": "2024-02-02"} for n in range(3)
    ]


# -- 3. processors that wrote non-JSON or raised --------------------------------------------------


def test_float_drops_values_that_are_not_finite_and_text_never_raises(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    values = ["1.5", "inf", "nan", "-Infinity", "1e999", "2"]
    site.add(
        "/values",
        "".join(f"<p><i>{v}</i><b>a\x0bb &#1;c <em>d</em>&#x1F600;</b></p>" for v in values),
    )
    spiders = tmp_path / "spiders.yaml"
    spiders.write_text(
        textwrap.dedent(f"""\
        spiders:
          t:
            start: {site.url("/values")}
            pattern: '<i>(?P<v>[^<]*)</i><b>(?P<note>.*?)</b>'
            clean: {{v: float, note: text}}
        """),
        encoding="utf-8",
    )
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    code = main(["run", "t", "-f", str(spiders), "-o", str(out), "--stats-to", str(stats)])
    assert code == 0, capsys.readouterr().err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"v": 1.5, "note": "a b c d😀"},
        {"v": 2.0, "note": "a b c d😀"},
    ]
    assert "Infinity" not in out.read_text(encoding="utf-8")
    counts = json.loads(stats.read_text(encoding="utf-8"))
    assert counts["dropped"] == {"v: not finite": 4}
    assert counts["failed"] == {}


# -- 4. a start template with a variable in its host ----------------------------------------------

HOST_TEMPLATE = SPIDER.format(
    start="'http://h{n}.example/{p}'",
    pattern="x",
    extra="    vars: {n: NS, p: PS}\n",
)


def test_a_host_variable_with_too_many_values_needs_allowed_domains() -> None:
    text = HOST_TEMPLATE.replace("NS", "{range: [0, 20000000]}").replace("PS", "[a]")
    assert refused(text=text) == (
        "spiders.yaml:3:12: spider 't': start URL template has a variable in its host "
        "({n}: 20,000,000 hosts); list allowed_domains: the domains the crawl may go to "
        "(without it, a host variable may have 10,000 values at most)."
    )
    listed = text + "    allowed_domains: [example]\n"
    assert parse_spiders(listed).get("t").settings.allowed_domains == ("example",)


def test_hosts_enumerate_only_the_host_variables() -> None:
    text = HOST_TEMPLATE.replace("NS", "[1, 2]").replace("PS", "{range: [0, 20000000]}")
    start = parse_spiders(text).get("t").start
    assert len(start) == 40_000_000
    started = time.monotonic()
    assert start.hosts() == ("h1.example", "h2.example")
    assert time.monotonic() - started < 0.5


# -- 6. callback folders that shadow the tool's own modules ---------------------------------------

SHADOWED = ["protego", "sqlite3", "aiohttp", "charset_normalizer", "httpx", "lxml", "json"]
SHADOWED += ["vcr", "difflib"]  # scraper.callbacks.TOOL_MODULES, each beside the spider file
SHADOW = """\
import pathlib
pathlib.Path(__file__).with_suffix(".imported").write_text("imported")
raise RuntimeError("SHADOW {name}.py from the spider folder was imported")
"""


def test_modules_beside_the_spider_file_never_stand_in_for_the_tools(
    tmp_path: Path, site: FixtureSite
) -> None:
    site.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    site.add("/board", "".join(f'<a href="/film/{n}">' for n in range(3)))
    for n in range(3):  # no charset anywhere, not UTF-8: detected by charset_normalizer
        body = f"<html><body><h1>Фильм номер {n}: Приключения</h1></body></html>"
        site.add(f"/film/{n}", body.encode("cp1251"), content_type="text/html")
    project = tmp_path / "project"
    (project / "spiders").mkdir(parents=True)
    for name in SHADOWED:
        (project / f"{name}.py").write_text(SHADOW.format(name=name), encoding="utf-8")
    (project / "spiders" / "__init__.py").write_text("", encoding="utf-8")
    (project / "spiders" / "helper.py").write_text(
        "def shout(text):\n    return text.upper()\n", encoding="utf-8"
    )
    (project / "spiders" / "films.py").write_text(
        textwrap.dedent("""\
        def parse(page):
            from spiders.helper import shout  # a sibling imported late, through the package

            for record in page.records:
                yield {**record, "loud": shout(record["title"])}
        """),
        encoding="utf-8",
    )
    (project / "spiders.yaml").write_text(
        textwrap.dedent(f"""\
        spiders:
          films:
            start: {site.url("/board")}
            pages:
              board:
                follow: [{{pattern: '<a href="(?P<url>[^"]+)">', to: film}}]
              film:
                pattern: '<h1>(?P<title>.*?)</h1>'
                clean: {{title: text}}
                callback: spiders.films:parse
        """),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    # The console script, run from elsewhere: its sys.path does not hold the project.
    command = [str(Path(sys.executable).with_name("scraper")), "run", "films"]
    command += ["-f", str(project / "spiders.yaml"), "-o", str(out), "--resume"]
    child = subprocess.run(
        command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60
    )
    assert sorted(p.name for p in project.glob("*.imported")) == []
    assert child.returncode == 0, child.stderr
    assert "SHADOW" not in child.stderr
    records = sorted(jsonl(out.read_text(encoding="utf-8")), key=lambda r: r["title"])
    assert [r["loud"] for r in records] == [f"ФИЛЬМ НОМЕР {n}: ПРИКЛЮЧЕНИЯ" for n in range(3)]
    assert site.count("/robots.txt") == 1


# -- 7. malformed cassettes -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run", "t", "--offline", "-o", "out.jsonl"], ["test", "t"]])
def test_a_malformed_cassette_names_the_file_and_the_interaction(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spiders.yaml").write_text(
        SPIDER.format(start="http://a.example/", pattern="x", extra=""), encoding="utf-8"
    )
    good = {
        "request": {"body": "", "headers": {}, "method": "GET", "uri": "http://a.example/"},
        "response": {
            "body": {"string": "x"},
            "headers": {"content-type": ["text/html"]},
            "status": {"code": 200, "message": "OK"},
        },
    }
    bad = json.loads(json.dumps(good))
    bad["response"]["body"] = {"string": 5}
    cassette = tmp_path / "spiders" / "cassettes" / "t.yaml"
    cassette.parent.mkdir(parents=True)
    cassette.write_text(yaml.safe_dump({"interactions": [good, bad], "version": 1}))
    assert main(command) == 2
    assert capsys.readouterr().err == (
        f"scraper: error: the cassette {Path('spiders/cassettes/t.yaml')}: interaction 2: "
        "response: body: string must be text, not 5. Fix that entry, or record the cassette "
        "again with --record.\n"
    )


def test_a_template_past_sys_maxsize_urls_is_refused_by_its_count() -> None:
    start = "'http://a/{a}{b}{c}{d}'"
    extra = "    vars:\n" + "".join(f"      {name}: {{range: [0, 100000]}}\n" for name in "abcd")
    assert refused(start=start, extra=extra) == (
        "spiders.yaml:3:12: spider 't': start makes 100,000,000,000,000,000,000 URLs; "
        "the most is 100,000,000. Use smaller ranges."
    )
