"""Estimated wait, from the admission rate the store measured."""

from __future__ import annotations

import math

from .rules import RoomRules
from .stores.base import ETA_WINDOW_MS

__all__ = ["estimate_wait_s"]


def estimate_wait_s(
    position: int,
    recent_admissions: int,
    now_ms: int,
    epoch: int,
    rules: RoomRules,
) -> int | None:
    """Return the expected wait in whole seconds for a visitor at ``position``.

    The rate is the number of admissions over the last few minutes (or since the
    room's data was created, if that is shorter). Before anyone has been admitted,
    the estimate falls back to the slowest the room can go: every admitted visitor
    holding their slot for the whole session TTL. ``admit_per_minute`` caps the rate.
    Returns ``None`` for a position that is not a place in the queue.
    """
    if position < 1:
        return None if position < 0 else 0

    started_ms = epoch // 1000
    window_s = max(1.0, min(ETA_WINDOW_MS, now_ms - started_ms) / 1000)
    if recent_admissions > 0:
        rate_per_s = recent_admissions / window_s
    else:
        rate_per_s = rules.capacity / rules.session_ttl_s
    if rules.admit_per_minute is not None:
        rate_per_s = min(rate_per_s, rules.admit_per_minute / 60)

    return max(1, math.ceil(position / rate_per_s))
