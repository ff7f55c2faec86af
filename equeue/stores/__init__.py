"""Queue stores, chosen from a URL through one small table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import AsyncQueueStore, Placement, QueueStore, RoomSnapshot, TickResult
from .memory import AsyncMemoryStore, MemoryStore

__all__ = [
    "AsyncMemoryStore",
    "AsyncQueueStore",
    "MemoryStore",
    "Placement",
    "QueueStore",
    "RoomSnapshot",
    "TickResult",
    "async_store_from_url",
    "store_from_url",
]


def _memory(url: str, **options: Any) -> QueueStore:
    return MemoryStore(**options)


def _redis(url: str, **options: Any) -> QueueStore:
    from .redis import RedisStore

    return RedisStore.from_url(url, **options)


def _async_memory(url: str, **options: Any) -> AsyncQueueStore:
    return AsyncMemoryStore(**options)


def _async_redis(url: str, **options: Any) -> AsyncQueueStore:
    from .redis_async import AsyncRedisStore

    return AsyncRedisStore.from_url(url, **options)


_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_SYNC: dict[str, Callable[..., QueueStore]] = {
    "memory": _memory,
    **dict.fromkeys(_REDIS_SCHEMES, _redis),
}
_ASYNC: dict[str, Callable[..., AsyncQueueStore]] = {
    "memory": _async_memory,
    **dict.fromkeys(_REDIS_SCHEMES, _async_redis),
}


def _scheme(url: str, table: dict[str, Any]) -> str:
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in table:
        raise ConfigurationError(
            f"unsupported store URL {url!r}: expected one of "
            + ", ".join(f"{name}://" for name in table)
        )
    return scheme


def store_from_url(url: str | None, **options: Any) -> QueueStore:
    """Return the synchronous store for ``url``; ``None`` or ``memory://`` gives
    the in-memory store.

    :raises ConfigurationError: for a URL whose scheme no backend serves.
    """
    url = url or "memory://"
    return _SYNC[_scheme(url, _SYNC)](url, **options)


def async_store_from_url(url: str | None, **options: Any) -> AsyncQueueStore:
    """Return the asyncio store for ``url`` (see :func:`store_from_url`)."""
    url = url or "memory://"
    return _ASYNC[_scheme(url, _ASYNC)](url, **options)
