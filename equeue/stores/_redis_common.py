"""What the sync and asyncio Redis stores share: keys, scripts, arguments, decoding.

Only the I/O call sites live twice (in ``redis.py`` and ``redis_async.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StoreError
from ..rules import RoomRules, check_room_name
from .base import ETA_WINDOW_MS, Placement, RoomSnapshot, Status, TickResult

__all__ = [
    "HEARTBEAT_HISTORY",
    "RedisKeys",
    "cluster_nodes",
    "load_script",
    "redacted",
]

#: How many heartbeat times are kept per visitor for ``/debug_heartbeats``.
HEARTBEAT_HISTORY = 20

#: redis-py 5+ can speak RESP3, which changes reply shapes; equeue decodes RESP2.
RESP_PROTOCOL = 2

_SCRIPT_NAMES = ("join", "heartbeat", "snapshot", "tick", "renew", "leave")


def load_script(name: str) -> str:
    """Return the source of one Lua script with the shared helpers prefixed."""
    if name not in _SCRIPT_NAMES:
        raise ValueError(f"unknown script {name!r}")
    folder = resources.files("equeue.lua")
    common = folder.joinpath("_common.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return common + "\n" + body


def script_sources() -> dict[str, str]:
    """Return every script's full source, by name."""
    return {name: load_script(name) for name in _SCRIPT_NAMES}


@dataclass(frozen=True)
class RedisKeys:
    """The keys of one room. They share the hash tag ``{room}`` so that a room lives
    on one Redis Cluster shard and its scripts stay atomic."""

    prefix: str
    room: str

    def _key(self, part: str) -> str:
        return f"{self.prefix}:{{{self.room}}}:{part}"

    @property
    def meta(self) -> str:
        return self._key("meta")

    @property
    def queue(self) -> str:
        return self._key("queue")

    @property
    def seen(self) -> str:
        return self._key("seen")

    @property
    def admitted(self) -> str:
        return self._key("admitted")

    @property
    def admits(self) -> str:
        return self._key("admits")

    @property
    def gone(self) -> str:
        return self._key("gone")

    def history(self, visitor_id: str) -> str:
        return self._key(f"hb:{visitor_id}")


class ScriptCalls:
    """Builds keys and arguments for each script and decodes its reply.

    ``now_ms`` is an optional clock override: ``None`` in production (the time then
    comes from Redis), a callable in tests that need to move time.
    """

    def __init__(self, prefix: str, now_ms: Callable[[], int] | None) -> None:
        self._prefix = prefix
        self._now_ms = now_ms

    def keys(self, room: str) -> RedisKeys:
        return RedisKeys(self._prefix, check_room_name(room))

    def _now(self) -> str:
        return "" if self._now_ms is None else str(int(self._now_ms()))

    def join_args(
        self,
        room: str,
        visitor_id: str,
        rules: RoomRules,
        claim: int | None,
        restore_only: bool,
        known_epoch: int | None,
    ) -> tuple[list[str], list[Any]]:
        k = self.keys(room)
        return (
            [k.meta, k.queue, k.seen, k.admitted, k.admits, k.gone],
            [
                self._now(),
                visitor_id,
                rules.capacity,
                rules.admit_per_minute or 0,
                rules.session_ttl_ms,
                "" if claim is None else claim,
                "1" if restore_only else "",
                "" if known_epoch is None else known_epoch,
                rules.restore_grace_ms,
            ],
        )

    def heartbeat_args(
        self, room: str, visitor_id: str, rules: RoomRules
    ) -> tuple[list[str], list[Any]]:
        k = self.keys(room)
        return (
            [k.meta, k.queue, k.seen, k.admitted, k.history(visitor_id)],
            [
                self._now(),
                visitor_id,
                HEARTBEAT_HISTORY,
                2 * rules.heartbeat_timeout_ms,
            ],
        )

    def snapshot_args(
        self, room: str, visitor_ids: Sequence[str]
    ) -> tuple[list[str], list[Any]]:
        k = self.keys(room)
        return (
            [k.meta, k.queue, k.admitted, k.admits],
            [self._now(), ETA_WINDOW_MS, *visitor_ids],
        )

    def tick_args(
        self, room: str, rules: RoomRules, known_epoch: int | None
    ) -> tuple[list[str], list[Any]]:
        k = self.keys(room)
        return (
            [k.meta, k.queue, k.seen, k.admitted, k.admits, k.gone],
            [
                self._now(),
                rules.capacity,
                rules.admit_per_minute or 0,
                rules.session_ttl_ms,
                rules.heartbeat_timeout_ms,
                rules.max_evictions_per_tick,
                ETA_WINDOW_MS,
                rules.gone_keep_ms,
                "" if known_epoch is None else known_epoch,
                rules.restore_grace_ms,
            ],
        )

    def renew_args(
        self, room: str, visitor_id: str, rules: RoomRules
    ) -> tuple[list[str], list[Any]]:
        return [self.keys(room).admitted], [
            self._now(),
            visitor_id,
            rules.session_ttl_ms,
        ]

    def leave_args(self, room: str, visitor_id: str) -> tuple[list[str], list[Any]]:
        k = self.keys(room)
        return [k.queue, k.seen, k.admitted, k.gone], [self._now(), visitor_id]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(value: Any) -> int | None:
    number = int(value)
    return None if number < 0 else number


