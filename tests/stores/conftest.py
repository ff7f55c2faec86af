"""One table of store backends; the contract suite runs unchanged over each.

Every backend takes the same injectable clock, so expiry and eviction are tested by
moving time rather than by sleeping. Async backends are driven through a small
synchronous facade on one event loop per test, so the very same test bodies run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fixtures.aio import LoopThread

from equeue.stores import AsyncMemoryStore, MemoryStore, QueueStore
from equeue.stores.redis import RedisStore
from equeue.stores.redis_async import AsyncRedisStore


class Clock:
    """A store clock in milliseconds that tests move by hand."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class SyncFacade:
    """Runs an async store's coroutines to completion on one private loop."""

    def __init__(self, store: Any, loop: LoopThread) -> None:
        self._store = store
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(method(*args, **kwargs))

        return call


@dataclass
class Backend:
    """A store under test, its clock, and ways to lose data as Redis can: all of
    it (``wipe``: a restart without persistence) or what came after a snapshot
    (``save`` then ``rollback``: a restart from RDB, a lagging replica)."""

    store: QueueStore
    clock: Clock
    wipe: Callable[[], None]
    save: Callable[[], Any]
    rollback: Callable[[Any], None]


def _memory_snapshots(
    store: MemoryStore,
) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    # Reaches into the store's private state: a test stand-in for an RDB file.
    def save() -> Any:
        return copy.deepcopy(store._rooms)

    def rollback(saved: Any) -> None:
        store._rooms.clear()
        store._rooms.update(copy.deepcopy(saved))

    return save, rollback


def _redis_snapshots(client: Any) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    def save() -> Any:
        return {key: client.dump(key) for key in client.scan_iter("equeue:*")}

    def rollback(saved: Any) -> None:
        for key in list(client.scan_iter("equeue:*")):
            client.delete(key)
        for key, value in saved.items():
            client.restore(key, 0, value)

    return save, rollback


BACKENDS = ["memory", "async-memory", "redis", "async-redis", "redis-cluster"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    clock = Clock()
    name = request.param
    if name == "memory":
        store = MemoryStore(now_ms=clock)
        yield Backend(store, clock, store.clear, *_memory_snapshots(store))
    elif name == "async-memory":
        async_store = AsyncMemoryStore(now_ms=clock)
        loop = LoopThread()
        yield Backend(
            SyncFacade(async_store, loop),
            clock,
            async_store.sync.clear,
            *_memory_snapshots(async_store.sync),
        )
        loop.close()
    elif name == "redis":
        url = request.getfixturevalue("redis_url")
        redis_store = RedisStore.from_url(url, now_ms=clock)
        yield Backend(
            redis_store,
            clock,
            redis_store.client.flushall,
            *_redis_snapshots(redis_store.client),
        )
        redis_store.close()
    elif name == "async-redis":
        url = request.getfixturevalue("redis_url")
        sync_client = RedisStore.from_url(url)
        loop = LoopThread()
        aio = AsyncRedisStore.from_url(url, now_ms=clock)
        yield Backend(
            SyncFacade(aio, loop),
            clock,
            sync_client.client.flushall,
            *_redis_snapshots(sync_client.client),
        )
        loop.run(aio.close())
        loop.close()
        sync_client.close()
    else:
        url = request.getfixturevalue("redis_cluster_url")
        cluster_store = RedisStore.from_url(url, now_ms=clock)

        def wipe() -> None:
            cluster_store.client.flushall(target_nodes="primaries")

        yield Backend(
            cluster_store, clock, wipe, *_redis_snapshots(cluster_store.client)
        )
        cluster_store.close()
