"""End-to-end tests of the splash page in headless Chromium.

The main test runs the example shop with capacity 1 on every adapter (Flask under
both Flask-SocketIO async modes, Starlette) and walks three visitors, each in their
own browser context, through the waiting room. The page loads the self-hosted
socket.io-client from the npm package, since these machines have no internet.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fixtures.examples import ADAPTER_IDS, start_example
from fixtures.servers import ServerProcess, free_port

from equeue import client

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Route

ROOT = Path(__file__).resolve().parent.parent

# Generous against a loaded CI machine, short against the 1 s heartbeat and 0.2 s tick.
WAIT_MS = 20_000


def _status(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(
        f"{base_url}/queue_status?format=json", timeout=10
    ) as response:
        payload: dict[str, Any] = json.load(response)
    for room in payload["rooms"]:
        if room["room"] == "default":
            return room
    raise AssertionError(f"no room 'default' in /queue_status: {payload}")


def _wait_for_place(page: Page, position: int) -> None:
    """Wait until the splash page is connected and shows ``position``."""
    page.wait_for_function(
        "p => window.equeue && window.equeue.state === 'connected'"
        " && window.equeue.status === 'queued' && window.equeue.position === p",
        arg=position,
        timeout=WAIT_MS,
    )
    assert page.text_content("#equeue-position") == str(position)


def _watch_errors(page: Page, errors: list[str]) -> Page:
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    return page


@pytest.fixture(params=ADAPTER_IDS)
def shop(
    request: pytest.FixtureRequest,
    server_factory: Callable[..., ServerProcess],
    socketio_client_file: Path,
) -> str:
    """The example shop with capacity 1, in memory, in debug mode, on each adapter
    (Flask under threading and eventlet, Starlette); returns its URL."""
    app = start_example(
        server_factory,
        request.param,
        EQUEUE_CAPACITY="1",
        EQUEUE_DEBUG="1",
        EQUEUE_HEARTBEAT_INTERVAL="1",
        EQUEUE_HEARTBEAT_TIMEOUT="5",
        EQUEUE_SOCKETIO_CLIENT_FILE=str(socketio_client_file),
    )
    return app.url


@pytest.mark.slow
def test_three_visitors_wait_in_order_and_go_in(
    shop: str, browser_context_factory: Callable[..., BrowserContext]
) -> None:
    errors: list[str] = []
    first, second, third = (browser_context_factory() for _ in range(3))

    # The first visitor finds the shop empty and goes straight in.
    shopper = _watch_errors(first.new_page(), errors)
    shopper.goto(f"{shop}/shop/tickets/1")
    assert shopper.url == f"{shop}/shop/tickets/1"
    assert "Shop" in shopper.title()
    assert shopper.get_by_text("You are in").first.is_visible()

    # The next two wait, in the order they came.
    waiting = _watch_errors(second.new_page(), errors)
    waiting.goto(f"{shop}/shop/tickets/7")
    assert "/equeue/wait" in waiting.url
    _wait_for_place(waiting, 1)

    last = _watch_errors(third.new_page(), errors)
    last.goto(f"{shop}/shop/tickets/9")
    assert "/equeue/wait" in last.url
    _wait_for_place(last, 2)
    assert _status(shop)["queue_length"] == 2

    # Reloading the splash page neither loses nor duplicates a place.
    last.reload()
    _wait_for_place(last, 2)
    assert _status(shop)["queue_length"] == 2

    # The shopper leaves; the next in line is let in where they were going.
    shopper.get_by_role("button", name=re.compile("Leave the shop")).click()
    shopper.wait_for_url(f"{shop}/", timeout=WAIT_MS)

    waiting.wait_for_url(f"{shop}/shop/tickets/7", timeout=WAIT_MS)
    assert "Shop" in waiting.title()
    assert waiting.get_by_text("You are in").first.is_visible()
    _wait_for_place(last, 1)
    assert _status(shop)["queue_length"] == 1

    # A reload keeps the place the visitor moved up to.
    last.reload()
    _wait_for_place(last, 1)

    # A second tab of the same visitor shows the same place and takes no other.
    second_tab = _watch_errors(third.new_page(), errors)
    second_tab.goto(f"{shop}/shop/tickets/9")
    assert "/equeue/wait" in second_tab.url
    _wait_for_place(second_tab, 1)
    _wait_for_place(last, 1)
    assert _status(shop)["queue_length"] == 1

    # Let a few heartbeats go by: both tabs keep the one place.
    second_tab.wait_for_timeout(2500)
    _wait_for_place(last, 1)
    _wait_for_place(second_tab, 1)
    assert _status(shop)["queue_length"] == 1

    assert errors == []


def _offline_splash(page: Page, socketio_source: bytes) -> list[str]:
    """Serve a splash page whose socket.io client comes from the (routed) CDN.

    Every request is answered by Playwright's router, so nothing leaves the machine:
    the page, its scripts, and the CDN copy of socket.io-client; Socket.IO's own
    requests are aborted. Returns the list that collects uncaught page errors.
    """
    origin = f"http://127.0.0.1:{free_port()}"
    config = {
        "room": "default",
        "pass": "not-a-real-pass",
        "next": "/shop",
        "wait_url": "/equeue/wait?room=default&next=/shop",
        "admit_url": "/equeue/admit?room=default&next=/shop",
        "static_url": "/equeue/static",
        "socket": {"url": None, "path": "/socket.io"},
        "socketio_client": client.socketio_client_source(None),
        "heartbeat_interval_ms": 1000,
        "heartbeat_ack_timeout_ms": 1000,
        "heartbeat_max_retries": 3,
        "connect_max_attempts": 3,
        "initial": {
            "position": 4,
            "queue_length": 9,
            "eta_seconds": 170,
            "status": "queued",
        },
    }
    answers = {
        f"{origin}/equeue/wait": (
            client.render_splash(config, static_url="/equeue/static").encode(),
            client.content_type("splash.html"),
        ),
        f"{origin}/equeue/static/equeue.js": (
            client.static_file("equeue.js"),
            client.content_type("equeue.js"),
        ),
    }

    def answer(route: Route) -> None:
        url = route.request.url
        if url == client.SOCKETIO_CDN_URL:
            route.fulfill(
                body=socketio_source,
                headers={
                    "Content-Type": client.content_type("socket.io.min.js"),
                    "Access-Control-Allow-Origin": "*",
                },
            )
        elif url in answers:
            body, content_type = answers[url]
            route.fulfill(body=body, headers={"Content-Type": content_type})
        else:
            route.abort()

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("**/*", answer)
    page.goto(f"{origin}/equeue/wait")
    return errors


def test_cdn_client_with_the_pinned_integrity_loads(
    page: Page, socketio_client_file: Path
) -> None:
    errors = _offline_splash(page, socketio_client_file.read_bytes())

    page.wait_for_function("typeof window.io === 'function'", timeout=WAIT_MS)
    loaded = page.evaluate(
        """() => {
            const s = document.querySelector('script[src*="cdn.socket.io"]');
            return s && {integrity: s.integrity, crossOrigin: s.crossOrigin};
        }"""
    )
    assert loaded == {
        "integrity": client.SOCKETIO_INTEGRITY,
        "crossOrigin": "anonymous",
    }
    # The initial state from the configuration shows before any socket answers.
    assert page.text_content("#equeue-position") == "4"
    assert page.text_content("#equeue-queue-length") == "9"
    assert page.text_content("#equeue-eta") == "about 3 min"
    assert page.is_hidden("#equeue-error")
    assert errors == []


def test_tampered_cdn_client_is_refused_with_a_retry_button(
    page: Page, socketio_client_file: Path
) -> None:
    tampered = socketio_client_file.read_bytes() + b"\n;window.tampered = true;\n"

    errors = _offline_splash(page, tampered)

    page.wait_for_function("window.equeue.state === 'failed'", timeout=WAIT_MS)
    assert page.evaluate("typeof window.io") == "undefined"
    assert page.evaluate("window.tampered === undefined")
    assert page.is_visible("#equeue-error")
    assert page.is_visible("#equeue-retry")
    assert "could not load" in (page.text_content("#equeue-error") or "")
    assert errors == []
