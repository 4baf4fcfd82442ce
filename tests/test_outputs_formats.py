"""Each output format's own rules: CSV's header and cells, the JSON array's brackets,
SQLite's columns, types, upsert, WAL and rewind; the options that choose and shape them.

What every format promises alike (kill -9, Ctrl-C, --resume, Redis) is in test_outputs.py.
"""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import sqlite3
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from scraper.errors import OutputError, ScraperError
from scraper.output import open_output
from scraper.output.sqlite import SqliteOutput
from scraper.spec import SpiderSpec, parse_spiders
from tests.server import FixtureSite
from tests.test_outputs import catalogue, finish, many, read_records, scraper, wait_for_records
from tests.test_resume import LISTS, SPIDER, write_spider

SHOP = r"""
spiders:
  shop:
    start: https://shop.example/list
    constants: {source: shop}
    url_field: url
    pages:
      list:
        page_fields: {pattern: '<h1>(?P<category>[^<]+)</h1>'}
        pattern: '<li>(?P<name>[^<]+)<b>(?P<price>[^<]*)</b></li>'
        format: {label: '{name} ({price})'}
        clean: {price: float}
        follow:
          - {pattern: '<a href="(?P<url>[^"]+)" data-rank="(?P<rank>\d+)"', to: item,
             clean: {rank: int}}
      item:
        pattern: '<h2>(?P<title>[^<]+)</h2><i>(?P<stock>\d*)</i><p>(?P<tags>[^<]*)</p>'
        clean: {stock: int, tags: [{split: ','}]}
        constants: {kind: detail}
"""
SHOP_COLUMNS = [
    "name", "price", "label", "category", "source", "url",
    "title", "stock", "tags", "kind", "rank",
]  # fmt: skip


def spider_of(text: str) -> SpiderSpec:
    spiders = parse_spiders(textwrap.dedent(text)).spiders
    return next(iter(spiders.values()))


def written(path: Path, spider: SpiderSpec, *pages: list[dict[str, Any]], **options: Any) -> Any:
    """Write each page's records to ``path`` through ``open_output``; the output, closed."""
    output = open_output(path, spider, **options)
    try:
        for records in pages:
            output.write(records, url="https://shop.example/list")
    finally:
        output.close()
    return output


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def table_rows(path: Path, table: str, query: str = "select * from {t} order by rowid") -> Any:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(query.format(t=f'"{table}"')).fetchall()


# -- choosing the format ------------------------------------------------------------------------


def test_the_extension_chooses_the_format_and_format_overrides_it(tmp_path: Path) -> None:
    spider = spider_of(SHOP)
    for name, kind in [
        ("a.jsonl", "JsonLinesWriter"),
        ("a.txt", "JsonLinesWriter"),
        ("a.CSV", "CsvWriter"),
        ("a.json", "JsonArrayWriter"),
        ("a.db", "SqliteOutput"),
        ("a.sqlite", "SqliteOutput"),
        ("a.sqlite3", "SqliteOutput"),
    ]:
        assert type(written(tmp_path / name, spider)).__name__ == kind, name
    assert type(written(tmp_path / "b.txt", spider, format="csv")).__name__ == "CsvWriter"
    assert csv_rows(tmp_path / "b.txt") == [SHOP_COLUMNS]


def test_dash_is_stdout_as_json_lines_and_format_may_say_csv(
    site: FixtureSite, tmp_path: Path
) -> None:
    many(site, tmp_path, pages=2)
    code, out, err = finish(scraper(tmp_path, "run", "many", "-q", "-o", "-"))
    assert code == 0, err
    assert len([json.loads(line) for line in out.splitlines()]) == 100
    code, out, err = finish(scraper(tmp_path, "run", "many", "-q", "--format", "csv"))
    assert code == 0, err
    assert out.splitlines()[0] == "item"
    assert '"0-0 海镇来客, ""quoted"""' in out.splitlines()[1:]
    assert len(out.splitlines()) == 101
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spiders.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "a.db", "--bom"], "--bom goes with a CSV output (-o PATH.csv or --format csv)."),
        (["-o", "a.csv", "--table", "t"], "--table goes with a SQLite output (-o PATH.db or "
         "--format sqlite)."),
        (["--key", "item"], "--key goes with a SQLite output (-o PATH.db or --format sqlite)."),
        (["--format", "sqlite"], "a SQLite output needs a file: give one with -o PATH.db "
         "(stdout takes jsonl, csv or json)."),
        (["-o", "a.db", "--key", "itme"], "--key names field 'itme', which the records of "
         "spider 'many' do not have (they have: item) (did you mean 'item'?)."),
        (["-o", "a.db", "--key", "item,,"], "--key names an empty field name: give FIELD,... "
         "each once."),
        (["-o", "a.db", "--table", "sqlite_x"], "--table 'sqlite_x' cannot name a table: names "
         "starting with sqlite_ or _scraper_ are kept for SQLite and scraper; choose another "
         "with --table NAME."),
    ],
)  # fmt: skip
def test_output_options_that_do_not_fit_are_refused_before_the_crawl(
    site: FixtureSite, tmp_path: Path, args: list[str], message: str
) -> None:
    many(site, tmp_path, pages=2)
    code, out, err = finish(scraper(tmp_path, "run", "many", *args))
    assert (code, out, err) == (2, "", f"scraper: error: {message}\n")
    assert site.requests == []


