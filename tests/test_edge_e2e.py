"""End to end on loopback: the edge Worker in front of the example shop.

The shipped ``equeue/edge/worker.js`` runs in workerd through Miniflare
(``cloudflare/support/serve.mjs``) on its own loopback port, and every fetch it makes
goes to the Flask example app's port as a workerd external server. The requests keep
the Worker's host, so the origin's redirects, the Worker's ``next`` and the splash
page's Socket.IO connection all stay on the Worker's address: the browser only ever
talks to the Worker, as it would to a site behind Cloudflare.

The Worker is started with node from ``cloudflare/node_modules`` (``npm ci`` in
``cloudflare/``; scripts/test.sh does this).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from fixtures import REPO_ROOT
from fixtures.examples import SECRET, ExampleApp, start_example
from fixtures.servers import ServerProcess, ServerStartError, free_port

from equeue.tokens import TokenSigner, admission_cookie_name

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Response, WebSocket

pytestmark = pytest.mark.slow

CLOUDFLARE_DIR = REPO_ROOT / "cloudflare"
SERVE_SCRIPT = CLOUDFLARE_DIR / "support" / "serve.mjs"
ROOM = "default"
COOKIE_NAME = admission_cookie_name(ROOM)
WORKER_VARIABLES = [
    "EQUEUE_SECRET",
    "EQUEUE_ROOM",
    "EQUEUE_WAITING_ROOM_URL",
    "EQUEUE_BYPASS_PATHS",
    "EQUEUE_FAIL_MODE",
    "EQUEUE_HEALTH_URL",
    "EQUEUE_CLOCK_SKEW_S",
    "EQUEUE_RETRY_AFTER_S",
    "EQUEUE_HEALTH_CACHE_S",
    "EQUEUE_HEALTH_TIMEOUT_MS",
]

# Generous against a loaded CI machine, short against the 1 s heartbeat and 0.2 s tick.
WAIT_MS = 20_000


@dataclass
class EdgeSite:
    """The example app (the origin) and the Worker in front of it."""

    app: ExampleApp
    gate: ServerProcess
    url: str

    def queue_length(self) -> int:
        length: int = self.app.status()["queue_length"]
        return length


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: the edge Worker runs in workerd through Miniflare, "
            "which needs Node 20 or later",
            pytrace=False,
        )
    if not (CLOUDFLARE_DIR / "node_modules" / "miniflare" / "package.json").is_file():
        pytest.fail(
            f"{CLOUDFLARE_DIR / 'node_modules'} has no miniflare: run `npm ci` in "
            "cloudflare/ (scripts/test.sh does this)",
            pytrace=False,
        )
    return node


def _start_origin(
    server_factory: Callable[..., ServerProcess], socketio_client_file: Path
) -> ExampleApp:
    """The Flask example with capacity 1 and short heartbeats, on a free port."""
    last_error: ServerStartError | None = None
    for _ in range(3):
        try:
            return start_example(
                server_factory,
                "flask-threading",
                EQUEUE_CAPACITY="1",
                EQUEUE_SOCKETIO_CLIENT_FILE=str(socketio_client_file),
                EQUEUE_HEARTBEAT_INTERVAL="1",
                EQUEUE_HEARTBEAT_TIMEOUT="10",
                EQUEUE_TICK_INTERVAL="0.2",
            )
        except ServerStartError as exc:
            # Other test runs share this machine; a probed port can be taken.
            last_error = exc
    raise AssertionError(f"the example app did not start: {last_error}")


@pytest.fixture
def edge(
    server_factory: Callable[..., ServerProcess], socketio_client_file: Path
) -> Iterator[EdgeSite]:
    """The Flask example with capacity 1 behind the Worker; yields both."""
    node = _node_binary()
    app = _start_origin(server_factory, socketio_client_file)
    origin = f"127.0.0.1:{app.env['PORT']}"
    # The Worker's defaults, whatever this shell exports, except for the room.
    worker_env: dict[str, str | None] = dict.fromkeys(WORKER_VARIABLES)
    worker_env.update(EQUEUE_SECRET=SECRET, EQUEUE_ROOM=ROOM)

    last_error: ServerStartError | None = None
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        try:
            gate = server_factory(
                [node, str(SERVE_SCRIPT), "--port", str(port), "--origin", origin],
                # A bypass path: any answer here has gone through the Worker to the app.
                ready_url=f"{url}/equeue/health",
                env={**worker_env, "EQUEUE_WAITING_ROOM_URL": f"{url}/equeue/wait"},
                cwd=str(CLOUDFLARE_DIR),
                timeout_s=60.0,
                name="edge-gate",
            )
        except ServerStartError as exc:
            # Most likely another process took the port between probe and bind.
            last_error = exc
            continue
        yield EdgeSite(app, gate, url)
        return
    raise AssertionError(f"the Worker did not start: {last_error}")


def _wait_for_place(page: Page, position: int) -> None:
    """Wait until the splash page is connected and shows ``position``."""
    page.wait_for_function(
        "p => window.equeue && window.equeue.state === 'connected'"
        " && window.equeue.status === 'queued' && window.equeue.position === p",
        arg=position,
        timeout=WAIT_MS,
    )
    assert page.text_content("#equeue-position") == str(position)


def _gate_chain(response: Response | None) -> list[tuple[str, str | None]]:
    """The navigation's hops, first to last, as (path and query, X-Equeue-Gate)."""
    assert response is not None
    hops: list[tuple[str, str | None]] = []
    request: Any = response.request
    while request is not None:
        hop = request.response()
        gate = None if hop is None else hop.header_value("x-equeue-gate")
        url = request.url
        hops.append((url[url.index("/", len("http://")) :], gate))
        request = request.redirected_from
    return hops[::-1]


