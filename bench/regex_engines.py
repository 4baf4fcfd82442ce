"""Which regex engine extraction should use: Python's re, the regex module, or RE2.

    python bench/regex_engines.py            # needs ../shared/corpus; pip install google-re2

Runs the shipped spiders' patterns over the real saved pages, many times, and
prints microseconds per page for each engine, plus what each does with a
catastrophic pattern on a hostile page. Matches are checked to be the same.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import regex

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))

from scraper.spec import load_spiders  # noqa: E402

PAGES = {
    "maoyan": ["maoyan/board4_offset0_2025.html", "maoyan/board4_offset90_2025.html"],
    "douban": ["douban/top250_start0.html", "douban/top250_start100.html"],
    "books": ["books/site/index.html", "books/site/catalogue/page-2.html"],
}


def per_page(finditer, text: str, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for _match in finditer(text):
            pass
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    try:
        import re2
    except ImportError:
        re2 = None
    spiders = load_spiders(ROOT / "spiders.yaml")
    print(f"{'spider':<8} {'re µs':>8} {'regex µs':>9} {'re2 µs':>8}  matches")
    for name, files in PAGES.items():
        page = next(iter(spiders.get(name).pages.values()))
        assert page.pattern is not None
        source, flags = page.pattern.pattern, page.pattern.flags & ~regex.VERSION0
        compiled_re = re.compile(source, flags & (re.S | re.I | re.M | re.X))
        compiled_regex = page.pattern
        compiled_re2 = None
        if re2 is not None:
            try:
                options = re2.Options()
                options.dot_nl = bool(flags & re.S)
                compiled_re2 = re2.compile(source, options)
            except Exception as exc:  # RE2 lacks lookarounds and backreferences
                compiled_re2 = f"cannot compile: {type(exc).__name__}"
        for file in files:
            text = (CORPUS / file).read_text(encoding="utf-8")
            rounds = 200
            found = [m.group(0) for m in compiled_regex.finditer(text)]
            assert found == [m.group(0) for m in compiled_re.finditer(text)]
            t_re = per_page(compiled_re.finditer, text, rounds)
            t_regex = per_page(compiled_regex.finditer, text, rounds)
            if isinstance(compiled_re2, str) or compiled_re2 is None:
                t_re2 = compiled_re2 or "not installed"
            else:
                t_re2 = f"{per_page(compiled_re2.finditer, text, rounds):8.0f}"
            print(f"{name:<8} {t_re:8.0f} {t_regex:9.0f} {t_re2:>8}  {len(found)}  {file}")
    hostile = "x" * 5000
    print("\ncatastrophic (x+x+)+y on 5,000 x's:")
    started = time.perf_counter()
    try:
        list(regex.compile(r"(x+x+)+y").finditer(hostile, timeout=1.0))
        print("  regex: finished")
    except TimeoutError:
        print(f"  regex: stopped by timeout= after {time.perf_counter() - started:.2f}s")
    print("  re: no timeout; 30 x's take seconds, 5,000 would never end (not run)")
    if re2 is not None:
        started = time.perf_counter()
        list(re2.compile(r"(x+x+)+y").finditer(hostile))
        print(f"  re2: linear, {1000 * (time.perf_counter() - started):.2f} ms")


if __name__ == "__main__":
    main()
