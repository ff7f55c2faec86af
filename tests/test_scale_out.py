"""Several real server processes on one Redis (standalone or a real Redis Cluster).

Flask (threading) and Starlette example servers run side by side as separate
processes, each with its own ticker; python-socketio clients connect to all of them
over real websockets. The tickers are not coordinated: each runs the atomic tick
script every 0.2 s, which is the design under test ("scripts that are safe to race",
docs/scaling.md). While the queue drains, a sampler thread reads ``/queue_status``
from every process and the room's keys straight from Redis and records anything that
breaks an invariant: more admitted visitors than the capacity, or somebody let in
while a visitor with a smaller ticket still waits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import redis
import requests
from fixtures.examples import ADMIN_KEY, SECRET, ExampleApp, Visitor, start_example

from equeue import TokenSigner
from equeue.rules import RoomRules
from equeue.stores._redis_common import RedisKeys
from equeue.stores.redis import RedisStore

pytestmark = pytest.mark.slow

SIGNER = TokenSigner(SECRET)

#: Counts the admitted sessions that are still running, by the store's own clock,
#: in one atomic step (the same test the scripts use).
ACTIVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
"""


def visitor_id_of(visitor: Visitor) -> str:
    assert visitor.visitor_pass is not None
    return SIGNER.read_pass(visitor.visitor_pass).visitor_id


def ticket_of(visitor: Visitor) -> int | None:
    assert visitor.visitor_pass is not None
    return SIGNER.read_pass(visitor.visitor_pass).ticket


def rooms_status(app: ExampleApp) -> dict[str, dict[str, Any]]:
    response = requests.get(
        f"{app.url}/queue_status",
        params={"format": "json"},
        headers={"X-Equeue-Admin-Key": ADMIN_KEY},
        timeout=5,
    )
    response.raise_for_status()
    return {room["room"]: room for room in response.json()["rooms"]}


