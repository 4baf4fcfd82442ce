"""Write the invented demo sites under tests/sites/ (run: ``python tests/sites/make_sites.py``).

Every film, book, actor and price here is made up from the fixed word lists below; the markup
copies the shape of the real sites so that the shipped spider patterns extract these pages too.
The ``*_records()`` functions are the ground truth: what a spider must extract, already
unescaped.  Output is deterministic (no randomness), so re-running gives identical bytes.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Record = dict[str, Any]

# Invented syllables: film titles are HEAD + TAIL, people are SURNAME + GIVEN.
HEADS = "青雾长白夜云铁山海星风雪金石月河"  # 16
# 17 tails: the pair (i % 16, 5i % 17) never repeats for i < 272.
# fmt: off
TAILS = [
    "灯记", "港谣", "渡口", "鹭行", "巷往事", "原来信", "桥之约", "城旧梦", "岭归人",
    "舟夜话", "沙纪年", "塔钟声", "堤花开", "镇来客", "湖秋影", "关守望", "井人家",
]
# fmt: on
SURNAMES = "林苏陆程叶沈顾温许秦韩宋"
GIVEN = ["晚舟", "知远", "若岚", "一苇", "听澜", "明川", "素衣", "景行", "小满", "南星", "半夏"]
FOREIGN = ["艾拉·诺文", "托马·柯林", "伊莎·兰德", "卡洛·贝恩"]
COUNTRIES = ["中国香港", "美国", "法国", "日本", "韩国"]
EN_A = ["Silent", "Blue", "Iron", "Paper", "Late", "Northern", "Hollow", "Quiet", "Salt", "Last"]
EN_B = ["Harbor", "Lantern", "River", "Orchard", "Letters", "Station", "Summer", "Tide", "Bridge"]
RATINGS = ["One", "Two", "Three", "Four", "Five"]


def film_title(i: int) -> str:
    """Return the i-th invented Chinese film title (unique for i < 272)."""
    return HEADS[i % 16] + TAILS[(5 * i) % 17]


def person(i: int) -> str:
    """Return the i-th invented person name; every 7th one is a foreign-style name."""
    if i % 7 == 6:
        return FOREIGN[i % len(FOREIGN)]
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(3 * i) % len(GIVEN)]


def release(i: int) -> str:
    """Return a release time like ``1993-07-26(中国香港)``; one entry has only a year."""
    year = 1950 + (7 * i) % 72
    if i == 36:
        return str(year)
    date = f"{year}-{1 + (5 * i) % 12:02d}-{1 + (11 * i) % 28:02d}"
    return date + (f"({COUNTRIES[i % 5]})" if i % 3 == 0 else "")


def maoyan_records() -> list[Record]:
    """Ground truth of maoyan/board4_offset{0..90}.html: ranks 1..100."""
    records = []
    for i in range(100):
        title = film_title(i + 40)
        if i == 6:
            title = "霜 & 雪"
        elif i == 57:
            title = '"白鹭"归来'
        actors = ",".join(person(3 * i + k) for k in range(3))
        score = f"{9.7 - i * 0.015:.1f}"
        records.append(
            {"index": i + 1, "title": title, "actor": actors, "time": release(i), "score": score}
        )
    return records


def douban_records() -> list[Record]:
    """Ground truth of douban/top250_start{0..225}.html: ranks 1..250."""
    return [
        {
            "rank": i + 1,
            "title": film_title(i),
            "score": f"{9.7 - i * 0.006:.1f}",
            "link": f"/subject/{3100000 + 13 * (i + 1)}/",
        }
        for i in range(250)
    ]


def book_records() -> list[Record]:
    """Ground truth of books/index.html and catalogue/page-{2,3}.html: 60 books."""
    books = []
    for i in range(60):
        title = f"The {EN_A[i % 10]} {EN_B[(2 * i) % 9]}" + (f", Vol. {i // 10}" if i >= 10 else "")
        if i == 4:
            title = "Salt & Cedar: Recipes from the Coast"
        elif i == 27:
            title = '"Paper Moons": A Field Guide'
        slug = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
        slug = "-".join(filter(None, slug.split("-")))
        books.append(
            {
                "title": title,
                "price": f"{10 + (1373 * i) % 5000 / 100:.2f}",
                "rating": RATINGS[(3 * i) % 5],
                "availability": "In stock",
                "href": f"{slug}_{500 - i}/index.html",
            }
        )
    return books


def gbk_records(mislabelled: bool = False) -> list[Record]:
    """Ground truth of gbk/list_gb2312.html (or gbk/mislabelled_gbk.html): 8 films."""
    genres = ["奇幻动画", "悬疑", "爱情", "科幻动作"]
    films = []
    for i in range(8):
        n = i + (120 if mislabelled else 200)
        name = film_title(n)
        if mislabelled and i == 2:
            name = "喆·" + name  # GBK-only character and a middle dot: not in GB2312
        films.append(
            {
                "title": f"{2019 - i % 2}年{genres[i % 4]}《{name}》BD中英双字幕",
                "href": f"/html/gndy/dyzz/20190{3 + i % 2}1{i}/{58400 + n}.html",
            }
        )
    return films


def page(title: str, body: str, meta: str = '<meta charset="utf-8">') -> str:
    """Wrap body in a minimal html document."""
    head = f"<!DOCTYPE html>\n<html>\n<head>\n{meta}\n<title>{title}</title>\n</head>\n"
    return f"{head}<body>\n{body}</body>\n</html>\n"


def maoyan_page(offset: int) -> str:
    """One Maoyan TOP100 board page (10 entries, 2025 markup)."""
    items = []
    for r in maoyan_records()[offset : offset + 10]:
        t, movie = escape(r["title"]), 1000 + r["index"]
        integer, fraction = r["score"].split(".")
        items.append(f"""<dd>
  <i class="board-index board-index-{r["index"]}">{r["index"]}</i>
  <a href="/films/{movie}" title="{t}" class="image-link" data-act="boarditem-click">
    <img data-src="/img/{movie}.jpg" alt="{t}" class="board-img" />
  </a>
  <div class="board-item-main">
    <div class="board-item-content">
      <div class="movie-item-info">
        <p class="name"><a href="/films/{movie}" title="{t}" data-act="boarditem-click"
            data-val="{{movieId:{movie}}}">{t}</a></p>
        <p class="star">
                主演：{escape(r["actor"])}
        </p>
