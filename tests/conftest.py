"""Fixtures shared by every test: real Redis servers, a Redis Cluster, headless
Chromium, server processes, and the Socket.IO browser client file.

Servers listen on 127.0.0.1 only and are stopped by PID when their scope ends. The
helpers behind these fixtures live in ``tests/fixtures/`` and are importable from any
test module as ``fixtures.<module>``.

Fixtures:
    redis_server (session): a standalone redis-server; ``.url``, ``.port``,
        ``.restart()`` (same port, every key lost), ``.client()``.
    redis_url: ``redis_server.url`` after FLUSHALL.
    redis_cluster (session): a three-master Redis Cluster; ``.url``
        (``redis+cluster://...``), ``.startup_nodes``, ``.ports``.
    redis_cluster_url: ``redis_cluster.url`` after FLUSHALL on every master.
    browser / chromium (session): a Playwright ``Browser`` on headless Debian Chromium.
    page: a ``Page`` in a fresh browser context, closed after the test.
    browser_context_factory: ``make(**context_options)`` for several independent
        visitors in one test; every context is closed after the test.
    server_factory: ``start(argv, ready_url=..., env=..., ...)`` returning a started
        ``ServerProcess``, stopped after the test.
    socketio_client_file (session): path of socket.io-client's ``socket.io.min.js``.
    visitors: ``make(app, visitor_pass=None)``, connected Socket.IO visitors of an
        example app, closed after the test.

Tests that use the Redis or browser fixtures get the ``redis`` or ``browser`` marker
automatically, so ``-m "not browser"`` works without decorating each test.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:
    # Makes ``import fixtures`` work whether or not tests/ is a package.
    sys.path.insert(0, str(_TESTS_DIR))

from fixtures import SOCKETIO_CLIENT_FILE  # noqa: E402
from fixtures.browser import (  # noqa: E402
    BrowserUnavailable,
    check_playwright,
    chromium_path,
    in_ci,
    launch_chromium,
)
from fixtures.examples import ExampleApp, Visitor  # noqa: E402
from fixtures.redis_cluster import RedisCluster  # noqa: E402
from fixtures.redis_server import RedisNotInstalled, RedisServer  # noqa: E402
from fixtures.servers import ServerProcess  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

_REDIS_FIXTURES = {"redis_server", "redis_url", "redis_cluster", "redis_cluster_url"}
_BROWSER_FIXTURES = {
    "playwright_instance",
    "browser",
    "chromium",
    "page",
    "browser_context_factory",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)
        if names & _BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


# Redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start_on_free_port()
    except RedisNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    try:
        cluster = RedisCluster.start_on_free_ports()
    except RedisNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    redis_cluster.flushall()
    return redis_cluster.url


# Browser


def _browser_unavailable(reason: str) -> None:
    # Locally a missing browser skips the browser tests; in CI it must not pass
    # quietly, since the browser is part of what CI has to prove.
    if in_ci():
        pytest.fail(
            f"{reason} (CI=true: browser tests cannot be skipped)", pytrace=False
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    try:
        check_playwright()
        chromium_path()
    except BrowserUnavailable as exc:
        _browser_unavailable(str(exc))

    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    instance = launch_chromium(playwright_instance)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="session")
def chromium(browser: Browser) -> Browser:
    """The same browser as ``browser``, under the name of the program it runs."""
    return browser


@pytest.fixture
def browser_context_factory(
    browser: Browser,
) -> Iterator[Callable[..., BrowserContext]]:
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(**options)
        contexts.append(context)
        return context

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(browser_context_factory: Callable[..., BrowserContext]) -> Page:
    return browser_context_factory().new_page()


# Server processes and files


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(
        argv: Sequence[str],
        *,
        ready_url: str | None,
        env: Mapping[str, str | None] | None = None,
        **options: Any,
    ) -> ServerProcess:
        server = ServerProcess(argv, ready_url=ready_url, env=env, **options)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in reversed(started):
            # Printed during teardown, pytest shows this only for a failed test,
            # where the servers' last words usually explain the failure.
            print(f"--- {server!r} output (tail) ---\n{server.output_tail()}")
            server.cleanup()


@pytest.fixture
def visitors() -> Iterator[Callable[..., Visitor]]:
    """``make(app, visitor_pass=None)``: a connected Socket.IO visitor of an example
    app; every one is closed after the test."""
    opened: list[Visitor] = []

    def make(app: ExampleApp, visitor_pass: str | None = None) -> Visitor:
        visitor = Visitor(app.url, visitor_pass).connect()
        opened.append(visitor)
        return visitor

    yield make
    # A client's close waits up to 3 s for the server's close frame; close all at once.
    closers = [threading.Thread(target=v.close) for v in opened]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(timeout=10)


@pytest.fixture(scope="session")
def socketio_client_file() -> Path:
    if not SOCKETIO_CLIENT_FILE.is_file():
        pytest.fail(
            f"{SOCKETIO_CLIENT_FILE} is missing: run `npm ci` in the repository root "
            "(scripts/test.sh does this)",
            pytrace=False,
        )
    return SOCKETIO_CLIENT_FILE
