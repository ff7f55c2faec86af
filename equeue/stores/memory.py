"""The embedded in-memory store: one process, no server needed."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from ..rules import RoomRules, check_room_name
from ._redis_common import HEARTBEAT_HISTORY
from .base import (
    ETA_WINDOW_MS,
    AsyncQueueStore,
    Placement,
    QueueStore,
    RoomSnapshot,
    TickResult,
)

__all__ = ["AsyncMemoryStore", "MemoryStore"]

_RATE_WINDOW_MS = 60_000


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Room:
    epoch: int
    next_ticket: int
    issued_total: int = 0
    hold_until: int | None = None
    admitted_total: int = 0
    evicted_total: int = 0
    tickets: dict[str, int] = field(default_factory=dict)
    queue: SortedList = field(default_factory=SortedList)  # (ticket, visitor_id)
    seen_at: dict[str, int] = field(default_factory=dict)
    seen: SortedList = field(default_factory=SortedList)  # (ms, visitor_id)
    until: dict[str, int] = field(default_factory=dict)
    admitted: SortedList = field(default_factory=SortedList)  # (until_ms, visitor_id)
    admits: deque[int] = field(default_factory=deque)  # admission times, ms
    # Departed visitors by departure time, oldest first (see equeue_gone in Lua).
    gone: OrderedDict[str, int] = field(default_factory=OrderedDict)
    history: OrderedDict[str, deque[int]] = field(default_factory=OrderedDict)

    def placement(self, visitor_id: str, now: int) -> Placement:
        """Where ``visitor_id`` stands, as the Lua scripts report it: a place in
        the queue first, then an active admission, else unknown."""
        length = len(self.queue)
        ticket = self.tickets.get(visitor_id)
        if ticket is not None:
            position = self.position(visitor_id)
            return Placement(
                visitor_id, "queued", position, ticket, length, self.epoch, now
            )
        until = self.until.get(visitor_id)
        if until is not None and until > now:
            return Placement(
                visitor_id, "admitted", 0, None, length, self.epoch, now, until
            )
        return Placement(visitor_id, "unknown", None, None, length, self.epoch, now)

    def position(self, visitor_id: str) -> int:
        return int(self.queue.index((self.tickets[visitor_id], visitor_id))) + 1

    def active(self, now: int) -> int:
        return len(self.admitted) - int(self.admitted.bisect_right((now, "\uffff")))

    def admits_since(self, since: int) -> int:
        return sum(1 for t in self.admits if t > since)

    def touch(self, visitor_id: str, now: int) -> None:
        self.forget_seen(visitor_id)
        self.seen_at[visitor_id] = now
        self.seen.add((now, visitor_id))

    def forget_seen(self, visitor_id: str) -> None:
        old = self.seen_at.pop(visitor_id, None)
        if old is not None:
            self.seen.remove((old, visitor_id))

    def dequeue(self, visitor_id: str) -> bool:
        ticket = self.tickets.pop(visitor_id, None)
        if ticket is None:
            return False
        self.queue.remove((ticket, visitor_id))
        self.forget_seen(visitor_id)
        return True

    def drop_admitted(self, visitor_id: str) -> bool:
        until = self.until.pop(visitor_id, None)
        if until is None:
            return False
        self.admitted.remove((until, visitor_id))
        return True

    def depart(self, visitor_id: str, now: int) -> None:
        self.gone.pop(visitor_id, None)
        self.gone[visitor_id] = now

    def admit(self, visitor_id: str, now: int, ttl_ms: int) -> int:
        self.depart(visitor_id, now)
        self.forget_seen(visitor_id)
        self.until[visitor_id] = now + ttl_ms
        self.admitted.add((now + ttl_ms, visitor_id))
        self.admits.append(now)
        self.admitted_total += 1
        return now + ttl_ms

    def hold_if_lost(self, known_epoch: int | None, grace_ms: int) -> None:
        # As equeue_hold_if_lost in the Lua scripts.
        lost = known_epoch is not None and known_epoch != self.epoch
        if lost and grace_ms > 0 and self.hold_until is None:
            self.hold_until = self.epoch // 1000 + grace_ms

    def holding(self, now: int) -> bool:
        return self.hold_until is not None and self.hold_until > now

    def rate_room(self, now: int, per_minute: int | None) -> int | None:
        if per_minute is None:
            return None
        return per_minute - self.admits_since(now - _RATE_WINDOW_MS)


class MemoryStore(QueueStore):
    """A :class:`QueueStore` in this process's memory.

    It is the default when no Redis URL is configured. State is lost when the
    process ends and is not shared between processes, so run one server process.

    :param now_ms: the clock, in ms; tests inject one to move time without sleeping.
    """

    url_schemes = ("memory",)

    def __init__(self, *, now_ms: Callable[[], int] = _wall_ms) -> None:
        self._now_ms = now_ms
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.Lock()

    def _room(self, room: str, now: int) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            check_room_name(room)
            state = self._rooms[room] = _Room(epoch=now * 1000, next_ticket=now * 1000)
        return state

    def clear(self) -> None:
        """Forget every room, as a Redis restart without persistence would."""
        with self._lock:
            self._rooms.clear()

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
        with self._lock:
            now = self._now_ms()
            state = self._room(room, now)
            state.hold_if_lost(known_epoch, rules.restore_grace_ms)
            known = state.placement(visitor_id, now)
            if known.status == "queued":
                state.touch(visitor_id, now)
            if known.status != "unknown":
                return known

            until = state.until.get(visitor_id)
            if until is not None:
                state.drop_admitted(visitor_id)
            if claim is not None and visitor_id not in state.gone:
                ticket, restored = claim, True
                state.next_ticket = max(state.next_ticket, claim)
            elif restore_only:
                return Placement(
                    visitor_id,
                    "unknown",
                    None,
                    None,
                    len(state.queue),
                    state.epoch,
                    now,
                )
            else:
                ticket, restored = self._next_ticket(state, now), False

            rate_room = state.rate_room(now, rules.admit_per_minute)
            if (
                not state.queue
                and state.active(now) < rules.capacity
                and (rate_room is None or rate_room > 0)
                and not state.holding(now)
            ):
                until = state.admit(visitor_id, now, rules.session_ttl_ms)
                return Placement(
                    visitor_id,
                    "admitted",
                    0,
                    None,
                    0,
                    state.epoch,
                    now,
                    until,
                    restored,
                )

            state.tickets[visitor_id] = ticket
            state.queue.add((ticket, visitor_id))
            state.touch(visitor_id, now)
            return Placement(
                visitor_id,
                "queued",
                state.position(visitor_id),
                ticket,
                len(state.queue),
                state.epoch,
                now,
                None,
                restored,
            )

    @staticmethod
    def _next_ticket(state: _Room, now: int) -> int:
        # Tickets never fall behind the clock, as in the Lua scripts.
        state.issued_total += 1
        state.next_ticket = max(state.next_ticket + 1, now * 1000)
        return state.next_ticket

    def heartbeat(self, room: str, visitor_id: str, rules: RoomRules) -> Placement:
        with self._lock:
            now = self._now_ms()
            state = self._room(room, now)
            beats = state.history.pop(visitor_id, None) or deque(
                maxlen=HEARTBEAT_HISTORY
            )
            beats.appendleft(now)
            state.history[visitor_id] = beats
            self._prune_history(state, now, 2 * rules.heartbeat_timeout_ms)

            if visitor_id in state.tickets:
                state.touch(visitor_id, now)
            return state.placement(visitor_id, now)

    @staticmethod
    def _prune_history(state: _Room, now: int, keep_ms: int) -> None:
        # The history is ordered by last beat, so stale visitors sit at the front.
        while state.history:
            visitor_id, beats = next(iter(state.history.items()))
            if beats[0] > now - keep_ms:
                break
            del state.history[visitor_id]

    def snapshot(self, room: str, visitor_ids: Sequence[str] = ()) -> RoomSnapshot:
        with self._lock:
            now = self._now_ms()
            state = self._room(room, now)
            length = len(state.queue)
            placements = tuple(state.placement(v, now) for v in visitor_ids)
            return RoomSnapshot(
                room=room,
                now_ms=now,
                epoch=state.epoch,
                queue_length=length,
                active=state.active(now),
                recent_admissions=state.admits_since(now - ETA_WINDOW_MS),
                tickets_issued=state.issued_total,
                admitted_total=state.admitted_total,
                evicted_total=state.evicted_total,
                placements=placements,
            )

    def tick(
        self, room: str, rules: RoomRules, known_epoch: int | None = None
    ) -> TickResult:
        with self._lock:
            now = self._now_ms()
            state = self._room(room, now)
            state.hold_if_lost(known_epoch, rules.restore_grace_ms)

            expired = 0
            while state.admitted and state.admitted[0][0] <= now:
                _, visitor_id = state.admitted.pop(0)
                del state.until[visitor_id]
                expired += 1

            deadline = now - rules.heartbeat_timeout_ms
            evicted: list[str] = []
            while state.seen and len(evicted) < rules.max_evictions_per_tick:
                seen_at, visitor_id = state.seen[0]
                if seen_at >= deadline:
                    break
                state.dequeue(visitor_id)
                state.depart(visitor_id, now)
                evicted.append(visitor_id)
            state.evicted_total += len(evicted)

            slots = rules.capacity - len(state.admitted)
            rate_room = state.rate_room(now, rules.admit_per_minute)
            if rate_room is not None:
                slots = min(slots, rate_room)
            if state.holding(now):
                slots = 0
            admitted = []
            while slots > 0 and state.queue:
                ticket, visitor_id = state.queue[0]
                state.dequeue(visitor_id)
                state.admit(visitor_id, now, rules.session_ttl_ms)
                admitted.append((visitor_id, ticket))
                slots -= 1

            while state.gone:
                visitor_id, gone_at = next(iter(state.gone.items()))
                if gone_at >= now - rules.gone_keep_ms:
                    break
                del state.gone[visitor_id]

            keep = max(ETA_WINDOW_MS, _RATE_WINDOW_MS)
            while state.admits and state.admits[0] < now - keep:
                state.admits.popleft()

            return TickResult(
                room=room,
                now_ms=now,
                epoch=state.epoch,
                expired=expired,
                evicted=evicted,
                admitted=admitted,
                queue_length=len(state.queue),
                active=len(state.admitted),
                recent_admissions=state.admits_since(now - ETA_WINDOW_MS),
            )

    def renew(self, room: str, visitor_id: str, rules: RoomRules) -> int | None:
        with self._lock:
            now = self._now_ms()
            state = self._room(room, now)
            until = state.until.get(visitor_id)
            if until is None or until <= now:
                return None
            state.drop_admitted(visitor_id)
            state.until[visitor_id] = now + rules.session_ttl_ms
            state.admitted.add((now + rules.session_ttl_ms, visitor_id))
            return now + rules.session_ttl_ms

    def leave(self, room: str, visitor_id: str) -> bool:
        with self._lock:
            now = self._now_ms()
            state = self._room(room, now)
            dequeued = state.dequeue(visitor_id)
            dropped = state.drop_admitted(visitor_id)
            if dequeued or dropped:
                state.depart(visitor_id, now)
            return dequeued or dropped

    def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        with self._lock:
            state = self._room(room, self._now_ms())
            return list(state.history.get(visitor_id, ()))

    def ping(self) -> bool:
        return True


class AsyncMemoryStore(AsyncQueueStore):
    """The in-memory store for asyncio apps. Each call is short and never waits on
    I/O, so it runs the synchronous store inline without blocking the loop."""

    url_schemes = ("memory",)

    def __init__(self, *, now_ms: Callable[[], int] = _wall_ms) -> None:
        self.sync = MemoryStore(now_ms=now_ms)

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
        return self.sync.join(
            room,
            visitor_id,
            rules,
            claim,
            restore_only=restore_only,
            known_epoch=known_epoch,
        )

    async def heartbeat(
        self, room: str, visitor_id: str, rules: RoomRules
    ) -> Placement:
        return self.sync.heartbeat(room, visitor_id, rules)

    async def snapshot(
        self, room: str, visitor_ids: Sequence[str] = ()
    ) -> RoomSnapshot:
        return self.sync.snapshot(room, visitor_ids)

    async def tick(
        self, room: str, rules: RoomRules, known_epoch: int | None = None
    ) -> TickResult:
        return self.sync.tick(room, rules, known_epoch)

    async def renew(self, room: str, visitor_id: str, rules: RoomRules) -> int | None:
        return self.sync.renew(room, visitor_id, rules)

    async def leave(self, room: str, visitor_id: str) -> bool:
        return self.sync.leave(room, visitor_id)

    async def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        return self.sync.heartbeats(room, visitor_id)

    async def ping(self) -> bool:
        return True
