"""The Redis store (standalone Redis or Redis Cluster), asyncio flavour.

Keys, scripts, arguments and decoding come from ``_redis_common``; only the awaited
call sites differ from :mod:`equeue.stores.redis`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from ..errors import StoreError
from ..rules import RoomRules
from ._redis_common import (
    RESP_PROTOCOL,
    ScriptCalls,
    cluster_nodes,
    decode_history,
    decode_placement,
    decode_snapshot,
    decode_tick,
    parse_redis_url,
    redacted,
    script_sources,
)
from .base import AsyncQueueStore, Placement, RoomSnapshot, TickResult

__all__ = ["AsyncRedisStore"]

logger = logging.getLogger(__name__)

#: A burst of joins must wait for a connection, not fail: redis-py's asyncio pool
#: raises once its limit is reached unless it is a blocking pool.
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT_S = 10.0


class AsyncRedisStore(AsyncQueueStore):
    """The asyncio :class:`~equeue.stores.base.AsyncQueueStore` on Redis."""

    url_schemes = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        prefix: str = "equeue",
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self._client = client
        self._calls = ScriptCalls(prefix, now_ms)
        self._scripts = {
            name: client.register_script(source)
            for name, source in script_sources().items()
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        now_ms: Callable[[], int] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
        **options: Any,
    ) -> AsyncRedisStore:
        """Connect like :meth:`equeue.stores.redis.RedisStore.from_url`, with a
        blocking connection pool of ``max_connections``."""
        clean, own = parse_redis_url(url)
        client: aioredis.Redis | RedisCluster
        if clean.startswith(("redis+cluster://", "rediss+cluster://")):
            parts = urlsplit(clean)
            client = RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in cluster_nodes(clean)],
                protocol=RESP_PROTOCOL,
                ssl=clean.startswith("rediss"),
                username=parts.username,
                password=parts.password,
                max_connections=max_connections,
                **options,
            )
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                clean,
                protocol=RESP_PROTOCOL,
                max_connections=max_connections,
                timeout=pool_timeout_s,
                **options,
            )
            # from_pool hands the pool to the client, so close() also disconnects it.
            client = aioredis.Redis.from_pool(pool)
        logger.info("async redis store: using %s", redacted(clean))
        return cls(client, now_ms=now_ms, **own)

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args)
        except redis.RedisError as exc:
            raise StoreError(f"redis script {name} failed: {exc}") from exc

    async def join(
        self,
        room: str,
        visitor_id: str,
        rules: RoomRules,
        claim: int | None = None,
        *,
        restore_only: bool = False,
        known_epoch: int | None = None,
    ) -> Placement:
        keys, args = self._calls.join_args(
            room, visitor_id, rules, claim, restore_only, known_epoch
        )
        return decode_placement(visitor_id, await self._run("join", keys, args))

    async def heartbeat(
        self, room: str, visitor_id: str, rules: RoomRules
    ) -> Placement:
        keys, args = self._calls.heartbeat_args(room, visitor_id, rules)
        return decode_placement(visitor_id, await self._run("heartbeat", keys, args))

    async def snapshot(
        self, room: str, visitor_ids: Sequence[str] = ()
    ) -> RoomSnapshot:
        keys, args = self._calls.snapshot_args(room, visitor_ids)
        reply = await self._run("snapshot", keys, args)
        return decode_snapshot(room, visitor_ids, reply)

    async def tick(
        self, room: str, rules: RoomRules, known_epoch: int | None = None
    ) -> TickResult:
        keys, args = self._calls.tick_args(room, rules, known_epoch)
        return decode_tick(room, await self._run("tick", keys, args))

    async def renew(self, room: str, visitor_id: str, rules: RoomRules) -> int | None:
        keys, args = self._calls.renew_args(room, visitor_id, rules)
        expiry = int(await self._run("renew", keys, args))
        return None if expiry < 0 else expiry

    async def leave(self, room: str, visitor_id: str) -> bool:
        keys, args = self._calls.leave_args(room, visitor_id)
        return int(await self._run("leave", keys, args)) == 1

    async def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        key = self._calls.keys(room).history(visitor_id)
        try:
            return decode_history(await self._client.lrange(key, 0, -1))
        except redis.RedisError as exc:
            raise StoreError(f"redis LRANGE failed: {exc}") from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except redis.RedisError:
            return False

    async def close(self) -> None:
        await self._client.aclose()
