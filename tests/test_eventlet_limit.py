"""Under eventlet the Flask adapter serves more than eventlet's default 1024
connections at once (a waiting room holds one open socket per waiter)."""

from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlsplit

import pytest
import requests
from fixtures.examples import start_example

pytestmark = pytest.mark.slow

HELD_OPEN = 1100


def test_a_request_is_served_while_more_than_1024_connections_are_open(
    server_factory,
):
    app = start_example(server_factory, "flask-eventlet")
    address = urlsplit(app.url)
    held: list[socket.socket] = []
    try:
        for _ in range(HELD_OPEN):
            # An unfinished request keeps one of the server's green threads busy,
            # as a waiter's open websocket does.
            conn = socket.create_connection((address.hostname, address.port), 5)
            conn.sendall(b"GET /equeue/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(conn)

        response = requests.get(f"{app.url}/equeue/health", timeout=10)
    finally:
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()

    assert response.status_code == 200