def test_an_output_that_is_not_a_database_is_refused(site: FixtureSite, tmp_path: Path) -> None:
    many(site, tmp_path, pages=2)
    (tmp_path / "notes.db").write_text("not a database, just notes\n" * 100)
    code, _, err = finish(scraper(tmp_path, "run", "many", "-o", "notes.db"))
    assert code == 1
    assert err == (
        "scraper: error: cannot write the table 'many' of notes.db: file is not a database. "
        "Choose another path with -o PATH (or another table with --table NAME).\n"
    )
    assert (tmp_path / "notes.db").read_text() == "not a database, just notes\n" * 100
    assert site.requests == []


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_header_is_every_field_in_the_order_the_spider_defines_them(tmp_path: Path) -> None:
    listing = {"name": "Pen", "price": 1.5, "label": "Pen (1.5)", "category": "Office"}
    listing |= {"source": "shop", "url": "https://shop.example/list"}
    detail = {"rank": 3, "title": "Pen", "stock": None, "tags": ["blue", "ink"]}
    detail |= {"kind": "detail", "source": "shop", "url": "https://shop.example/pen"}
    written(tmp_path / "out.csv", spider_of(SHOP), [listing], [detail])
    rows = csv_rows(tmp_path / "out.csv")
    assert rows[0] == SHOP_COLUMNS
    assert [dict(zip(rows[0], row, strict=True)) for row in rows[1:]] == [
        {**dict.fromkeys(SHOP_COLUMNS, ""), **listing, "price": "1.5"},
        {
            **dict.fromkeys(SHOP_COLUMNS, ""),
            **detail,
            "rank": "3",
            "stock": "",
            "tags": '["blue", "ink"]',
        },
    ]


def test_csv_cells_hold_commas_quotes_line_breaks_lists_and_objects(tmp_path: Path) -> None:
    spider = spider_of("spiders: {t: {start: 'https://e.example/', pattern: '(?P<a>.)(?P<b>.)'}}")
    records = [
        {"a": 'comma, "quote"\nand a line break', "b": ["x, y", 'say "hi"']},
        {"a": {"k": [1, 2.5, None, True]}, "b": "海镇来客"},
        {"a": None, "b": False},
    ]
    written(tmp_path / "out.csv", spider, records)
    data = (tmp_path / "out.csv").read_bytes()
    assert data.startswith(b"a,b\r\n")  # RFC 4180: CRLF, no BOM unless asked
    assert csv_rows(tmp_path / "out.csv") == [
        ["a", "b"],
        ['comma, "quote"\nand a line break', '["x, y", "say \\"hi\\""]'],
        ['{"k": [1, 2.5, null, true]}', "海镇来客"],
        ["", "false"],
    ]
    assert json.loads(csv_rows(tmp_path / "out.csv")[1][1]) == ["x, y", 'say "hi"']


def test_bom_starts_a_csv_for_excel(site: FixtureSite, tmp_path: Path) -> None:
    many(site, tmp_path, pages=2)
    code, _, err = finish(scraper(tmp_path, "run", "many", "-q", "-o", "out.csv", "--bom"))
    assert code == 0, err
    data = (tmp_path / "out.csv").read_bytes()
    assert data.startswith("\ufeffitem\r\n".encode())
    assert data.count("\ufeff".encode()) == 1
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as file:
        assert len(list(csv.DictReader(file))) == 100


