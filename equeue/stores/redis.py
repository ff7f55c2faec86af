"""The Redis store (standalone Redis or Redis Cluster), synchronous flavour."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster

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
from .base import Placement, QueueStore, RoomSnapshot, TickResult

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)


class RedisStore(QueueStore):
    """A :class:`QueueStore` on Redis: every operation is one Lua script call.

    Build it with :func:`equeue.store_from_url` or pass a ready client. The URL may
    carry ``?prefix=name`` to change the key prefix (default ``equeue``).

    :param client: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` built with
        ``protocol=2``.
    :param now_ms: a clock override for tests; production leaves it ``None`` so
        the time comes from Redis.
    """

    url_schemes = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
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
        cls, url: str, *, now_ms: Callable[[], int] | None = None, **options: Any
    ) -> RedisStore:
        """Connect to ``redis://``, ``rediss://``, ``unix://`` or
        ``redis+cluster://host:port,host:port`` (``rediss+cluster`` for TLS)."""
        clean, own = parse_redis_url(url)
        client: redis.Redis | RedisCluster
        if clean.startswith(("redis+cluster://", "rediss+cluster://")):
            nodes = [
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in cluster_nodes(clean)
            ]
            parts = urlsplit(clean)
            client = RedisCluster(
                startup_nodes=nodes,
                protocol=RESP_PROTOCOL,
                ssl=clean.startswith("rediss"),
                username=parts.username,
                password=parts.password,
                **options,
            )
        else:
            client = redis.Redis.from_url(clean, protocol=RESP_PROTOCOL, **options)
        logger.info("redis store: using %s", redacted(clean))
        return cls(client, now_ms=now_ms, **own)

    @property
    def client(self) -> redis.Redis | RedisCluster:
        return self._client

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.RedisError as exc:
            raise StoreError(f"redis script {name} failed: {exc}") from exc

    def join(
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
        return decode_placement(visitor_id, self._run("join", keys, args))

    def heartbeat(self, room: str, visitor_id: str, rules: RoomRules) -> Placement:
        keys, args = self._calls.heartbeat_args(room, visitor_id, rules)
        return decode_placement(visitor_id, self._run("heartbeat", keys, args))

    def snapshot(self, room: str, visitor_ids: Sequence[str] = ()) -> RoomSnapshot:
        keys, args = self._calls.snapshot_args(room, visitor_ids)
        return decode_snapshot(room, visitor_ids, self._run("snapshot", keys, args))

    def tick(
        self, room: str, rules: RoomRules, known_epoch: int | None = None
    ) -> TickResult:
        keys, args = self._calls.tick_args(room, rules, known_epoch)
        return decode_tick(room, self._run("tick", keys, args))

    def renew(self, room: str, visitor_id: str, rules: RoomRules) -> int | None:
        keys, args = self._calls.renew_args(room, visitor_id, rules)
        expiry = int(self._run("renew", keys, args))
        return None if expiry < 0 else expiry

    def leave(self, room: str, visitor_id: str) -> bool:
        keys, args = self._calls.leave_args(room, visitor_id)
        return int(self._run("leave", keys, args)) == 1

    def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        key = self._calls.keys(room).history(visitor_id)
        try:
            return decode_history(self._client.lrange(key, 0, -1))
        except redis.RedisError as exc:
            raise StoreError(f"redis LRANGE failed: {exc}") from exc

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()
