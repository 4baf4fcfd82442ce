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