def test_a_callback_spiders_header_comes_from_its_first_page_and_later_fields_are_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spider = spider_of("spiders: {c: {start: 'https://e.example/', callback: 'spiders.c:parse'}}")
    output = open_output(tmp_path / "out.csv", spider)
    output.write([])
    output.write([{"title": "A", "year": 2001}, {"title": "B", "score": 9.5}])
    output.write([{"title": "C", "director": "X"}, {"director": "Y", "year": 1999}])
    output.close()
    assert csv_rows(tmp_path / "out.csv") == [
        ["title", "year", "score"],
        ["A", "2001", ""],
        ["B", "", "9.5"],
        ["C", "", ""],
        ["", "1999", ""],
    ]
    assert caplog.messages == [
        f"the field 'director' came after the CSV header was written: its values are left "
        f"out of {tmp_path / 'out.csv'} (JSON Lines and SQLite outputs keep every field)"
    ]


def test_a_csv_continued_keeps_its_header_once(tmp_path: Path) -> None:
    spider = spider_of(SHOP)
    written(tmp_path / "out.csv", spider, [{"name": "A"}], bom=True)
    written(tmp_path / "out.csv", spider, [{"name": "B"}], append=True, bom=True)
    data = (tmp_path / "out.csv").read_bytes()
    assert data.count("\ufeff".encode()) == 1
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as file:
        assert [row["name"] for row in csv.DictReader(file)] == ["A", "B"]


# -- JSON ---------------------------------------------------------------------------------------


def test_json_is_one_array_empty_or_not_and_continuing_it_keeps_it_one(tmp_path: Path) -> None:
    spider = spider_of(SHOP)
    written(tmp_path / "empty.json", spider, [], [])
    assert (tmp_path / "empty.json").read_text() == "[\n]\n"
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    written(tmp_path / "empty.json", spider, [{"name": "A"}], append=True)
    written(tmp_path / "out.json", spider, [{"name": "海"}, {"name": "B"}], [{"name": "C"}])
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == (
        '[\n{"name": "海"},\n{"name": "B"},\n{"name": "C"}\n]\n'
    )
    written(tmp_path / "out.json", spider, [{"name": "D"}], append=True)
    names = [r["name"] for r in json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))]
    assert names == ["海", "B", "C", "D"]
    assert json.loads((tmp_path / "empty.json").read_text()) == [{"name": "A"}]


def test_a_json_array_cut_by_a_kill_is_continued_and_other_json_is_refused(
    tmp_path: Path,
) -> None:
    spider = spider_of(SHOP)
    (tmp_path / "killed.json").write_text('[\n{"name": "A"},\n{"name": "B"}')
    written(tmp_path / "killed.json", spider, [{"name": "C"}], append=True)
    assert [r["name"] for r in json.loads((tmp_path / "killed.json").read_text())] == [
        "A",
        "B",
        "C",
    ]
    (tmp_path / "other.json").write_text('{"not": "an array"}\n')
    with pytest.raises(OutputError) as error:
        open_output(tmp_path / "other.json", spider, append=True)
    assert str(error.value) == (
        f"cannot continue {tmp_path / 'other.json'}: it does not start with '[', so it is "
        "not a JSON array this tool wrote. Move it away to start anew."
    )


def killed_with_resume(site: FixtureSite, tmp_path: Path, out: str, kind: str) -> list[str]:
    """Spider ``many``'s items, after a ``--resume`` run to ``out`` was killed (kill -9)
    with 100 records or more written; the site answers at full speed again."""
    expected = many(site, tmp_path)
    site.hold = 0.05
    run = scraper(tmp_path, "run", "many", "-q", "-o", out, "--resume")
    wait_for_records(run, tmp_path / out, kind, 100)
    run.send_signal(signal.SIGKILL)
    finish(run)
    site.hold = 0
    return expected