<p class="releasetime">上映时间：{r["time"]}</p>    </div>
      <div class="movie-item-number score-num">
<p class="score"><i class="integer">{integer}.</i><i class="fraction">{fraction}</i></p>
      </div>
    </div>
  </div>
</dd>
""")
    pager = f'<li><a class="page_{offset // 10 + 2}" href="?offset={offset + 10}">下一页</a></li>'
    body = '<dl class="board-wrapper">\n' + "".join(items) + '</dl>\n<ul class="list-pager">\n'
    body += (pager + "\n" if offset < 90 else "") + "</ul>\n"
    return page("TOP100榜 - 演示电影", body)


def douban_page(start: int) -> str:
    """One Douban Top250 page (25 entries, 2019 markup) with its 后页 link."""
    items = []
    for i, r in enumerate(douban_records()[start : start + 25], start):
        t, link = escape(r["title"]), r["link"]
        items.append(f"""<li>
<div class="item">
  <div class="pic">
    <em class="">{r["rank"]}</em>
    <a href="{link}"><img width="100" alt="{t}" src="/img/{r["rank"]}.jpg" class=""></a>
  </div>
  <div class="info">
    <div class="hd">
      <a href="{link}" class="">
        <span class="title">{t}</span>
        <span class="title">&nbsp;/&nbsp;The {EN_A[i % 10]} {EN_B[i % 9]}</span>
        <span class="other">&nbsp;/&nbsp;{film_title(i + 1)}(港)</span>
      </a>
    </div>
    <div class="bd">
      <p class="">导演: {person(i)}&nbsp;&nbsp;&nbsp;主演: {person(i + 5)} / ...<br>
        {1950 + (7 * i) % 72}&nbsp;/&nbsp;{COUNTRIES[i % 5]}&nbsp;/&nbsp;剧情</p>
      <div class="star">
        <span class="rating45-t"></span>
        <span class="rating_num" property="v:average">{r["score"]}</span>
        <span property="v:best" content="10.0"></span>
        <span>{90000 - 300 * i}人评价</span>
      </div>
    </div>
  </div>
