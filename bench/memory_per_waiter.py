"""Measure how much Redis memory one waiter costs in one equeue room.

Starts its own throwaway redis-server on 127.0.0.1 (nothing saved to disk), joins N
waiters to one room through the real join script (pipelined, so 100k joins take
seconds), and reads ``INFO memory`` ``used_memory`` before and after. In the same
run it measures a baseline: the same N visitor ids as members of one bare sorted set
(a single ``ZADD``), which is the least any queue of N ids can cost in Redis. Then
it sends every waiter one heartbeat and measures again, since a beating page also
has a short heartbeat history in Redis.

Usage::

    .venv/bin/python bench/memory_per_waiter.py            # N = 10,000 and 100,000
    .venv/bin/python bench/memory_per_waiter.py 50000      # other sizes

Not part of the test suite: it takes tens of seconds and its numbers depend on the
Redis version and allocator.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from equeue.rules import RoomRules
from equeue.stores._redis_common import RESP_PROTOCOL, ScriptCalls, load_script

ROOM = "bench"
RULES = RoomRules(capacity=1)
#: Bound on the wall time one size may take, joins included.
TIME_LIMIT_S = 120.0
BATCH = 1000


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, protocol=RESP_PROTOCOL)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return process, client
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                sys.exit("redis-server did not start")
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def new_ids(n: int) -> list[str]:
    # The same shape as TokenSigner.new_visitor_id: 22 URL-safe characters.
    return [secrets.token_urlsafe(16) for _ in range(n)]


def measure_baseline(client: redis.Redis, ids: list[str]) -> int:
    client.flushall()
    before = used_memory(client)
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        client.zadd("baseline", {v: i for i, v in enumerate(chunk, start)})
    return used_memory(client) - before


def measure_room(client: redis.Redis, ids: list[str]) -> tuple[int, int, float, int]:
    """Join every id to one room, then send one heartbeat each.

    Returns (bytes used after the joins, waiters joined, seconds the joins took,
    bytes used once every waiter has a heartbeat history).
    """
    client.flushall()
    calls = ScriptCalls("equeue", None)
    join = client.register_script(load_script("join"))
    # The first visitor is let in at once (an empty queue and a free slot); the
    # rest wait, which is what is measured.
    keys, args = calls.join_args(ROOM, "first-visitor", RULES, None, False, None)
    join(keys=keys, args=args)
    before = used_memory(client)
    started = time.monotonic()
    joined = 0
    for start in range(0, len(ids), BATCH):
        if time.monotonic() - started > TIME_LIMIT_S:
            break
        pipe = client.pipeline(transaction=False)
        for visitor_id in ids[start : start + BATCH]:
            keys, args = calls.join_args(ROOM, visitor_id, RULES, None, False, None)
            join(keys=keys, args=args, client=pipe)
        pipe.execute()
        joined += len(ids[start : start + BATCH])
    seconds = time.monotonic() - started
    after_joins = used_memory(client) - before

    # A beating page also keeps a short history (a list key per visitor, kept
    # for twice the heartbeat timeout) for /debug_heartbeats.
    beat = client.register_script(load_script("heartbeat"))
    for start in range(0, joined, BATCH):
        pipe = client.pipeline(transaction=False)
        for visitor_id in ids[start : min(start + BATCH, joined)]:
            keys, args = calls.heartbeat_args(ROOM, visitor_id, RULES)
            beat(keys=keys, args=args, client=pipe)
        pipe.execute()
    return after_joins, joined, seconds, used_memory(client) - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="equeue-bench-"))
    process, client = start_redis(workdir)
    try:
        server = client.info("server")
        memory = client.info("memory")
        print(
            f"redis {server['redis_version']}, allocator {memory['mem_allocator']}, "
            f"visitor ids of 22 characters"
        )
        print(
            f"{'waiters':>9} {'room bytes':>12} {'per waiter':>11} "
            f"{'bare ZSET':>10} {'ratio':>6} {'+1 beat':>8} {'ratio':>6} "
            f"{'joins/s':>9}"
        )
        for n in options.sizes:
            ids = new_ids(n)
            room_bytes, joined, seconds, beaten_bytes = measure_room(client, ids)
            base_bytes = measure_baseline(client, ids[:joined])
            per_waiter = room_bytes / joined
            per_member = base_bytes / joined
            per_beaten = beaten_bytes / joined
            print(
                f"{joined:>9,} {room_bytes:>12,} {per_waiter:>11.1f} "
                f"{per_member:>10.1f} {per_waiter / per_member:>6.2f} "
                f"{per_beaten:>8.1f} {per_beaten / per_member:>6.2f} "
                f"{joined / seconds:>9,.0f}"
            )
            if joined < n:
                print(f"  (stopped after {TIME_LIMIT_S:.0f} s: {joined} of {n})")
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