def test_a_json_run_killed_lacks_its_bracket_and_resume_makes_it_whole(
    site: FixtureSite, tmp_path: Path
) -> None:
    expected = killed_with_resume(site, tmp_path, "out.json", "json")
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert not text.rstrip().endswith("]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    code, _, err = finish(scraper(tmp_path, "run", "many", "-q", "-o", "out.json", "--resume"))
    assert code == 0, err
    found = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert sorted(r["item"] for r in found) == sorted(expected)


# -- SQLite -------------------------------------------------------------------------------------


def test_sqlite_columns_are_typed_from_the_processors(tmp_path: Path) -> None:
    listing = {"name": "Pen", "price": 1.5, "label": "Pen (1.5)", "category": None}
    detail = {"rank": 3, "title": "Pen", "stock": 12, "tags": ["blue", "ink"], "kind": "detail"}
    written(tmp_path / "out.db", spider_of(SHOP), [listing], [detail])
    columns = table_rows(tmp_path / "out.db", "shop", "pragma table_info({t})")
    assert [(c[1], c[2]) for c in columns] == [
        ("name", "TEXT"),
        ("price", "REAL"),
        ("label", "TEXT"),
        ("category", "TEXT"),
        ("source", "TEXT"),
        ("url", "TEXT"),
        ("title", "TEXT"),
        ("stock", "INTEGER"),
        ("tags", "TEXT"),  # a list, as its JSON text
        ("kind", "TEXT"),
        ("rank", ""),  # carried: its type is not the spider's to say
        ("_url", "TEXT"),
        ("_fetched_at", "TEXT"),
    ]
    query = "select typeof(price), typeof(stock), tags, json_extract(tags, '$[1]') from {t}"
    assert table_rows(tmp_path / "out.db", "shop", query) == [
        ("real", "null", None, None),
        ("null", "integer", '["blue", "ink"]', "ink"),
    ]


def test_sqlite_rows_have_the_page_url_and_the_time_written(
    site: FixtureSite, tmp_path: Path
) -> None:
    many(site, tmp_path, pages=3)
    code, _, err = finish(scraper(tmp_path, "run", "many", "-o", "out.db", "--table", "items"))
    assert code == 0, err
    assert "rows:            150 new, 0 updated\n" in err
    rows = table_rows(tmp_path / "out.db", "items", "select item, _url, _fetched_at from {t}")
    assert len(rows) == 150
    assert {url for _, url, _ in rows} == {site.url(f"/page/{n}") for n in range(3)}
    assert all(item.startswith(url.rsplit("/", 1)[1] + "-") for item, url, _ in rows)
    for _, _, fetched_at in rows:
        when = datetime.fromisoformat(fetched_at)
        assert when.tzinfo == timezone.utc
        assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=1)


KEYED = SPIDER.replace("  catalogue:\n", "  catalogue:\n    unique: [name]\n")
"""tests/test_resume.py's catalogue, its records keyed by name."""


@pytest.mark.parametrize("key", [[], ["--key", "name"]])
def test_a_second_run_updates_the_rows_whose_key_is_there(
    site: FixtureSite, tmp_path: Path, key: list[str]
) -> None:
    catalogue(site, tmp_path)  # 72 items, Item n-i at n*100+i.50
    write_spider(tmp_path, site, KEYED)
    code, _, err = finish(scraper(tmp_path, "run", "catalogue", "-o", "out.db", *key))
    assert code == 0, err
    assert "rows:            72 new, 0 updated\n" in err
    site.add("/item/1-1", "<html><h1>Item 1-1</h1><p class='price'>99.00</p></html>")
    code, _, err = finish(scraper(tmp_path, "run", "catalogue", "-o", "out.db", *key))
    assert code == 0, err
    assert "records written: 72\nrows:            0 new, 72 updated\n" in err
    rows = dict(table_rows(tmp_path / "out.db", "catalogue", "select name, price from {t}"))
    assert len(rows) == LISTS * 12
    assert rows["Item 1-1"] == 99.0
    assert rows["Item 6-12"] == 612.5
    indexes = table_rows(tmp_path / "out.db", "catalogue", "pragma index_list({t})")
    assert [(i[1], i[2]) for i in indexes] == [("_scraper_key_catalogue", 1)]  # unique


def test_a_key_that_rows_already_share_is_refused(tmp_path: Path) -> None:
    spider = spider_of(SHOP)
    written(tmp_path / "out.db", spider, [{"name": "A"}, {"name": "A"}])
    with pytest.raises(ScraperError) as error:
        open_output(tmp_path / "out.db", spider, key=["name"])
    assert str(error.value) == (
        f"cannot make name the key of the table 'shop' in {tmp_path / 'out.db'}: rows "
        "already there share a key. Write to another table with --table NAME, or choose "
        "another --key."
    )