def decode_placement(visitor_id: str, reply: Any) -> Placement:
    """Decode the reply of ``join.lua`` or ``heartbeat.lua``."""
    try:
        status: Status = _text(reply[0])  # type: ignore[assignment]
        if status not in ("queued", "admitted", "unknown"):
            raise ValueError(f"unknown status {status!r}")
        return Placement(
            visitor_id=visitor_id,
            status=status,
            ticket=_optional(reply[1]),
            position=_optional(reply[2]),
            queue_length=int(reply[3]),
            epoch=int(reply[4]),
            admitted_until_ms=_optional(reply[5]),
            now_ms=int(reply[6]),
            restored=len(reply) > 7 and int(reply[7]) == 1,
        )
    except (IndexError, TypeError, ValueError) as exc:
        raise StoreError(
            f"unexpected reply from the placement script: {reply!r}"
        ) from exc


def decode_snapshot(room: str, visitor_ids: Sequence[str], reply: Any) -> RoomSnapshot:
    """Decode the reply of ``snapshot.lua``."""
    try:
        now_ms, epoch, length, active, recent, issued, admitted_total, evicted = (
            int(x) for x in reply[:8]
        )
        placements = []
        for i, visitor_id in enumerate(visitor_ids):
            ticket, rank, until_ms = (int(x) for x in reply[8 + 3 * i : 11 + 3 * i])
            if ticket >= 0:
                placement = Placement(
                    visitor_id, "queued", rank + 1, ticket, length, epoch, now_ms
                )
            elif until_ms >= 0:
                placement = Placement(
                    visitor_id, "admitted", 0, None, length, epoch, now_ms, until_ms
                )
            else:
                placement = Placement(
                    visitor_id, "unknown", None, None, length, epoch, now_ms
                )
            placements.append(placement)
    except (IndexError, TypeError, ValueError) as exc:
        raise StoreError(
            f"unexpected reply from the snapshot script: {reply!r}"
        ) from exc
    return RoomSnapshot(
        room=room,
        now_ms=now_ms,
        epoch=epoch,
        queue_length=length,
        active=active,
        recent_admissions=recent,
        tickets_issued=issued,
        admitted_total=admitted_total,
        evicted_total=evicted,
        placements=tuple(placements),
    )


def decode_tick(room: str, reply: Any) -> TickResult:
    """Decode the reply of ``tick.lua``."""
    try:
        now_ms, epoch, expired, length, active, recent = (int(x) for x in reply[:6])
        evicted = [_text(v) for v in reply[6]]
        flat = reply[7]
        admitted = [(_text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
    except (IndexError, TypeError, ValueError) as exc:
        raise StoreError(f"unexpected reply from the tick script: {reply!r}") from exc
    return TickResult(
        room=room,
        now_ms=now_ms,
        epoch=epoch,
        expired=expired,
        evicted=evicted,
        admitted=admitted,
        queue_length=length,
        active=active,
        recent_admissions=recent,
    )


def decode_history(reply: Any) -> list[int]:
    return [int(x) for x in reply]


def parse_redis_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split equeue's own query options (``prefix``) from a Redis URL.

    Returns the URL to hand to redis-py and equeue's options.
    """
    parts = urlsplit(url)
    if parts.scheme not in (
        "redis",
        "rediss",
        "unix",
        "redis+cluster",
        "rediss+cluster",
    ):
        raise ConfigurationError(f"not a Redis URL: {url!r}")
    options: dict[str, Any] = {}
    kept = []
    for pair in filter(None, parts.query.split("&")):
        name, _, value = pair.partition("=")
        if name == "prefix":
            options["prefix"] = value
        else:
            kept.append(pair)
    clean = parts._replace(query="&".join(kept)).geturl()
    return clean, options


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """Return the ``(host, port)`` startup nodes of a ``redis+cluster://`` URL."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    nodes = []
    for item in filter(None, netloc.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(
                f"cluster URL nodes must be host:port, got {item!r} in {url!r}"
            )
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ConfigurationError(f"cluster URL names no node: {url!r}")
    return nodes


def redacted(url: str) -> str:
    """Return ``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
