"""The processors of issue 11 in real crawls: lists, JSON inside pages, paragraphs, and one
processor for many fields, run with ``scraper run`` against the local test server.

``SITE`` in a spider file stands for the test server's base URL.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scraper.cli import main
from tests.server import FixtureSite


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder, where spiders.yaml is read from."""
    monkeypatch.chdir(tmp_path)


def run_spider(
    tmp_path: Path, site: FixtureSite, spiders: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]], str]:
    """``scraper run test -o out.jsonl`` in ``tmp_path``: exit status, records, stderr."""
    spiders = textwrap.dedent(spiders).replace("SITE", site.base)
    (tmp_path / "spiders.yaml").write_text(spiders, encoding="utf-8")
    status = main(["run", "test", "-o", "out.jsonl"])
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    return status, [json.loads(line) for line in lines], capsys.readouterr().err


def check(tmp_path: Path, spiders: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``scraper check`` on ``spiders`` written to spiders.yaml: exit status, stderr."""
    (tmp_path / "spiders.yaml").write_text(textwrap.dedent(spiders), encoding="utf-8")
    status = main(["check"])
    return status, capsys.readouterr().err


# -- lists: a quote's tags, a film's actors -------------------------------------------------------

QUOTES = """\
<div class="quote"><span class="text">“A day without sunshine is like, you know, night.”</span>
  <small class="author">Steve Martin</small> <i>ranks: 3; 12</i>
  <div class="tags">Tags:
    <a class="tag" href="/tag/humor/">humor</a>
    <a class="tag" href="/tag/obvious/">obvious</a>
    <a class="tag" href="/tag/simile/">simile</a>
  </div></div>
<div class="quote"><span class="text">“Try not to become a man of success.”</span>
  <small class="author">Albert Einstein</small> <i>ranks: 1,024; 7</i>
  <div class="tags">Tags:
    <a class="tag" href="success/">success</a>
  </div></div>
<div class="quote"><span class="text">“It is our choices, Harry.”</span>
  <small class="author">J.K. Rowling</small> <i>ranks: 5; five</i>
  <div class="tags">Tags: <a class="tag" href="/tag/choices/">choices</a></div></div>
<div class="quote"><span class="text">“Untagged.”</span>
  <small class="author">Nobody</small> <i>ranks: 9</i>
  <div class="tags">Tags: </div></div>
"""

QUOTES_SPIDER = r"""
spiders:
  test:
    start: SITE/quotes/page/1/
    pattern: '<span class="text">(?P<text>.*?)</span>.*?<small class="author">(?P<author>.*?)</small> <i>ranks: (?P<ranks>[^<]*)</i>.*?<div class="tags">(?P<tags>.*?)</div>'
    flags: [DOTALL]
    format:
      tag_links: '{tags}'
    clean:
      tags: [{findall: '<a class="tag"[^>]*>([^<]*)</a>'}, required]
      tag_links: [{findall: 'href="([^"]+)"'}, urljoin]
      ranks: [{split: ';'}, int]
"""  # noqa: E501


def test_split_and_findall_make_lists_written_as_json_arrays(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/quotes/page/1/", QUOTES)
    status, records, err = run_spider(tmp_path, site, QUOTES_SPIDER, capsys)
    assert status == 0
    assert records == [
        {
            "text": "“A day without sunshine is like, you know, night.”",
            "author": "Steve Martin",
            "ranks": [3, 12],
            "tags": ["humor", "obvious", "simile"],
            "tag_links": [
                f"{site.base}/tag/humor/",
                f"{site.base}/tag/obvious/",
                f"{site.base}/tag/simile/",
            ],
        },
        {
            "text": "“Try not to become a man of success.”",
            "author": "Albert Einstein",
            "ranks": [1024, 7],
            "tags": ["success"],
            "tag_links": [f"{site.base}/quotes/page/1/success/"],
        },
    ]
    # Rowling's "five" is no int; Nobody has no tags, and required means not empty
    assert "records written: 2\n" in err
    assert "records dropped: 2 (ranks: not int: 1, tags: missing: 1)\n" in err


def test_a_list_is_a_json_array_in_the_output_file(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/actors", "<p>主演：林晚舟,苏一苇, 陆素衣</p><p>主演：程南星</p>")
    status, _, _ = run_spider(
        tmp_path,
        site,
        r"""
        spiders:
          test:
            start: SITE/actors
            pattern: '<p>主演：(?P<actors>[^<]*)</p>'
            clean:
              actors: {split: ','}
        """,
        capsys,
    )
    assert status == 0
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == (
        '{"actors": ["林晚舟", "苏一苇", "陆素衣"]}\n{"actors": ["程南星"]}\n'
    )


def test_check_points_at_a_findall_with_two_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = check(
        tmp_path,
        r"""
        spiders:
          test:
            start: https://quotes.example/
            pattern: '<div class="tags">(?P<tags>.*?)</div>'
            clean:
              tags: {findall: '<a href="([^"]+)">([^<]*)</a>'}
        """,
        capsys,
    )
    assert status == 2
    assert err == (
        "scraper: error: spiders.yaml:7:23: spider 'test': clean: tags: findall pattern "
        '\'<a href="([^"]+)">([^<]*)</a>\' has 2 groups; keep the item in the only named '
        "group (?P<item>...), or write the others as (?:...).\n"
    )


# -- JSON inside a page ---------------------------------------------------------------------------

JOBS = r"""<html><head><meta charset="gbk"><title>搜索结果</title></head><body>
<script type="text/javascript">
window.__SEARCH_RESULT__ = {"engine_jds":[
{"job_name":"\u524d\u7aef\u5de5\u7a0b\u5e08","company_name":"\u4e0a\u6d77\"\u661f\u6e2f\"\u79d1\u6280","job_href":"https:\/\/jobs.example\/sh\/1.html","workarea_text":"\u4e0a\u6d77-\u6d66\u4e1c","providesalary_text":"1-1.5\u4e07\/\u6708","attribute_text":["\u4e0a\u6d77","3-4\u5e74\u7ecf\u9a8c"],"meta":{"remote":false,"score":4.5}},
{"job_name":"Data \\ ETL","company_name":"A\/B Co","job_href":"https:\/\/jobs.example\/sh\/2.html","workarea_text":"\ud83d\ude80 \ud800","providesalary_text":"","attribute_text":[],"meta":{"remote":true,"score":NaN}},
{"job_name":"Bad \x escape","company_name":"C","job_href":"","workarea_text":"","providesalary_text":"","attribute_text":[],"meta":null}
]};
</script></body></html>"""  # noqa: E501

JOBS_SPIDER = r"""
spiders:
  test:
    start: SITE/jobs
    pattern: '\{"job_name":"(?P<job_name>(?:[^"\\]|\\.)*)","company_name":"(?P<company_name>(?:[^"\\]|\\.)*)","job_href":"(?P<job_href>(?:[^"\\]|\\.)*)","workarea_text":"(?P<city>(?:[^"\\]|\\.)*)","providesalary_text":"(?P<salary>(?:[^"\\]|\\.)*)","attribute_text":(?P<attributes>\[[^\]]*\]),"meta":(?P<meta>\{[^}]*\}|null)\}'
    clean:
      job_name, company_name, job_href, city, salary: json_string
      attributes, meta: json
"""  # noqa: E501


def test_values_captured_from_json_in_a_script_are_decoded(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/jobs", JOBS.encode("gbk"), content_type="text/html; charset=gbk")
    status, records, err = run_spider(tmp_path, site, JOBS_SPIDER, capsys)
    assert status == 0
    assert records == [
        {
            "job_name": "前端工程师",
            "company_name": '上海"星港"科技',
            "job_href": "https://jobs.example/sh/1.html",
            "city": "上海-浦东",
            "salary": "1-1.5万/月",
            "attributes": ["上海", "3-4年经验"],
            "meta": {"remote": False, "score": 4.5},
        }
    ]
    # the second job's NaN is not JSON; the third's \x is no JSON escape
    assert "records dropped: 2 (meta: not JSON: 1, job_name: not a JSON string: 1)\n" in err


def test_a_lone_surrogate_escape_is_written_as_a_replacement_character(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/jobs", JOBS.replace("NaN", "1e999").replace("4.5", "4"))
    spider = JOBS_SPIDER.replace("attributes, meta: json", "attributes: json")
    status, records, err = run_spider(tmp_path, site, spider, capsys)
    assert status == 0
    assert [(r["job_name"], r["city"], r["meta"]) for r in records] == [
        ("前端工程师", "上海-浦东", '{"remote":false,"score":4}'),
        ("Data \\ ETL", "🚀 \ufffd", '{"remote":true,"score":1e999}'),
    ]
    assert "records dropped: 1 (job_name: not a JSON string: 1)\n" in err


def test_a_number_json_cannot_write_back_is_dropped_as_not_finite(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/jobs", JOBS.replace("NaN", "1e999"))
    status, records, err = run_spider(tmp_path, site, JOBS_SPIDER, capsys)
    assert status == 0
    assert [record["job_name"] for record in records] == ["前端工程师"]
    assert "records dropped: 2 (meta: not finite: 1, job_name: not a JSON string: 1)\n" in err


def test_why_a_value_is_not_json_is_logged_with_v(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/jobs", JOBS)
    (tmp_path / "spiders.yaml").write_text(JOBS_SPIDER.replace("SITE", site.base), "utf-8")
    assert main(["run", "test", "-o", "out.jsonl", "-v"]) == 0
    err = capsys.readouterr().err
    assert (
        f"scraper: INFO: {site.base}/jobs: a value is not JSON (NaN is not JSON): "
        """'{"remote":true,"score":NaN}'\n"""
    ) in err


# -- paragraphs -----------------------------------------------------------------------------------

CHAPTER = """<html><head><meta charset="gbk"><title>第一章 风起</title></head><body>
<h1>第一章 风起</h1>
<div id="content">&nbsp;&nbsp;&nbsp;&nbsp;雨下了一整夜。<br />
<br />
&nbsp;&nbsp;&nbsp;&nbsp;他推开门，
  街上空无一人。<br /><br /><br /><br />
\u3000\u3000“走吧。”她说。<br />
<p>（本章完）</p><script>read_more();</script></div>
<div class="footer">下一章</div>
</body></html>"""


CHAPTER_SPIDER = r"""
spiders:
  test:
    start: SITE/book/1.html
    pattern: '<h1>(?P<title>.*?)</h1>\s*<div id="content">(?P<body>.*?)</div>\s*<div class="footer">'
    flags: [DOTALL]
    clean:
      body: paragraphs
      title: text
"""  # noqa: E501


def test_paragraphs_keeps_a_chapters_lines(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/book/1.html", CHAPTER.encode("gbk"), content_type="text/html; charset=gbk")
    status, records, _ = run_spider(tmp_path, site, CHAPTER_SPIDER, capsys)
    assert status == 0
    assert records == [
        {
            "title": "第一章 风起",
            "body": "雨下了一整夜。\n\n他推开门， 街上空无一人。\n\n“走吧。”她说。\n（本章完）",
        }
    ]


# -- one processor for many fields ----------------------------------------------------------------

ROWS = """<table>
<tr><td> 海镇来客 </td><td>&lt;Drama&gt;</td><td>1950&nbsp;</td><td>中国香港</td><td>9.7</td></tr>
<tr><td>星港谣</td><td><b>Romance</b></td><td>1957</td><td>&amp;</td><td>9.6</td></tr>
</table>"""


FILMS_SPIDER = r"""
spiders:
  test:
    start: SITE/films
    pattern: '<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>'
    fields: [title, genre, year, region, score]
    clean:
      title, genre, year, region, score: text
      '*': required
      year: int
      score: float
"""


def test_one_key_cleans_five_fields_and_star_cleans_all(
    tmp_path: Path, site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("/films", ROWS)
    status, records, err = run_spider(tmp_path, site, FILMS_SPIDER, capsys)
    assert status == 0
    assert records == [
        {"title": "海镇来客", "genre": "<Drama>", "year": 1950, "region": "中国香港", "score": 9.7},
        {"title": "星港谣", "genre": "Romance", "year": 1957, "region": "&", "score": 9.6},
    ]
    assert "records dropped: 0\n" in err


def test_check_points_at_an_unknown_field_in_a_multi_field_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = check(
        tmp_path,
        r"""
        spiders:
          test:
            start: https://jobs.example/
            pattern: '"job_name":"(?P<job_name>[^"]*)","company_name":"(?P<company_name>[^"]*)"'
            clean:
              job_name, compnay_name: json_string
        """,
        capsys,
    )
    assert status == 2
    assert err == (
        "scraper: error: spiders.yaml:7:17: spider 'test': clean names field 'compnay_name', "
        "which the pattern does not produce (it produces: job_name, company_name) "
        "(did you mean 'company_name'?).\n"
    )
