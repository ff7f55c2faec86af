"""The queue store contract shared by every backend."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..rules import RoomRules

__all__ = [
    "AsyncQueueStore",
    "Placement",
    "QueueStore",
    "RoomSnapshot",
    "Status",
    "TickResult",
]

#: ``queued``: waiting with a position; ``admitted``: may use the room;
#: ``unknown``: the store has no place for this visitor (never joined, evicted,
#: left, or their session ended).
Status = Literal["queued", "admitted", "unknown"]

#: How many admission times are kept for the measured admission rate.
ETA_WINDOW_MS = 300_000


@dataclass(frozen=True)
class Placement:
    """Where one visitor stands in one room.

    ``position`` is 1 for the head of the queue, 0 once admitted, ``None`` when
    the store does not know the visitor. ``ticket`` is the visitor's place in the
    queue order (``None`` once admitted or unknown). ``epoch`` identifies the
    store's current generation of this room's data: it changes when all of it was
    lost. ``restored`` says a ticket claimed by the visitor's pass was given back.
    """

    visitor_id: str
    status: Status
    position: int | None
    ticket: int | None
    queue_length: int
    epoch: int
    now_ms: int
    admitted_until_ms: int | None = None
    restored: bool = False


@dataclass(frozen=True)
class RoomSnapshot:
    """The state of a room, plus the placements of the visitors asked about."""

    room: str
    now_ms: int
    epoch: int
    queue_length: int
    active: int
    recent_admissions: int
    tickets_issued: int
    admitted_total: int
    evicted_total: int
    placements: Sequence[Placement] = field(default_factory=tuple)


@dataclass(frozen=True)
class TickResult:
    """What one tick of a room did.

    ``admitted`` lists ``(visitor_id, ticket)`` pairs in ticket order.
    """

    room: str
    now_ms: int
    epoch: int
    expired: int
    evicted: Sequence[str]
    admitted: Sequence[tuple[str, int]]
    queue_length: int
    active: int
    recent_admissions: int


class QueueStore(abc.ABC):
    """Holds the queues, the admitted sessions and the heartbeats of every room.

    Each method is atomic: one Lua script or one locked section. Times are in
    milliseconds from the store's own clock (Redis ``TIME``), so application
    servers with skewed clocks agree.
    """

    #: The URL scheme(s) this backend serves, for the ``store_from_url`` table.
    url_schemes: tuple[str, ...] = ()

    @abc.abstractmethod
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
        """Put ``visitor_id`` in the queue of ``room``, or report where they are.

        Joining again is idempotent: the same ticket, one entry. A visitor the
        store does not know gets the next ticket, unless ``claim`` holds the
        ticket of a verified, unexpired pass and the store has no record of the
        visitor leaving (admitted, evicted or gone by choice, within the room's
        ``gone_keep_ms``): then the store lost that join (a restart, a rollback to
        an older snapshot, a failover) and the old ticket is restored, with the
        counter moved past it. With ``restore_only`` a visitor who cannot be
        restored gets no new ticket either (status ``unknown``). While the queue
        is empty and the room has space the visitor is admitted at once.
        """

    @abc.abstractmethod
    def heartbeat(self, room: str, visitor_id: str, rules: RoomRules) -> Placement:
        """Record that ``visitor_id`` is still waiting and return their placement."""

    @abc.abstractmethod
    def snapshot(self, room: str, visitor_ids: Sequence[str] = ()) -> RoomSnapshot:
        """Return the room's state and the placements of ``visitor_ids``, in one
        round trip."""

    @abc.abstractmethod
    def tick(
        self, room: str, rules: RoomRules, known_epoch: int | None = None
    ) -> TickResult:
        """Expire ended sessions, evict silent waiters, admit from the head.

        Safe to run concurrently from several processes: each call is atomic and
        never admits beyond ``rules.capacity`` or ``rules.admit_per_minute``.
        """

    @abc.abstractmethod
    def renew(self, room: str, visitor_id: str, rules: RoomRules) -> int | None:
        """Extend an admitted visitor's session to now + ``session_ttl``.

        Returns the new expiry in ms, or ``None`` if the visitor is not admitted.
        """

    @abc.abstractmethod
    def leave(self, room: str, visitor_id: str) -> bool:
        """Give the visitor's place or admitted slot back. True if there was one."""

    @abc.abstractmethod
    def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        """Return the visitor's recent heartbeat times in ms, newest first."""

    @abc.abstractmethod
    def ping(self) -> bool:
        """Return True if the store answers."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Release connections."""


class AsyncQueueStore(abc.ABC):
    """The asyncio flavour of :class:`QueueStore`; same semantics, awaitable."""

    url_schemes: tuple[str, ...] = ()

    @abc.abstractmethod
    async def join(
        self,
        room: str,
        visitor_id: str,
        rules: RoomRules,
        claim: int | None = None,
        *,
        restore_only: bool = False,
        known_epoch: int | None = None,
    ) -> Placement: ...

    @abc.abstractmethod
    async def heartbeat(
        self, room: str, visitor_id: str, rules: RoomRules
    ) -> Placement: ...

    @abc.abstractmethod
    async def snapshot(
        self, room: str, visitor_ids: Sequence[str] = ()
    ) -> RoomSnapshot: ...

    @abc.abstractmethod
    async def tick(
        self, room: str, rules: RoomRules, known_epoch: int | None = None
    ) -> TickResult: ...

    @abc.abstractmethod
    async def renew(
        self, room: str, visitor_id: str, rules: RoomRules
    ) -> int | None: ...

    @abc.abstractmethod
    async def leave(self, room: str, visitor_id: str) -> bool: ...

    @abc.abstractmethod
    async def heartbeats(self, room: str, visitor_id: str) -> list[int]: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
