"""Which connected visitor needs which position update.

Each server process keeps a :class:`PositionNotifier` for the sockets connected to
it. After every tick the adapter asks the store for those visitors' placements in
one round trip and the notifier decides who gets an update: at once on admission or
loss of place, on every change near the head, and at most every few seconds deep in
a long queue. It holds no I/O, so both adapters share it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from .stores.base import Placement, RoomSnapshot

__all__ = ["PositionNotifier", "Watch"]

logger = logging.getLogger(__name__)

#: Visitors at or before this position hear about every change at once.
NEAR_HEAD = 100
#: Deeper in the queue, updates are sent at most this often.
DEEP_INTERVAL_MS = 5_000


@dataclass
class Watch:
    """One visitor connected to this process, with what they were last told."""

    room: str
    visitor_id: str
    sids: set[str] = field(default_factory=set)
    status: str | None = None
    position: int | None = None
    sent_ms: int = 0
    ticket: int | None = None


class PositionNotifier:
    """Keeps track of this process's sockets and plans position updates."""

    def __init__(self) -> None:
        self._watches: dict[tuple[str, str], Watch] = {}
        self._by_sid: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def attach(
        self, sid: str, room: str, visitor_id: str, placement: Placement
    ) -> None:
        """Bind ``sid`` to a visitor in ``room``, after a ``register``."""
        with self._lock:
            self._detach(sid)
            key = (room, visitor_id)
            watch = self._watches.setdefault(key, Watch(room, visitor_id))
            watch.sids.add(sid)
            self._by_sid[sid] = key
            self._record(watch, placement)

    def detach(self, sid: str) -> Watch | None:
        """Forget ``sid``; returns the visitor's watch if other sockets remain."""
        with self._lock:
            return self._detach(sid)

    def _detach(self, sid: str) -> Watch | None:
        key = self._by_sid.pop(sid, None)
        if key is None:
            return None
        watch = self._watches[key]
        watch.sids.discard(sid)
        if not watch.sids:
            del self._watches[key]
            return None
        return watch

    def visitor_of(self, sid: str) -> tuple[str, str] | None:
        """Return ``(room, visitor_id)`` registered on ``sid``."""
        return self._by_sid.get(sid)

    def visitors(self, room: str) -> list[str]:
        with self._lock:
            return [v for (r, v) in self._watches if r == room]

    def ticket_of(self, room: str, visitor_id: str) -> int | None:
        """Return the last ticket this process saw for the visitor."""
        watch = self._watches.get((room, visitor_id))
        return None if watch is None else watch.ticket

    def sent(self, room: str, placement: Placement) -> None:
        """Record that ``placement`` was sent to the visitor."""
        with self._lock:
            watch = self._watches.get((room, placement.visitor_id))
            if watch is not None:
                self._record(watch, placement)

    @staticmethod
    def _record(watch: Watch, placement: Placement) -> None:
        watch.status = placement.status
        watch.position = placement.position
        watch.sent_ms = placement.now_ms
        if placement.ticket is not None:
            watch.ticket = placement.ticket

    def plan(
        self, snapshot: RoomSnapshot
    ) -> tuple[list[Placement], list[tuple[str, int]]]:
        """Return the placements to send, and ``(visitor_id, ticket)`` for waiters
        the store no longer knows: they left, or the store lost them, which only
        the store can tell (see ``QueueStore.join`` with ``restore_only``)."""
        to_send: list[Placement] = []
        to_restore: list[tuple[str, int]] = []
        with self._lock:
            for placement in snapshot.placements:
                watch = self._watches.get((snapshot.room, placement.visitor_id))
                if watch is None:
                    continue
                if (
                    placement.status == "unknown"
                    and watch.status == "queued"
                    and watch.ticket is not None
                ):
                    to_restore.append((placement.visitor_id, watch.ticket))
                elif self._due(watch, placement):
                    to_send.append(placement)
        return to_send, to_restore

    @staticmethod
    def _due(watch: Watch, placement: Placement) -> bool:
        if placement.status != watch.status:
            return True
        if placement.status != "queued" or placement.position == watch.position:
            return False
        if placement.position is not None and placement.position <= NEAR_HEAD:
            return True
        return placement.now_ms - watch.sent_ms >= DEEP_INTERVAL_MS
