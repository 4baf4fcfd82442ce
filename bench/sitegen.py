"""The benchmark site: Maoyan-style board pages, generated from a seed, with their ground truth.

``write_board_site(root, pages, seed)`` writes ``root/board/1.html`` ... ``root/board/N.html``
and returns the records a correct client extracts from them, in page order. Every page
holds 10 ``<dd>`` film entries (index, title, actor, release time, score split into
``<i class="integer">9.</i><i class="fraction">5</i>``), a pager whose ``下一页`` link goes to
the next page (none on the last), and filler markup like a real portal's (style sheet,
navigation, sidebar lists, footer, an inline data script) to about ``page_bytes`` bytes.

The same seed gives the same bytes. Titles sometimes hold ``&`` and ``"`` (written
escaped), a few entries have no score yet (their record has ``score: None``) and a few
release times are a bare year, so that a client's unescaping and optional groups are
checked too.
"""

from __future__ import annotations

import json
import random
from html import escape
from pathlib import Path
from typing import Any

Record = dict[str, Any]

RECORDS_PER_PAGE = 10
PAGE_BYTES = 80 * 1024

HEADS = "青雾长白夜云铁山海星风雪金石月河春秋北南"
TAILS = ["灯记", "港谣", "渡口", "鹭行", "巷往事", "原来信", "桥之约", "城旧梦", "岭归人", "舟夜话"]
TAILS += ["沙纪年", "塔钟声", "堤花开", "镇来客", "湖秋影", "关守望", "井人家", "岸晚风"]
SURNAMES = "林苏陆程叶沈顾温许秦韩宋周吴郑王"
GIVEN = ["晚舟", "知远", "若岚", "一苇", "听澜", "明川", "素衣", "景行", "小满", "南星", "半夏"]
FOREIGN = ["艾拉·诺文", "托马·柯林", "伊莎·兰德", "卡洛·贝恩", "安娜·里维"]
COUNTRIES = ["中国香港", "美国", "法国", "日本", "韩国", "英国"]
WORDS = ["电影", "影院", "热映", "即将上映", "经典", "榜单", "评分", "票房", "资讯", "影评"]
WORDS += ["演员", "导演", "剧情", "喜剧", "动作", "爱情", "预告片", "购票"]
CSS_PROPS = ["color", "margin", "padding", "font-size", "line-height", "border", "width", "height"]


def write_board_site(
    root: Path, pages: int, seed: int, page_bytes: int = PAGE_BYTES
) -> list[Record]:
    """Write ``pages`` board pages under ``root/board/``; return their records in order."""
    rng = random.Random(seed)
    board = root / "board"
    board.mkdir(parents=True, exist_ok=True)
    # As on a real site, every page has the same style sheet and navigation.
    chrome = _style(rng, 180) + "</head>\n<body>\n" + _nav(rng, 60)
    truth: list[Record] = []
    for number in range(1, pages + 1):
        records = [_film(rng, (number - 1) * RECORDS_PER_PAGE + k + 1) for k in range(10)]
        html = _page(rng, number, pages, records, chrome, page_bytes)
        (board / f"{number}.html").write_text(html, encoding="utf-8")
        truth.extend(records)
    return truth


def _film(rng: random.Random, index: int) -> Record:
    title = rng.choice(HEADS) + rng.choice(TAILS)
    roll = rng.random()
    if roll < 0.03:
        title = f"{title} & {rng.choice(HEADS)}{rng.choice(TAILS)}"
    elif roll < 0.05:
        title = f'"{title}"归来'
    actors = ",".join(_person(rng) for _ in range(rng.choice((1, 2, 3, 3, 3))))
    year = rng.randint(1930, 2024)
    if rng.random() < 0.02:
        time = str(year)
    else:
        time = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if rng.random() < 0.3:
            time += f"({rng.choice(COUNTRIES)})"
    score = None if rng.random() < 0.03 else rng.randint(60, 99) / 10
    return {"index": index, "title": title, "actor": actors, "time": time, "score": score}


def _person(rng: random.Random) -> str:
    if rng.random() < 0.12:
        return rng.choice(FOREIGN)
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _dd(record: Record, film_id: int) -> str:
    title = escape(record["title"])
    if record["score"] is None:
        score = '<p class="score score-none">暂无评分</p>'
    else:
        whole, fraction = f"{record['score']:.1f}".split(".")
        score = (
            f'<p class="score"><i class="integer">{whole}.</i>'
            f'<i class="fraction">{fraction}</i></p>'
        )
    return f"""<dd>
  <i class="board-index board-index-{record["index"]}">{record["index"]}</i>
  <a href="/films/{film_id}" title="{title}" class="image-link" data-act="boarditem-click" \
data-val="{{movieId:{film_id}}}">
    <img src="//s3.example.net/static/image/loading_2.e3d934bf.png" alt="" class="poster-default" />
    <img data-src="https://p0.example.net/movie/{film_id:x}/{film_id}.jpg@160w_220h_1e_1c" \
alt="{title}" class="board-img" />
  </a>
  <div class="board-item-main">
    <div class="board-item-content">
      <div class="movie-item-info">
        <p class="name"><a href="/films/{film_id}" title="{title}" data-act="boarditem-click" \
data-val="{{movieId:{film_id}}}">{title}</a></p>
        <p class="star">
                主演：{record["actor"]}
        </p>
<p class="releasetime">上映时间：{record["time"]}</p>    </div>
      <div class="movie-item-number score-num">
{score}
      </div>
    </div>
  </div>
</dd>
"""


