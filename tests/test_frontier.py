"""The frontier's canonical URLs: what dedup counts as the same page."""

from __future__ import annotations

import pytest

from scraper.frontier import canonical_url


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://a.com/p?b=2&a=1", "https://a.com/p?a=1&b=2"),
        ("https://a.com/p#top", "https://a.com/p"),
        ("HTTPS://A.COM/p", "https://a.com/p"),
        ("http://a.com:80/p", "http://a.com/p"),
        ("https://a.com:443/p", "https://a.com/p"),
        ("https://a.com", "https://a.com/"),
        ("https://a.com/top250?start=25&filter=", "https://a.com/top250?filter=&start=25"),
    ],
)
def test_the_same_page_written_two_ways(first: str, second: str) -> None:
    assert canonical_url(first) == canonical_url(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://a.com/P", "https://a.com/p"),  # paths are case-sensitive
        ("https://a.com/p?a=1", "https://a.com/p?a=2"),
        ("https://a.com/p?a", "https://a.com/p"),
        ("http://a.com/p", "https://a.com/p"),
        ("http://a.com:8080/p", "http://a.com/p"),
    ],
)
def test_different_pages_stay_different(first: str, second: str) -> None:
    assert canonical_url(first) != canonical_url(second)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://a.com/p/1.html", "https://a.com/p/1.html"),  # already canonical: as it is
        ("http://127.0.0.1:8080/board/4", "http://127.0.0.1:8080/board/4"),
        ("http://a.com:80/p", "http://a.com/p"),
        ("https://a.com:443/", "https://a.com/"),
        ("https://A.com/p", "https://a.com/p"),
        ("Https://a.com/p", "https://a.com/p"),
        ("https://a.com", "https://a.com/"),
        ("https://a.com/p?b=1&a=", "https://a.com/p?a=&b=1"),
        ("https://a.com/p#x", "https://a.com/p"),
        ("https://a.com/a b\t", "https://a.com/a b"),
        ("https://user@a.com/p", "https://user@a.com/p"),
    ],
)
def test_canonical_form(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical
    assert canonical_url(canonical) == canonical