def leave(app: ExampleApp, visitor: Visitor, room: str = "default") -> None:
    response = requests.post(
        f"{app.url}/equeue/leave",
        params={"room": room},
        cookies=visitor.cookies(),
        headers={"Accept": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200 and response.json()["left"] is True


class Sampler:
    """Watches one room from outside while the test drives it.

    Every few milliseconds it reads ``/queue_status`` from one of the processes (in
    turn) and, from Redis directly, the active count and the queue in ticket order.
    ``order`` is the visitors' registration order; since nobody waiting leaves in
    these tests except by being admitted, the queue must always be exactly the
    last visitors of that order, in that order. Anything else is recorded.
    """

    def __init__(
        self,
        apps: Sequence[ExampleApp],
        client: Any,
        room: str,
        capacity: int,
        order: list[str],
    ) -> None:
        self.apps = list(apps)
        self.client = client
        self.keys = RedisKeys("equeue", room)
        self.room = room
        self.capacity = capacity
        self.order = order
        self.active_script = client.register_script(ACTIVE_LUA)
        self.samples = 0
        self.peak_active = 0
        self.peak_reported = 0
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + 90
        turn = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            alive = [app for app in self.apps if app.server.alive]
            if alive:
                app = alive[turn % len(alive)]
                turn += 1
                try:
                    reported = rooms_status(app)[self.room]["active"]
                except requests.RequestException:
                    reported = 0  # killed between the check and the request
                self.peak_reported = max(self.peak_reported, reported)
                if reported > self.capacity:
                    self.violations.append(f"{app.adapter} reported active {reported}")
            active = int(self.active_script(keys=[self.keys.admitted]))
            queue = [v.decode() for v in self.client.zrange(self.keys.queue, 0, -1)]
            self.peak_active = max(self.peak_active, active)
            self.samples += 1
            if active > self.capacity:
                self.violations.append(f"redis: {active} active > {self.capacity}")
            if queue and queue != self.order[len(self.order) - len(queue) :]:
                self.violations.append(f"queue out of order: {queue}")
            time.sleep(0.005)


def register_spread(
    apps: Sequence[ExampleApp],
    visitors: Callable[..., Visitor],
    n: int,
    room: str = "default",
) -> list[Visitor]:
    """Register ``n`` visitors one after the other, spread over the processes."""
    people = []
    for i in range(n):
        visitor = visitors(apps[i % len(apps)])
        visitor.register(room)
        people.append(visitor)
    return people


def drain(
    apps: Sequence[ExampleApp],
    people: Sequence[Visitor],
    room: str = "default",
    on_admitted: Callable[[int], None] | None = None,
) -> None:
    """Let everybody in, in order: each admitted visitor leaves through some
    process, which frees a slot for the racing tickers to fill."""
    for i, visitor in enumerate(people):
        update = visitor.wait_for(lambda u: u["status"] == "admitted", timeout=15)
        assert update["position"] == 0
        if on_admitted is not None:
            on_admitted(i)
        alive = [app for app in apps if app.server.alive]
        leave(alive[i % len(alive)], visitor, room)


# Order, capacity and positions on one Redis ------------------------------------


def test_processes_on_one_redis_admit_in_ticket_order_within_capacity(
    server_factory, visitors, redis_url
):
    env = {
        "REDIS_URL": redis_url,
        "EQUEUE_CAPACITY": "2",
        "EQUEUE_HEARTBEAT_TIMEOUT": "60",
    }
    apps = [
        start_example(server_factory, adapter, **env)
        for adapter in ("flask-threading", "starlette", "flask-threading")
    ]
    people = register_spread(apps, visitors, 9)
    order = [visitor_id_of(v) for v in people]

    # Positions agree whichever process a visitor is on: a second tab of every
    # visitor, connected to the next process over, is told the same place.
    other_tabs = []
    for i, visitor in enumerate(people):
        tab = visitors(apps[(i + 1) % len(apps)], visitor.visitor_pass)
        again = tab.register()
        assert (again["status"], again["position"], again["queue_length"]) == (
            visitor.last["status"],
            visitor.last["position"],
            7,
        )
        other_tabs.append(tab)
    assert [v.last["position"] for v in people] == [0, 0, 1, 2, 3, 4, 5, 6, 7]
    tickets = [ticket_of(v) for v in people[2:]]
    assert tickets == sorted(tickets)
    views = [rooms_status(app)["default"] for app in apps]
    assert {(v["queue_length"], v["active"]) for v in views} == {(7, 2)}

    client = redis.Redis.from_url(redis_url, protocol=2)
    with Sampler(apps, client, "default", 2, order) as sampler:
        drain(apps, people)
        # Each process updates its own sockets: the second tabs heard it too.
        for tab in other_tabs:
            tab.wait_for(lambda u: u["status"] == "admitted", timeout=10)
    client.close()

    assert sampler.violations == []
    assert sampler.samples > 10
    assert sampler.peak_active == sampler.peak_reported == 2
    assert [rooms_status(app)["default"]["admitted_total"] for app in apps] == [9] * 3


# A process killed mid-run ------------------------------------------------------


def test_a_killed_process_loses_nobody_and_leaks_no_slot(
    server_factory, visitors, redis_url
):
    env = {
        "REDIS_URL": redis_url,
        "EQUEUE_CAPACITY": "2",
        "EQUEUE_HEARTBEAT_TIMEOUT": "60",
    }
    apps = [
        start_example(server_factory, adapter, **env)
        for adapter in ("flask-threading", "starlette", "flask-threading")
    ]
    doomed = apps[1]
    people = register_spread(apps, visitors, 12)
    order = [visitor_id_of(v) for v in people]
    client = redis.Redis.from_url(redis_url, protocol=2)
    keys = RedisKeys("equeue", "default")

    def kill_after_the_third(i: int) -> None:
        if i != 2:
            return
        doomed.server.kill()
        # Its visitors' pages reconnect to a survivor with the pass they hold.
        survivors = [app for app in apps if app is not doomed]
        for j, visitor in enumerate(people):
            if visitor.url != doomed.url or j <= i:
                continue
            ticket_before = client.zscore(keys.queue, order[j])
            if ticket_before is not None:
                # The pass the page holds vouches for the same place.
                assert ticket_of(visitor) == ticket_before
            moved = visitors(survivors[j % 2], visitor.visitor_pass)
            update = moved.register()
            assert update["status"] in ("queued", "admitted")
            if update["status"] == "queued":
                assert ticket_before is not None
                assert ticket_of(moved) == ticket_before
                waiting = [v.decode() for v in client.zrange(keys.queue, 0, -1)]
                assert update["position"] == waiting.index(order[j]) + 1
            people[j] = moved

    with Sampler(apps, client, "default", 2, order) as sampler:
        drain(apps, people, on_admitted=kill_after_the_third)

        # No slot leaked: with nobody left, nothing is counted as active, and the
        # survivors agree.
        assert int(sampler.active_script(keys=[keys.admitted])) == 0
    views = [rooms_status(app)["default"] for app in apps if app is not doomed]
    client.close()

    assert sampler.violations == []
    assert not doomed.server.alive
    assert {(v["queue_length"], v["active"], v["admitted_total"]) for v in views} == {
        (0, 0, 12)
    }


_TICK_LOOP = textwrap.dedent(
    """
    import sys
    from equeue.rules import RoomRules
    from equeue.stores.redis import RedisStore

    store = RedisStore.from_url(sys.argv[1])
    rules = RoomRules(capacity=2, session_ttl_s=0.001, heartbeat_interval_s=1,
                      heartbeat_timeout_s=600)
    print("ticking", flush=True)
    while True:
        store.tick("default", rules)
    """
)


def test_a_ticker_killed_at_any_moment_leaves_the_room_consistent(redis_url):
    # Sessions last 1 ms here, so every tick expires, admits and writes: a kill
    # lands inside some tick's round trip most of the time. Redis runs a script
    # whole or not at all, whatever happens to the client that sent it, so the
    # room's keys always add up after the kill.
    capacity = 2
    client = redis.Redis.from_url(redis_url, protocol=2)
    keys = RedisKeys("equeue", "default")
    store = RedisStore.from_url(redis_url)
    rules = RoomRules(
        capacity=capacity, heartbeat_interval_s=1, heartbeat_timeout_s=600
    )
    waiters = [f"w{i:05d}" for i in range(10_000)]
    for visitor_id in waiters:
        store.join("default", visitor_id, rules)
    store.close()

    for round_number in range(8):
        with subprocess.Popen(
            [sys.executable, "-c", _TICK_LOOP, redis_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as ticker:
            try:
                assert ticker.stdout is not None
                assert ticker.stdout.readline().strip() == b"ticking"
                time.sleep(0.02 + 0.01 * round_number)
            finally:
                ticker.kill()
                ticker.wait(timeout=10)

        queue = {
            v.decode(): int(s)
            for v, s in client.zrange(keys.queue, 0, -1, withscores=True)
        }
        seen = {v.decode() for v in client.zrange(keys.seen, 0, -1)}
        admitted_tickets = [int(t) for t in client.zrange(keys.admits, 0, -1)]
        total = int(client.hget(keys.meta, "admitted_total") or 0)
        gone = [v for v in waiters if v not in queue]

        assert queue, "the tickers drained the queue: the kills hit idle time"
        assert seen == set(queue), "a waiter's last-seen entry was half written"
        assert client.zcard(keys.admitted) <= capacity
        # Everybody who left the queue was admitted exactly once, from the head:
        # each admission counted once, and no waiter overtaken.
        assert total == len(gone) == len(admitted_tickets)
        assert max(admitted_tickets) < min(queue.values())
        assert gone == waiters[: len(gone)]
    client.close()


# Redis Cluster -------------------------------------------------------------------


def slot_owners(cluster: Any) -> list[tuple[int, int, int]]:
    """``(first_slot, last_slot, port)`` of every master, from CLUSTER SLOTS."""
    node = cluster.node_client(cluster.ports[0])
    try:
        ranges = node.execute_command("CLUSTER", "SLOTS")
    finally:
        node.close()
    return [(int(r[0]), int(r[1]), int(r[2][1])) for r in ranges]


def keyslot(cluster: Any, key: str) -> int:
    node = cluster.node_client(cluster.ports[0])
    try:
        return int(node.execute_command("CLUSTER", "KEYSLOT", key))
    finally:
        node.close()


def owner_port(owners: list[tuple[int, int, int]], slot: int) -> int:
    return next(port for first, last, port in owners if first <= slot <= last)


def cluster_env(
    cluster: Any, url: str, node_index: int, **extra: str
) -> dict[str, str]:
    # python-socketio's Redis managers take a plain redis:// URL only. Classic
    # PUBLISH on any cluster node reaches subscribers on every node, so each
    # process may use a different node for the Socket.IO channel.
    node = f"redis://127.0.0.1:{cluster.ports[node_index]}/0"
    return {
        "REDIS_URL": url,
        "EQUEUE_MESSAGE_QUEUE": node,
        "EQUEUE_HEARTBEAT_TIMEOUT": "60",
        **extra,
    }


def test_processes_on_a_redis_cluster_admit_in_ticket_order_within_capacity(
    server_factory, visitors, redis_cluster, redis_cluster_url
):
    # A subscriber on the third node hears what processes publish on the other two.
    listener = redis_cluster.node_client(redis_cluster.ports[2]).pubsub()
    listener.subscribe("equeue")
    apps = [
        start_example(
            server_factory,
            adapter,
            **cluster_env(redis_cluster, redis_cluster_url, i, EQUEUE_CAPACITY="2"),
        )
        for i, adapter in enumerate(("flask-threading", "starlette"))
    ]
    people = register_spread(apps, visitors, 8)
    order = [visitor_id_of(v) for v in people]
    for i, visitor in enumerate(people):
        tab = visitors(apps[(i + 1) % 2], visitor.visitor_pass)
        assert tab.register()["position"] == visitor.last["position"]

    client = redis.cluster.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(h, p) for h, p in redis_cluster.startup_nodes
        ],
        protocol=2,
    )
    with Sampler(apps, client, "default", 2, order) as sampler:
        drain(apps, people)
    client.close()
    heard = 0
    deadline = time.monotonic() + 5
    while heard == 0 and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)
        heard += message is not None and message["type"] == "message"
    listener.close()

    assert sampler.violations == []
    assert sampler.peak_active == 2
    assert heard > 0, "nothing published on one node reached another"


def test_rooms_with_their_own_rules_spread_over_the_cluster_shards(
    server_factory, visitors, redis_cluster, redis_cluster_url
):
    owners = slot_owners(redis_cluster)
    # Pick room names whose hash tags fall on three different masters.
    by_port: dict[int, str] = {}
    for i in range(200):
        name = f"room-{i}"
        port = owner_port(owners, keyslot(redis_cluster, f"{{{name}}}"))
        by_port.setdefault(port, name)
        if len(by_port) == 3:
            break
    rooms = dict(zip(sorted(by_port.values()), (1, 2, 3), strict=True))
    rules = {
        room: {"capacity": capacity, "admit_per_minute": 60, "session_ttl_s": 300}
        for room, capacity in rooms.items()
    }
    env = {"EQUEUE_ROOMS": json.dumps(rules)}
    apps = [
        start_example(
            server_factory,
            adapter,
            **cluster_env(redis_cluster, redis_cluster_url, i, **env),
        )
        for i, adapter in enumerate(("flask-threading", "starlette"))
    ]

    for room, capacity in rooms.items():
        people = register_spread(apps, visitors, capacity + 2, room)
        statuses = [v.last["status"] for v in people]
        assert statuses == ["admitted"] * capacity + ["queued"] * 2
        assert [v.last["position"] for v in people[capacity:]] == [1, 2]

    views = [rooms_status(app) for app in apps]
    for room, capacity in rooms.items():
        for view in views:
            assert (view[room]["active"], view[room]["queue_length"]) == (capacity, 2)
            assert view[room]["capacity"] == capacity

        keys = RedisKeys("equeue", room)
        slots = {
            keyslot(redis_cluster, key)
            for key in (keys.meta, keys.queue, keys.seen, keys.admitted, keys.admits)
        }
        assert len(slots) == 1, f"the keys of {room} are on several slots"
        (slot,) = slots
        owner = redis_cluster.node_client(owner_port(owners, slot))
        try:
            stored = int(owner.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
        finally:
            owner.close()
        assert stored >= 4
    room_ports = {
        owner_port(owners, keyslot(redis_cluster, f"{{{room}}}")) for room in rooms
    }
    assert len(room_ports) == 3, "the rooms did not spread over the masters"


def test_a_visitor_keeps_the_place_after_redis_rolls_back_to_a_snapshot(redis_url):
    store = RedisStore.from_url(redis_url)
    client = redis.Redis.from_url(redis_url, protocol=2)
    keys = RedisKeys("equeue", "default")
    rules = RoomRules(capacity=1)
    room_keys = [
        keys.meta,
        keys.queue,
        keys.seen,
        keys.admitted,
        keys.admits,
        keys.gone,
    ]
    store.join("default", "a", rules)
    store.join("default", "b", rules)
    # What an RDB snapshot taken now would hold.
    snapshot = {key: client.dump(key) for key in room_keys}
    c = store.join("default", "c", rules)
    assert c.ticket is not None

    # Redis comes back from that snapshot: c's join is lost, the epoch is not.
    client.flushall()
    for key, value in snapshot.items():
        if value is not None:
            client.restore(key, 0, value)
    time.sleep(0.01)  # a restart takes a moment: d arrives later than c did
    d = store.join("default", "d", rules)
    c_again = store.join("default", "c", rules, claim=c.ticket)
    positions = [p.position for p in store.snapshot("default", ["c", "d"]).placements]
    store.close()
    client.close()

    assert c_again.epoch == c.epoch and c_again.restored
    assert d.ticket is not None and d.ticket > c.ticket
    assert positions == [2, 3], "c joined before d and must wait ahead of d"


def test_after_redis_restarts_processes_restore_their_waiters_before_admitting(
    server_factory, visitors, redis_server, redis_url
):
    env = {
        "REDIS_URL": redis_url,
        "EQUEUE_CAPACITY": "2",
        "EQUEUE_HEARTBEAT_TIMEOUT": "60",
    }
    apps = [
        start_example(server_factory, adapter, **env)
        for adapter in ("flask-threading", "starlette")
    ]
    people = register_spread(apps, visitors, 7)
    waiting = people[2:]
    assert [v.last["position"] for v in waiting] == [1, 2, 3, 4, 5]

    # No persistence: every key is gone, and with it the two admitted sessions.
    # Each process holds some of the waiters; the room must let none of them in
    # before the others are back.
    redis_server.restart()
    admitted = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(admitted) < 2:
        for visitor in waiting:
            if visitor not in admitted and not visitor.updates.empty():
                update = visitor.next_update(timeout=0.1)
                if update["status"] == "admitted":
                    admitted.append(visitor)
        time.sleep(0.05)

    # The two are let in by one tick; their updates may arrive in either order.
    assert {id(v) for v in admitted} == {id(v) for v in waiting[:2]}, [
        visitor_id_of(v) for v in admitted
    ]
    assert [v.register()["position"] for v in waiting[2:]] == [1, 2, 3]