def _pager(number: int, pages: int) -> str:
    items = []
    if number > 1:
        items.append(
            f'<li><a class="page_{number - 1}" href="/board/{number - 1}.html">上一页</a></li>'
        )
    for other in range(max(1, number - 2), min(pages, number + 2) + 1):
        if other == number:
            items.append(
                f'<li class="active"><a class="page_{other}" href="javascript:void(0);">'
                f"{other}</a></li>"
            )
        else:
            items.append(f'<li><a class="page_{other}" href="/board/{other}.html">{other}</a></li>')
    if number < pages:
        items.append(
            f'<li><a class="page_{number + 1}" href="/board/{number + 1}.html">下一页</a></li>'
        )
    return (
        '<div class="pager-main">\n<ul class="list-pager">\n' + "\n".join(items) + "\n</ul>\n</div>"
    )


def _text(rng: random.Random, words: int) -> str:
    return "".join(rng.choices(WORDS, k=words))


def _style(rng: random.Random, rules: int) -> str:
    lines = []
    for _ in range(rules):
        selector = (
            f".{rng.choice(('nav', 'board', 'movie', 'side', 'footer'))}-{rng.randint(1, 999)}"
        )
        body = ";".join(f"{rng.choice(CSS_PROPS)}:{rng.randint(0, 40)}px" for _ in range(4))
        lines.append(f"{selector}{{{body}}}")
    return "<style>\n" + "\n".join(lines) + "\n</style>\n"


def _nav(rng: random.Random, links: int) -> str:
    items = "\n".join(
        f'<li><a href="/films?catId={rng.randint(1, 99)}&amp;sourceId={rng.randint(1, 9)}" '
        f'data-act="nav-click" data-val="{{navid:{n}}}">{_text(rng, 2)}</a></li>'
        for n in range(links)
    )
    return f'<div class="header"><ul class="navbar">\n{items}\n</ul></div>\n'


def _sidebar(rng: random.Random, entries: int) -> str:
    # <dl>/<dd> markup that is not a board entry: a pattern must not be fooled by it.
    items = "\n".join(
        f'<dd class="hot-item"><a href="/films/{rng.randint(1000, 99999)}">{_text(rng, 3)}</a>'
        f'<span class="wish">{rng.randint(100, 99999)}人想看</span></dd>'
        for _ in range(entries)
    )
    return (
        f'<div class="aside"><dl class="hot-list"><dt>{_text(rng, 2)}</dt>\n{items}\n</dl></div>\n'
    )


def _script(rng: random.Random, items: int) -> str:
    data = [
        {
            "id": rng.randint(1, 10**6),
            "nm": _text(rng, 2),
            "sc": rng.randint(0, 99) / 10,
            "img": f"https://p1.example.net/movie/{rng.getrandbits(64):x}.jpg",
        }
        for _ in range(items)
    ]
    return f"<script>window.__INITIAL_STATE__ = {json.dumps(data, ensure_ascii=False)};</script>\n"


def _page(
    rng: random.Random, number: int, pages: int, records: list[Record], chrome: str, size: int
) -> str:
    head = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>TOP100榜 - 第{number}页 - 猫眼电影演示</title>\n"
        '<meta name="keywords" content="电影,榜单,评分">\n'
        '<link rel="stylesheet" href="//s3.example.net/static/common.css" />\n'
        + chrome
        + '<div class="container"><div class="content"><div class="wrapper"><div class="main">\n'
        '<p class="update-time">2024-05-01<span class="has-fresh-text">已更新</span></p>\n'
        f'<p class="board-content">{_text(rng, 30)}</p>\n<dl class="board-wrapper">\n'
    )
    entries = "".join(_dd(r, 1_000_000 + r["index"]) for r in records)
    middle = "</dl>\n" + _pager(number, pages) + "\n</div></div></div>\n"
    tail_parts = [_sidebar(rng, 40)]
    used = len((head + entries + middle).encode()) + sum(len(p.encode()) for p in tail_parts)
    end = (
        '<div class="footer">&copy; 2024 演示电影 京ICP证000000号</div>\n</div>\n</body>\n</html>\n'
    )
    while used + len(end.encode()) < size:
        block = _script(rng, 20) if rng.random() < 0.5 else _sidebar(rng, 20)
        tail_parts.append(block)
        used += len(block.encode())
    return head + entries + middle + "".join(tail_parts) + end
