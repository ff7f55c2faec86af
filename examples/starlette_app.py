"""The ticket shop of ``examples/flask_app.py`` on Starlette, served by uvicorn.

Run it with ``python examples/starlette_app.py`` and open the URL it logs, or with
uvicorn's own command line::

    uvicorn --factory examples.starlette_app:create_asgi_app --port 5000

Settings come from the same environment variables as the Flask example:

    HOST, PORT                 where to listen (default 127.0.0.1:5000)
    REDIS_URL                  a Redis URL; without one the in-memory store is used
    EQUEUE_CAPACITY            visitors in the shop at once (default 2)
    EQUEUE_SECRET              signing secret, 32+ characters (required unless
                               EQUEUE_DEBUG=1, which uses a development secret)
    EQUEUE_DEBUG               1 for development mode
    EQUEUE_HEARTBEAT_INTERVAL  seconds between heartbeats (default 5)
    EQUEUE_HEARTBEAT_TIMEOUT   seconds of silence before a waiter loses their place
    EQUEUE_SESSION_TTL         seconds an idle shopper keeps their slot (default 600)
    EQUEUE_ADMIN_KEY           key for /queue_status, /debug_heartbeats, /metrics
    EQUEUE_SOCKETIO_CLIENT_FILE  a local socket.io.min.js to serve instead of the CDN

``EQUEUE_ASYNC_MODE`` is ignored: this server is always asyncio.
"""

from __future__ import annotations

import html
import logging
import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from equeue import ConfigurationError, Settings
from equeue.adapters.starlette import Equeue

logger = logging.getLogger("examples.starlette_app")

#: Seconds uvicorn gives open requests (Socket.IO long-polls among them) to end
#: on shutdown; the queue itself needs none of it, it lives in the store.
GRACEFUL_SHUTDOWN_S = 5

_STYLE = """<style>
 body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
        padding: 0 1rem; color: #1d2330; }
 a.ticket { display: inline-block; margin: .3rem; padding: .6rem 1rem;
            border: 1px solid #6a5acd; border-radius: .4rem; text-decoration: none; }
 button { padding: .5rem 1rem; }
</style>"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>\n{_STYLE}</head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>"
    )


def _shop_body(leave_url: str, ticket: int | None) -> str:
    links = "".join(
        f'<a class="ticket" href="/shop/tickets/{n}">Show {n}</a>' for n in range(1, 9)
    )
    chosen = (
        f'<p id="chosen">You are looking at tickets for show {ticket}.</p>'
        if ticket is not None
        else ""
    )
    return (
        f"<p>You are in. Pick your tickets:</p>\n{links}\n{chosen}\n"
        f'<form method="post" action="{html.escape(leave_url)}">\n'
        '<button type="submit">Leave the shop</button></form>'
    )


def create_app(settings: Settings | None = None) -> tuple[Starlette, Equeue]:
    """Build the demo app and its waiting room."""
    settings = settings or Settings.from_env()
    room = settings.default_room
    leave_url = f"{settings.url_prefix}/leave?room={room}&next=/"

    async def index(request: Request) -> HTMLResponse:
        return _page(
            "Ticket shop",
            "<p>The big sale is on. Only a few shoppers fit in the shop at once; if "
            "it is full\nyou will wait in line and be let in when your turn comes."
            '</p>\n<p><a href="/shop">Enter the shop</a></p>',
        )

    app = Starlette(routes=[Route("/", index)])
    waiting_room = Equeue(app, settings=settings)

    @waiting_room.protect()
    async def shop(request: Request) -> HTMLResponse:
        return _page("Shop", _shop_body(leave_url, None))

    @waiting_room.protect()
    async def tickets(request: Request) -> HTMLResponse:
        show = request.path_params["show"]
        return _page(f"Shop: show {show}", _shop_body(leave_url, show))

    app.router.routes.extend(
        [Route("/shop", shop), Route("/shop/tickets/{show:int}", tickets)]
    )
    return app, waiting_room


def create_asgi_app() -> ASGIApp:
    """The app to serve: the shop with Socket.IO beside it (a uvicorn factory)."""
    _, waiting_room = create_app()
    return waiting_room.asgi_app()


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asgi = create_asgi_app()
    except ConfigurationError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    logger.info("ticket shop ready: open http://%s:%d/ (Starlette)", host, port)
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
