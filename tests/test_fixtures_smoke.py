"""The shared fixtures really start what they promise: a Redis server, a Redis Cluster,
server processes that report their failures, and a working headless Chromium."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from fixtures.redis_cluster import RedisCluster
from fixtures.redis_server import RedisServer
from fixtures.servers import ServerProcess, ServerStartError, free_port, http_answers

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_redis_server_stores_and_reads_back_a_key(
    redis_server: RedisServer, redis_url: str
) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_url, protocol=2)
    try:
        client.set("smoke:key", "value")
        assert client.get("smoke:key") == b"value"
    finally:
        client.close()


def test_redis_url_starts_each_test_with_an_empty_database(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, protocol=2)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_server_listens_on_loopback_only(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("save")["save"] == ""
    finally:
        client.close()


def test_redis_restart_keeps_the_port_and_loses_the_data(
    redis_server: RedisServer, redis_url: str
) -> None:
    old_pid = redis_server.pid
    client = redis.Redis.from_url(redis_url, protocol=2)
    try:
        client.set("smoke:survives?", "no")
        redis_server.restart()

        assert redis_server.pid != old_pid
        assert redis_server.url == redis_url
        # The old connection died with the old process; redis-py reconnects.
        assert client.get("smoke:survives?") is None
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_cluster_has_three_masters_covering_every_slot(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    ports = redis_cluster.ports
    assert redis_cluster_url == (
        f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]},127.0.0.1:{ports[2]}"
    )
    assert redis_cluster.startup_nodes == [("127.0.0.1", port) for port in ports]

    node = redis_cluster.node_client(ports[0])
    try:
        # Each entry: [first_slot, last_slot, [host, port, node_id], *replicas].
        slot_ranges: list[list[Any]] = node.cluster("SLOTS")
    finally:
        node.close()
    owners = {int(entry[2][1]) for entry in slot_ranges}
    covered = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slot_ranges)

    assert owners == set(ports)
    assert covered == 16384


def test_redis_cluster_spreads_hash_tags_over_its_masters(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    rooms = [f"room-{number}" for number in range(12)]
    client = redis.RedisCluster(
        host="127.0.0.1", port=redis_cluster.ports[0], protocol=2
    )
    try:
        for room in rooms:
            client.set(f"{{{room}}}:smoke", room)
        assert [client.get(f"{{{room}}}:smoke") for room in rooms] == [
            room.encode() for room in rooms
        ]
    finally:
        client.close()

    keys_per_master = []
    for port in redis_cluster.ports:
        node = redis_cluster.node_client(port)
        try:
            keys_per_master.append(node.dbsize())
        finally:
            node.close()
    assert sum(keys_per_master) == len(rooms)
    assert all(count > 0 for count in keys_per_master)


def test_redis_cluster_url_flushes_every_master(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    for port in redis_cluster.ports:
        node = redis_cluster.node_client(port)
        try:
            assert node.dbsize() == 0
        finally:
            node.close()


def test_server_process_reports_the_output_of_a_command_that_dies() -> None:
    crashing = ServerProcess(
        [sys.executable, "-c", "print('smoke: about to fail'); raise SystemExit(3)"],
        ready_url=f"http://127.0.0.1:{free_port()}/",
        timeout_s=10,
        name="crasher",
    )
    try:
        with pytest.raises(ServerStartError) as raised:
            crashing.start()
    finally:
        crashing.cleanup()

    message = str(raised.value)
    assert "exited with status 3" in message
    assert "smoke: about to fail" in message


def test_server_process_reports_a_server_that_never_answers() -> None:
    silent = ServerProcess(
        [sys.executable, "-c", "import time; print('smoke: sleeping'); time.sleep(60)"],
        ready_url=f"http://127.0.0.1:{free_port()}/",
        timeout_s=1,
        name="sleeper",
    )
    try:
        with pytest.raises(ServerStartError) as raised:
            silent.start()
        assert not silent.alive
    finally:
        silent.cleanup()

    assert "did not answer" in str(raised.value)
    assert "smoke: sleeping" in str(raised.value)


def test_server_factory_starts_a_server_and_stops_it_after_the_test(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("hello from http.server")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = server_factory(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        ready_url=url,
        cwd=tmp_path,
        name="http.server",
    )

    assert server.alive
    assert http_answers(url)

    server.kill()
    assert not server.alive
    assert not http_answers(url)


@pytest.fixture
def tiny_site() -> Iterator[str]:
    """A one-page site on a loopback http.server, served from a thread."""
    body = (
        b"<!doctype html><title>smoke</title>"
        b"<p id='greeting'>waiting</p>"
        b"<script>document.getElementById('greeting').textContent ="
        b" 'rendered by ' + 'script';</script>"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_chromium_renders_a_loopback_page_and_runs_its_script(
    page: Page, tiny_site: str
) -> None:
    page.goto(tiny_site)

    assert page.title() == "smoke"
    assert page.text_content("#greeting") == "rendered by script"


def test_socketio_client_file_is_the_browser_build(socketio_client_file: Path) -> None:
    head = socketio_client_file.read_text(encoding="utf-8")[:400]
    assert "Socket.IO v4.8" in head
