"""Per-room rules: how many visitors are let in, how fast, and for how long."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["ROOM_NAME_PATTERN", "RoomRules", "check_room_name"]

#: Room names end up in Redis keys, cookie names and URLs, so they are kept plain.
ROOM_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_room_name(room: str) -> str:
    """Return ``room`` unchanged if it is a valid room name.

    :raises ConfigurationError: if it is not 1 to 64 letters, digits, ``_`` or ``-``.
    """
    if not isinstance(room, str) or not ROOM_NAME_PATTERN.match(room):
        raise ConfigurationError(
            f"room name must be 1-64 characters of A-Z a-z 0-9 _ -, got {room!r}"
        )
    return room


@dataclass(frozen=True)
class RoomRules:
    """The rules of one waiting room.

    :param capacity: the most admitted visitors counted as active at once.
    :param admit_per_minute: the most admissions per rolling minute, or ``None``
        for no limit beyond ``capacity`` (use it for a gentle ramp after opening).
    :param session_ttl_s: how long an admitted visitor stays counted without
        activity on a protected page; the admission token lives as long and is
        renewed by activity.
    :param heartbeat_interval_s: how often the splash page beats.
    :param heartbeat_timeout_s: how long a queued visitor may stay silent before
        losing their place. Browsers throttle timers in background tabs, so keep
        this well above the interval (the default allows about a minute).
    :param pass_ttl_s: how long the ticket claim carried in a visitor pass stays
        good for restoring a place the store lost (a restart, a rollback to an
        older snapshot, a failover); the store remembers departures as long.
    :param restore_grace_s: after the store lost a room's data, nobody is admitted
        for this long, so that every server process can give back the tickets of
        the waiters it holds first (0 turns the pause off).
    :param max_evictions_per_tick: bound on the work one tick does evicting.
    """

    capacity: int = 2
    admit_per_minute: int | None = None
    session_ttl_s: float = 600.0
    heartbeat_interval_s: float = 5.0
    heartbeat_timeout_s: float = 75.0
    pass_ttl_s: float = 600.0
    restore_grace_s: float = 5.0
    max_evictions_per_tick: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ConfigurationError(
                f"capacity must be a positive integer, got {self.capacity!r}"
            )
        if self.admit_per_minute is not None and (
            not isinstance(self.admit_per_minute, int) or self.admit_per_minute < 1
        ):
            raise ConfigurationError(
                "admit_per_minute must be a positive integer or None, "
                f"got {self.admit_per_minute!r}"
            )
        for name in (
            "session_ttl_s",
            "heartbeat_interval_s",
            "heartbeat_timeout_s",
            "pass_ttl_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigurationError(
                "heartbeat_timeout_s must be longer than heartbeat_interval_s "
                f"(got timeout {self.heartbeat_timeout_s} s, "
                f"interval {self.heartbeat_interval_s} s): every waiter would be "
                "evicted between two beats"
            )
        if (
            not isinstance(self.restore_grace_s, (int, float))
            or self.restore_grace_s < 0
        ):
            raise ConfigurationError(
                f"restore_grace_s must be >= 0 seconds, got {self.restore_grace_s!r}"
            )
        if self.max_evictions_per_tick < 1:
            raise ConfigurationError("max_evictions_per_tick must be at least 1")

    @property
    def session_ttl_ms(self) -> int:
        return int(self.session_ttl_s * 1000)

    @property
    def heartbeat_timeout_ms(self) -> int:
        return int(self.heartbeat_timeout_s * 1000)

    @property
    def restore_grace_ms(self) -> int:
        return int(self.restore_grace_s * 1000)

    @property
    def gone_keep_ms(self) -> int:
        """How long a departed visitor is remembered: as long as a pass issued
        just before they left can claim their ticket, plus a minute of clock skew
        between the application servers and the store."""
        return int(self.pass_ttl_s * 1000) + 60_000