def _watch_sockets(page: Page, frames: dict[str, int]) -> None:
    """Count the frames each WebSocket of ``page`` receives, by URL."""

    def opened(socket: WebSocket) -> None:
        frames.setdefault(socket.url, 0)

        def received(_payload: Any) -> None:
            frames[socket.url] += 1

        socket.on("framereceived", received)

    page.on("websocket", opened)


@pytest.mark.browser
def test_visitor_waits_at_the_edge_and_reaches_the_shop_through_the_worker(
    edge: EdgeSite, browser_context_factory: Callable[..., BrowserContext]
) -> None:
    errors: list[str] = []
    first, second = browser_context_factory(), browser_context_factory()

    # A finds the shop empty: the Worker sends them to the waiting room, which lets
    # them in at once, and the admission cookie the origin sets opens the Worker.
    shopper = first.new_page()
    shopper.on("pageerror", lambda exc: errors.append(f"shopper: {exc}"))
    arrival = shopper.goto(f"{edge.url}/shop")
    assert shopper.url == f"{edge.url}/shop"
    assert shopper.get_by_text("You are in").first.is_visible()
    assert _gate_chain(arrival) == [
        ("/shop", "redirected"),
        # A first visit gets its pass cookie and one return trip to find it.
        ("/equeue/wait?room=default&next=%2Fshop", "bypass"),
        ("/equeue/wait?room=default&next=%2Fshop&cookie_check=1", "bypass"),
        ("/equeue/admit?room=default&next=%2Fshop", "bypass"),
        ("/shop", "admitted"),
    ]
    assert any(cookie["name"] == COOKIE_NAME for cookie in first.cookies(edge.url))

    # B comes while the shop is full: sent to the waiting room by the Worker, with
    # the page they asked for as the way back, and shown their place live.
    waiting = second.new_page()
    waiting.on("pageerror", lambda exc: errors.append(f"waiting: {exc}"))
    frames: dict[str, int] = {}
    _watch_sockets(waiting, frames)
    sent_away = waiting.goto(f"{edge.url}/shop/tickets/4")
    assert waiting.url == (
        f"{edge.url}/equeue/wait?room=default&next=%2Fshop%2Ftickets%2F4&cookie_check=1"
    )
    assert _gate_chain(sent_away) == [
        ("/shop/tickets/4", "redirected"),
        ("/equeue/wait?room=default&next=%2Fshop%2Ftickets%2F4", "bypass"),
        (
            "/equeue/wait?room=default&next=%2Fshop%2Ftickets%2F4&cookie_check=1",
            "bypass",
        ),
    ]
    _wait_for_place(waiting, 1)
    assert edge.queue_length() == 1

    # The live updates came over a WebSocket through the Worker, not around it.
    socket_prefix = edge.url.replace("http://", "ws://", 1) + "/socket.io/"
    sockets = [url for url in frames if url.startswith(socket_prefix)]
    assert sockets, f"no WebSocket through the Worker; sockets seen: {list(frames)}"
    assert all("transport=websocket" in url for url in sockets)
    assert max(frames[url] for url in sockets) > 0

    # A leaves; B is let in and lands where they were going, through the Worker.
    with waiting.expect_response(
        f"{edge.url}/shop/tickets/4", timeout=WAIT_MS
    ) as admitted_info:
        shopper.get_by_role("button", name="Leave the shop").click()
    waiting.wait_for_url(f"{edge.url}/shop/tickets/4", timeout=WAIT_MS)
    admitted = admitted_info.value
    assert admitted.status == 200
    assert admitted.header_value("x-equeue-gate") == "admitted"
    assert waiting.title() == "Shop: show 4"
    assert waiting.get_by_text("You are in").first.is_visible()

    # The Worker gates every path it is routed on, the home page that "Leave the
    # shop" returns to included: A is back in line, behind B, not ahead of them.
    shopper.wait_for_url(
        f"{edge.url}/equeue/wait?room=default&next=%2F", timeout=WAIT_MS
    )
    _wait_for_place(shopper, 1)
    assert edge.queue_length() == 1

    assert errors == []