</div>
</li>
""")
    nxt = f"?start={start + 25}&amp;filter="
    link = (
        f'<link rel="next" href="{nxt}"/>\n<a href="{nxt}" >后页&gt;</a>'
        if start < 225
        else "后页&gt;"
    )
    body = '<ol class="grid_view">\n' + "".join(items) + '</ol>\n<div class="paginator">\n'
    body += (
        f'<span class="thispage">{start // 25 + 1}</span>\n<span class="next">\n{link}\n</span>\n'
    )
    body += '<span class="count">(共250条)</span>\n</div>\n'
    return page("豆瓣电影 Top 250 (演示)", body)


def books_page(n: int) -> str:
    """Listing page n (1..3) of the books demo, 20 books, books.toscrape markup."""
    prefix = "catalogue/" if n == 1 else ""
    items = []
    for r in book_records()[20 * (n - 1) : 20 * n]:
        href, title = prefix + r["href"], r["title"]
        attr = f"'{escape(title, quote=False)}'" if '"' in title else f'"{escape(title)}"'
        words = title.split()
        text = title if len(words) <= 4 else " ".join(words[:3]) + " ..."
        items.append(f"""<li class="col-xs-6 col-sm-4 col-md-3 col-lg-3">
<article class="product_pod">
<div class="image_container">
<a href="{href}"><img alt={attr} class="thumbnail" src="/media/{r["href"][:-11]}.jpg"/></a>
</div>
<p class="star-rating {r["rating"]}">
<i class="icon-star"></i>
</p>
<h3><a href="{href}" title={attr}>{escape(text, quote=False)}</a></h3>
<div class="product_price">
<p class="price_color">£{r["price"]}</p>
<p class="instock availability">
<i class="icon-ok"></i>
        {r["availability"]}
</p>
</div>
</article>
</li>
""")
    pager = f'<li class="current">Page {n} of 3</li>\n'
    if n > 1:
        prev = "../index.html" if n == 2 else f"page-{n - 1}.html"
        pager = f'<li class="previous"><a href="{prev}">previous</a></li>\n' + pager
    if n < 3:
        pager += f'<li class="next"><a href="{prefix}page-{n + 1}.html">next</a></li>\n'
    body = '<ol class="row">\n' + "".join(items) + f'</ol>\n<ul class="pager">\n{pager}</ul>\n'
    return page("Demo Books to Scrape", body)


def gbk_page(mislabelled: bool) -> str:
    """The film-download list page: 8 ``<a ... class="ulink">`` entries."""
    items = []
    for i, r in enumerate(gbk_records(mislabelled)):
        items.append(f"""<table width="100%" border="0" cellspacing="0" class="tbspan">
<tr>
<td height="26">
\t<b>
\t\t<a href="{r["href"]}" class="ulink">{r["title"]}</a>
\t</b>
</td>
</tr>
<tr><td><font color="#8F8C89">日期：2019-04-{10 - i:02d} 12:04:09</font></td></tr>
</table>
""")
    body = '<div class="co_content8">\n<ul>\n' + "".join(items) + "</ul>\n</div>\n"
    meta = '<meta charset="utf-8">' if mislabelled else "<meta charset=gb2312>"
    return page("最新电影 - 演示下载站", body, meta)


def write_all(root: Path = HERE) -> list[Path]:
    """Write every demo page under root and return the paths written."""
    pages: dict[str, bytes] = {}
    for offset in range(0, 100, 10):
        pages[f"maoyan/board4_offset{offset}.html"] = maoyan_page(offset).encode()
    for start in range(0, 250, 25):
        pages[f"douban/top250_start{start}.html"] = douban_page(start).encode()
    pages["books/index.html"] = books_page(1).encode()
    for n in (2, 3):
        pages[f"books/catalogue/page-{n}.html"] = books_page(n).encode()
    pages["gbk/list_gb2312.html"] = gbk_page(False).replace("\n", "\r\n").encode("gb2312")
    pages["gbk/mislabelled_gbk.html"] = gbk_page(True).encode("gbk")
    written = []
    for name, data in pages.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p.relative_to(HERE))
