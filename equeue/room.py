"""The waiting room's policy: rooms and their rules, passes, updates, ETA.

:class:`WaitingRoom` (sync, for Flask) and :class:`AsyncWaitingRoom` (asyncio, for
Starlette) share everything here except the awaited store calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from .config import Settings
from .errors import InvalidPayload, TokenError
from .eta import estimate_wait_s
from .rules import RoomRules
from .stores.base import (
    AsyncQueueStore,
    Placement,
    QueueStore,
    RoomSnapshot,
    TickResult,
)
from .tokens import TokenSigner, VisitorPass

__all__ = ["AsyncWaitingRoom", "RoomPolicy", "WaitingRoom"]

logger = logging.getLogger(__name__)


class RoomPolicy:
    """What both flavours of the waiting room share: no I/O happens here."""

    def __init__(self, settings: Settings, signer: TokenSigner | None = None) -> None:
        self.settings = settings
        self.signer = signer or TokenSigner(settings.signing_secret)
        # Rooms whose ticks are failing, so that a long outage logs its start and
        # its end rather than a traceback every tick.
        self._failing: set[str] = set()
        # The epoch of each room as this process last saw it through a join or a
        # tick; the store compares it with its own to notice lost data.
        self._epochs: dict[str, int] = {}
        # The last measured admission rate of each room: (recent, epoch, now_ms).
        self._rates: dict[str, tuple[int, int, int]] = {}
        self._rates_lock = threading.Lock()

    @property
    def rooms(self) -> list[str]:
        return list(self.settings.rooms)

    def rules(self, room: str) -> RoomRules:
        """Return the rules of ``room``.

        :raises InvalidPayload: with reason ``unknown_room``.
        """
        rules = self.settings.rooms.get(room)
        if rules is None:
            raise InvalidPayload("unknown_room", f"there is no room named {room!r}")
        return rules

    def read_pass(self, raw: str | None) -> VisitorPass:
        """Verify a pass from the wire.

        :raises InvalidPayload: with reason ``bad_pass`` for a forged or expired pass.
        """
        try:
            return self.signer.read_pass(raw)
        except TokenError as exc:
            raise InvalidPayload("bad_pass", str(exc)) from exc

    def pass_or_new(self, raw: str | None) -> tuple[VisitorPass, bool]:
        """Return the visitor behind a pass cookie, or a new visitor when it is
        missing or invalid (HTTP routes start a fresh identity then). The flag
        says whether the visitor is new."""
        if raw:
            try:
                return self.signer.read_pass(raw), False
            except TokenError as exc:
                logger.debug("ignoring a visitor pass cookie: %s", exc.reason)
        return VisitorPass(self.signer.new_visitor_id()), True

    def claim(self, visitor_pass: VisitorPass, room: str) -> int | None:
        return visitor_pass.ticket_claim(room, self.signer.now())

    def pass_for(self, room: str, placement: Placement) -> str:
        """Return a fresh pass for the visitor of ``placement``, vouching for
        their ticket while they are queued."""
        rules = self.rules(room)
        if placement.status == "queued" and placement.ticket is not None:
            return self.signer.issue_pass(
                placement.visitor_id,
                room=room,
                ticket=placement.ticket,
                epoch=placement.epoch,
                ticket_ttl_s=rules.pass_ttl_s,
            )
        return self.signer.issue_pass(placement.visitor_id)

    def remember_rate(self, room: str, recent: int, epoch: int, now_ms: int) -> None:
        with self._rates_lock:
            self._rates[room] = (recent, epoch, now_ms)

    def eta_s(self, room: str, placement: Placement) -> int | None:
        if placement.status != "queued" or placement.position is None:
            return 0 if placement.status == "admitted" else None
        recent, epoch, now_ms = self._rates.get(
            room, (0, placement.epoch, placement.now_ms)
        )
        return estimate_wait_s(
            placement.position,
            recent,
            max(now_ms, placement.now_ms),
            epoch,
            self.rules(room),
        )

    @staticmethod
    def requeued(room: str, visitor_pass: VisitorPass, placement: Placement) -> bool:
        """True when the visitor lost an earlier place in this generation of the
        room's data (silent past the heartbeat timeout, or gone) and has just
        joined again at the back, so the page can say so."""
        return (
            placement.status == "queued"
            and visitor_pass.room == room
            and visitor_pass.ticket is not None
            and visitor_pass.epoch == placement.epoch
            and visitor_pass.ticket != placement.ticket
        )

    def initial_view(
        self, room: str, placement: Placement | None, visitor_pass: VisitorPass
    ) -> dict[str, Any]:
        """The state the splash page shows before its socket connects; without a
        placement (the page's socket will join) nothing is known yet."""
        if placement is None:
            return {
                "status": "queued",
                "position": None,
                "queue_length": None,
                "eta_seconds": None,
                "requeued": False,
            }
        return {
            "status": placement.status,
            "position": placement.position,
            "queue_length": placement.queue_length,
            "eta_seconds": self.eta_s(room, placement),
            "requeued": self.requeued(room, visitor_pass, placement),
        }

    def update(
        self,
        room: str,
        placement: Placement,
        admit_url: str | None,
        *,
        requeued: bool = False,
    ) -> dict[str, Any]:
        """Return the ``queue_update`` payload for one visitor."""
        status = "expired" if placement.status == "unknown" else placement.status
        payload: dict[str, Any] = {
            "room": room,
            "status": status,
            "position": placement.position,
            "queue_length": placement.queue_length,
            "eta_seconds": self.eta_s(room, placement),
            "pass": self.pass_for(room, placement),
        }
        if placement.status == "admitted":
            payload["admit_url"] = admit_url
        if requeued:
            payload["requeued"] = True
        return payload

    def admission_token(self, room: str, visitor_id: str, until_ms: int) -> str:
        return self.signer.issue_admission(visitor_id, room, until_ms / 1000)

    def tick_failed(self, room: str, exc: BaseException) -> None:
        """Log a failed tick: in full the first time, briefly while it goes on."""
        if room in self._failing:
            logger.debug("room %s: tick failed again: %s", room, exc)
            return
        self._failing.add(room)
        logger.error(
            "room %s: tick failed; retrying every tick: %s", room, exc, exc_info=exc
        )

    def tick_succeeded(self, room: str) -> None:
        if room in self._failing:
            self._failing.discard(room)
            logger.info("room %s: ticks work again", room)

    def known_epoch(self, room: str) -> int | None:
        return self._epochs.get(room)

    def saw_epoch(self, room: str, epoch: int) -> None:
        previous = self._epochs.get(room)
        if previous is not None and previous != epoch:
            logger.warning(
                "room %s: the store lost this room's data; admissions pause for "
                "%.1f s while waiters get their tickets back",
                room,
                self.rules(room).restore_grace_s,
            )
        self._epochs[room] = epoch

    def log_restore(self, room: str, placement: Placement) -> None:
        self.saw_epoch(room, placement.epoch)
        if placement.restored:
            logger.info("room %s: gave back a ticket the store had lost", room)
        logger.debug(
            "room %s: join -> %s %s", room, placement.status, placement.position
        )

    def log_tick(self, result: TickResult) -> None:
        self.saw_epoch(result.room, result.epoch)
        self.remember_rate(
            result.room, result.recent_admissions, result.epoch, result.now_ms
        )
        if result.admitted or result.evicted or result.expired:
            logger.info(
                "room %s: admitted %d, evicted %d, sessions ended %d, waiting %d, "
                "active %d",
                result.room,
                len(result.admitted),
                len(result.evicted),
                result.expired,
                result.queue_length,
                result.active,
            )


class WaitingRoom(RoomPolicy):
    """The waiting room over a synchronous store (Flask, scripts, tests)."""

    def __init__(
        self,
        settings: Settings,
        store: QueueStore,
        signer: TokenSigner | None = None,
    ) -> None:
        super().__init__(settings, signer)
        self.store = store

    def join(self, room: str, visitor_pass: VisitorPass) -> Placement:
        placement = self.store.join(
            room,
            visitor_pass.visitor_id,
            self.rules(room),
            self.claim(visitor_pass, room),
            known_epoch=self.known_epoch(room),
        )
        self.log_restore(room, placement)
        return placement

    def restore(self, room: str, visitor_id: str, ticket: int) -> Placement:
        """Give a connected visitor the store no longer knows their ``ticket`` back,
        if the store lost it (status ``unknown`` if they had left)."""
        placement = self.store.join(
            room,
            visitor_id,
            self.rules(room),
            ticket,
            restore_only=True,
            known_epoch=self.known_epoch(room),
        )
        self.log_restore(room, placement)
        return placement

    def heartbeat(self, room: str, visitor_id: str) -> Placement:
        return self.store.heartbeat(room, visitor_id, self.rules(room))

    def tick(self, room: str) -> TickResult:
        result = self.store.tick(room, self.rules(room), self.known_epoch(room))
        self.log_tick(result)
        return result

    def snapshot(self, room: str, visitor_ids: Sequence[str] = ()) -> RoomSnapshot:
        self.rules(room)
        snapshot = self.store.snapshot(room, visitor_ids)
        self.remember_rate(
            room, snapshot.recent_admissions, snapshot.epoch, snapshot.now_ms
        )
        return snapshot

    def renew(self, room: str, visitor_id: str) -> int | None:
        return self.store.renew(room, visitor_id, self.rules(room))

    def leave(self, room: str, visitor_id: str) -> bool:
        self.rules(room)
        return self.store.leave(room, visitor_id)

    def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        self.rules(room)
        return self.store.heartbeats(room, visitor_id)


class AsyncWaitingRoom(RoomPolicy):
    """The waiting room over an asyncio store (Starlette)."""

    def __init__(
        self,
        settings: Settings,
        store: AsyncQueueStore,
        signer: TokenSigner | None = None,
    ) -> None:
        super().__init__(settings, signer)
        self.store = store

    async def join(self, room: str, visitor_pass: VisitorPass) -> Placement:
        placement = await self.store.join(
            room,
            visitor_pass.visitor_id,
            self.rules(room),
            self.claim(visitor_pass, room),
            known_epoch=self.known_epoch(room),
        )
        self.log_restore(room, placement)
        return placement

    async def restore(self, room: str, visitor_id: str, ticket: int) -> Placement:
        """See :meth:`WaitingRoom.restore`."""
        placement = await self.store.join(
            room,
            visitor_id,
            self.rules(room),
            ticket,
            restore_only=True,
            known_epoch=self.known_epoch(room),
        )
        self.log_restore(room, placement)
        return placement

    async def heartbeat(self, room: str, visitor_id: str) -> Placement:
        return await self.store.heartbeat(room, visitor_id, self.rules(room))

    async def tick(self, room: str) -> TickResult:
        result = await self.store.tick(room, self.rules(room), self.known_epoch(room))
        self.log_tick(result)
        return result

    async def snapshot(
        self, room: str, visitor_ids: Sequence[str] = ()
    ) -> RoomSnapshot:
        self.rules(room)
        snapshot = await self.store.snapshot(room, visitor_ids)
        self.remember_rate(
            room, snapshot.recent_admissions, snapshot.epoch, snapshot.now_ms
        )
        return snapshot

    async def renew(self, room: str, visitor_id: str) -> int | None:
        return await self.store.renew(room, visitor_id, self.rules(room))

    async def leave(self, room: str, visitor_id: str) -> bool:
        self.rules(room)
        return await self.store.leave(room, visitor_id)

    async def heartbeats(self, room: str, visitor_id: str) -> list[int]:
        self.rules(room)
        return await self.store.heartbeats(room, visitor_id)