def test_a_reader_queries_the_table_while_the_crawl_writes_it(
    site: FixtureSite, tmp_path: Path
) -> None:
    many(site, tmp_path)
    site.hold = 0.02
    run = scraper(tmp_path, "run", "many", "-q", "-o", "out.db")
    wait_for_records(run, tmp_path / "out.db", "sqlite", 100)
    with contextlib.closing(sqlite3.connect(tmp_path / "out.db", timeout=0.1)) as reader:
        assert reader.execute("pragma journal_mode").fetchone() == ("wal",)
        reader.execute("begin")  # a long read: the crawl writes on meanwhile
        seen = reader.execute("select count(*) from many").fetchone()[0]
        time.sleep(0.5)
        assert reader.execute("select count(*) from many").fetchone()[0] == seen
        reader.execute("commit")
        assert reader.execute("select count(*) from many").fetchone()[0] > seen
    code, _, err = finish(run)
    assert code == 0, err
    assert len(read_records(tmp_path / "out.db", "sqlite", table="many")) == 120 * 50


def test_rewind_undoes_the_last_page_its_new_rows_and_its_updates(tmp_path: Path) -> None:
    spider = spider_of(SHOP)
    path = tmp_path / "out.db"
    first = open_output(path, spider, key=["name"])
    assert isinstance(first, SqliteOutput)
    first.write([{"name": "A", "price": 1.0}, {"name": "B", "price": 2.0}])
    first.write([{"name": "A", "price": 10.0, "stock": 5}, {"name": "C", "price": 3.0}])
    assert (first.size, first.rows) == (2, {"new": 3, "updated": 1})
    first.close()
    state = tmp_path / "out.db.state"
    again = open_output(path, spider, key=["name"], append=True)
    assert isinstance(again, SqliteOutput)
    with pytest.raises(ScraperError) as error:
        again.rewind(0, state)
    assert str(error.value) == (
        f"{path} is not the database that {state} vouches for: its table 'shop' holds 2 "
        "pages of this crawl, and the state 0, so resuming could write records twice or "
        f"lose some. To start over, delete {state}; to keep the table, write to another "
        "with --table NAME."
    )
    again.rewind(1, state)  # the state saw one page: the second is undone
    again.rewind(1, state)  # and only once
    query = "select name, price, stock from {t} order by name"
    assert table_rows(path, "shop", query) == [("A", 1.0, None), ("B", 2.0, None)]
    again.write([{"name": "C", "price": 3.0}])
    assert again.size == 2
    again.close()
    assert len(table_rows(path, "shop")) == 3


def test_resume_undoes_a_page_the_state_did_not_note(site: FixtureSite, tmp_path: Path) -> None:
    expected = killed_with_resume(site, tmp_path, "out.db", "sqlite")
    # As if the run had died between writing a page and noting it in its state:
    late = open_output(tmp_path / "out.db", spider_of(MANY_TEXT), append=True)
    late.write([{"item": "a page the state never saw"}])
    late.close()
    code, _, err = finish(scraper(tmp_path, "run", "many", "-q", "-o", "out.db", "--resume"))
    assert code == 0, err
    found = read_records(tmp_path / "out.db", "sqlite", table="many")
    assert sorted(r["item"] for r in found) == sorted(expected)


MANY_TEXT = "spiders: {many: {start: 'https://e.example/', pattern: '<li>(?P<item>[^<]+)</li>'}}"


def test_a_redis_export_keeps_its_offset_in_the_database(
    site: FixtureSite, redis_server: Any, tmp_path: Path
) -> None:
    from tests.test_redis_cli import big_crawl

    reference = big_crawl(site, redis_server, tmp_path)
    export = ["export", "big", "--redis", redis_server.url, "-o", "out.db", "-v"]
    code, _, err = finish(scraper(tmp_path, *export))
    assert code == 0, err
    assert f"exported {len(reference)} records of crawl 'big' ({len(reference)} new rows, " in err
    code, _, err = finish(scraper(tmp_path, *export))
    assert code == 0, err
    assert "exported 0 records of crawl 'big' (0 new rows, 0 updated)" in err
    rows = table_rows(tmp_path / "out.db", "big", "select item, _url, _fetched_at from {t}")
    assert [item for item, _, _ in rows] == reference
    assert {url for _, url, _ in rows} == {None}  # the stream keeps no page URL
    assert all(datetime.fromisoformat(when) for _, _, when in rows)
    offsets = table_rows(tmp_path / "out.db", "_scraper_redis", "select tbl, crawl from {t}")
    assert offsets == [("big", "big")]
