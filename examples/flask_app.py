"""A small ticket shop whose pages sit behind the equeue waiting room.

Run it with ``python examples/flask_app.py`` (or ``scripts/demo.sh``) and open the
URL it logs. Settings come from the environment:

    HOST, PORT                 where to listen (default 127.0.0.1:5000)
    REDIS_URL                  a Redis URL; without one the in-memory store is used
    EQUEUE_CAPACITY            visitors in the shop at once (default 2)
    EQUEUE_SECRET              signing secret, 32+ characters (required unless
                               EQUEUE_DEBUG=1, which uses a development secret)
    EQUEUE_DEBUG               1 for development mode
    EQUEUE_HEARTBEAT_INTERVAL  seconds between heartbeats (default 5)
    EQUEUE_HEARTBEAT_TIMEOUT   seconds of silence before a waiter loses their place
    EQUEUE_SESSION_TTL         seconds an idle shopper keeps their slot (default 600)
    EQUEUE_ASYNC_MODE          threading (default) or eventlet
    EQUEUE_ADMIN_KEY           key for /queue_status, /debug_heartbeats, /metrics
    EQUEUE_SOCKETIO_CLIENT_FILE  a local socket.io.min.js to serve instead of the CDN
"""

from __future__ import annotations

import logging
import os
import sys

ASYNC_MODE = os.environ.get("EQUEUE_ASYNC_MODE", "threading")
if ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()

from flask import Flask, render_template_string  # noqa: E402

from equeue import ConfigurationError, Settings  # noqa: E402
from equeue.adapters.flask import Equeue  # noqa: E402

logger = logging.getLogger("examples.flask_app")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
        padding: 0 1rem; color: #1d2330; }
 a.ticket { display: inline-block; margin: .3rem; padding: .6rem 1rem;
            border: 1px solid #6a5acd; border-radius: .4rem; text-decoration: none; }
 button { padding: .5rem 1rem; }
</style></head><body>
<h1>{{ title }}</h1>
{% if shop %}
  <p>You are in. Pick your tickets:</p>
  {% for n in range(1, 9) %}
    <a class="ticket" href="/shop/tickets/{{ n }}">Show {{ n }}</a>
  {% endfor %}
  {% if ticket %}
    <p id="chosen">You are looking at tickets for show {{ ticket }}.</p>
  {% endif %}
  <form method="post" action="/equeue/leave?room={{ room }}&next=/">
    <button type="submit">Leave the shop</button></form>
{% else %}
  <p>The big sale is on. Only a few shoppers fit in the shop at once; if it is full
  you will wait in line and be let in when your turn comes.</p>
  <p><a href="/shop">Enter the shop</a></p>
{% endif %}
</body></html>"""


def create_app(settings: Settings | None = None) -> tuple[Flask, Equeue]:
    """Build the demo app and its waiting room."""
    app = Flask(__name__)
    settings = settings or Settings.from_env()
    waiting_room = Equeue(app, settings=settings, async_mode=ASYNC_MODE)
    room = settings.default_room

    @app.route("/")
    def index() -> str:
        return render_template_string(PAGE, title="Ticket shop", shop=False)

    @app.route("/shop")
    @waiting_room.protect()
    def shop() -> str:
        return render_template_string(PAGE, title="Shop", shop=True, room=room)

    @app.route("/shop/tickets/<int:show>")
    @waiting_room.protect()
    def tickets(show: int) -> str:
        return render_template_string(
            PAGE, title=f"Shop: show {show}", shop=True, ticket=show, room=room
        )

    return app, waiting_room


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        app, waiting_room = create_app()
    except ConfigurationError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    logger.info(
        "ticket shop ready: open http://%s:%d/ (async mode %s)", host, port, ASYNC_MODE
    )
    waiting_room.run(app, host=host, port=port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