def test_worker_refuses_forged_cookies_and_answers_api_clients(
    edge: EdgeSite,
) -> None:
    session = requests.Session()

    # A real admission, picked up through the Worker the way a browser does it.
    arrival = session.get(f"{edge.url}/shop", timeout=10)
    assert arrival.status_code == 200
    assert arrival.headers["X-Equeue-Gate"] == "admitted"
    assert [step.headers["X-Equeue-Gate"] for step in arrival.history] == [
        "redirected",
        "bypass",  # the wait page hands out the pass cookie
        "bypass",  # and finds it on the return trip: admitted at once
        "bypass",  # the admission cookie is picked up
    ]
    real_token = session.cookies.get(COOKIE_NAME)
    assert isinstance(real_token, str)

    header, payload, signature = real_token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    now = time.time()
    # (token, the reason the Worker gives in X-Equeue-Reason)
    forged = {
        "tampered signature": (f"{header}.{payload}.{flipped}", "invalid"),
        "wrong secret": (
            TokenSigner("another-secret-" + "x" * 40).issue_admission(
                "visitor-a", ROOM, now + 300
            ),
            "invalid",
        ),
        "other room": (
            TokenSigner(SECRET).issue_admission("visitor-a", "other-room", now + 300),
            "wrong_room",
        ),
        "expired": (
            TokenSigner(SECRET, clock=lambda: now - 900).issue_admission(
                "visitor-a", ROOM, now - 600
            ),
            "expired",
        ),
        "not a token": ("hello", "invalid"),
    }
    for label, (token, reason) in forged.items():
        answer = requests.get(
            f"{edge.url}/shop/tickets/2",
            cookies={COOKIE_NAME: token},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 303, label
        assert answer.headers["X-Equeue-Gate"] == "redirected", label
        assert answer.headers["X-Equeue-Reason"] == reason, label
        assert answer.headers["Location"] == (
            f"{edge.url}/equeue/wait?room=default&next=%2Fshop%2Ftickets%2F2"
        ), label

    # The real cookie still goes through: the refusals above were the forgeries'.
    kept = requests.get(
        f"{edge.url}/shop/tickets/2",
        cookies={COOKIE_NAME: real_token},
        allow_redirects=False,
        timeout=10,
    )
    assert kept.status_code == 200
    assert kept.headers["X-Equeue-Gate"] == "admitted"

    # An API client without a cookie gets a JSON 503 with Retry-After, not a page.
    api = requests.get(
        f"{edge.url}/shop/tickets/2",
        headers={"Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    )
    assert api.status_code == 503
    assert api.headers["X-Equeue-Gate"] == "rejected"
    assert int(api.headers["Retry-After"]) > 0
    assert api.json() == {
        "error": "waiting_room",
        "room": ROOM,
        "waiting_room_url": (
            f"{edge.url}/equeue/wait?room=default&next=%2Fshop%2Ftickets%2F2"
        ),
    }
