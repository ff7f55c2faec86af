"""Randomized operations across two "processes" sharing one real Redis.

A hypothesis state machine drives two :class:`~equeue.room.WaitingRoom` objects, each
on its own :class:`~equeue.stores.redis.RedisStore` connection to the same
redis-server, with one injected clock. Visitors join, leave, beat, renew, reconnect
to the other process with their pass, time moves, either process ticks, and Redis
may lose its data. After every step the store is read back key by key and checked
against a plain-Python model of the queue and against the invariants of
DESIGN.md section 10: admission in ticket order, admitted-and-active never above
capacity, no duplicate places, positions 1..n without gaps, and both processes
seeing the same positions.

A second, seeded test races real threads ticking the same room while others join,
to show the capacity check holds under true concurrency, not only in sequence.

Runs are derandomized so CI sees the same examples every time.
"""

from __future__ import annotations

import copy
import itertools
import random
import threading
import time
from dataclasses import dataclass, field

import redis
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from equeue import Settings, TokenSigner
from equeue.room import WaitingRoom
from equeue.rules import RoomRules
from equeue.stores._redis_common import RedisKeys
from equeue.stores.base import Placement, TickResult
from equeue.stores.redis import RedisStore
from equeue.tokens import VisitorPass

SECRET = "random-ops-secret-0123456789-abcdefghijklmnop"
ROOM = "r"
RULES = RoomRules(
    capacity=2,
    admit_per_minute=6,
    session_ttl_s=2,
    heartbeat_interval_s=5,
    heartbeat_timeout_s=20,
    pass_ttl_s=600,
    # Small, so that a tick with more silent waiters than this leaves some for
    # the next one and the bound itself is exercised.
    max_evictions_per_tick=2,
)
VISITORS = [f"v{i}" for i in range(8)]
PROCESSES = (0, 1)
START_MS = 1_800_000_000_000


class Clock:
    """The one clock both stores and both signers read, moved by the test."""

    def __init__(self) -> None:
        self.now_ms = START_MS

    def ms(self) -> int:
        return self.now_ms

    def seconds(self) -> float:
        return self.now_ms / 1000


@dataclass
class Model:
    """What the store should hold for the room, computed the plain way."""

    epoch: int | None = None
    next_ticket: int = 0
    queue: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    admitted: dict[str, int] = field(default_factory=dict)
    admits: dict[int, int] = field(default_factory=dict)
    gone: dict[str, int] = field(default_factory=dict)
    hold_until: int | None = None
    admitted_total: int = 0
    evicted_total: int = 0

    def touch_epoch(self, now: int) -> int:
        if self.epoch is None:
            self.epoch = now * 1000
            self.next_ticket = self.epoch
        return self.epoch

    def active(self, now: int) -> int:
        return sum(1 for until in self.admitted.values() if until > now)

    def rate_room(self, now: int) -> int:
        if RULES.admit_per_minute is None:
            return -1
        used = sum(1 for at in self.admits.values() if at > now - 60_000)
        return RULES.admit_per_minute - used

    def position(self, visitor_id: str) -> int:
        ticket = self.queue[visitor_id]
        return 1 + sum(1 for t in self.queue.values() if t < ticket)

    def admit(self, visitor_id: str, ticket: int, now: int) -> None:
        self.gone[visitor_id] = now
        self.admitted[visitor_id] = now + RULES.session_ttl_ms
        self.seen.pop(visitor_id, None)
        self.admits[ticket] = now
        self.admitted_total += 1

    def hold_if_lost(self, known: int | None) -> None:
        """A process that knew an older epoch pauses admissions (once per epoch)."""
        assert self.epoch is not None
        lost = known is not None and known != self.epoch
        if lost and RULES.restore_grace_ms > 0 and self.hold_until is None:
            self.hold_until = self.epoch // 1000 + RULES.restore_grace_ms

    def holding(self, now: int) -> bool:
        return self.hold_until is not None and self.hold_until > now

    def join(
        self, visitor_id: str, claim: int | None, now: int, known: int | None
    ) -> tuple[str, int | None]:
        """Return ``(status, position)`` as join.lua should."""
        self.touch_epoch(now)
        self.hold_if_lost(known)
        until = self.admitted.get(visitor_id)
        if until is not None and until > now:
            return "admitted", 0
        if visitor_id in self.queue:
            self.seen[visitor_id] = now
            return "queued", self.position(visitor_id)
        self.admitted.pop(visitor_id, None)

        # A claimed ticket comes back unless the visitor is known to have left.
        if claim is not None and visitor_id not in self.gone:
            ticket = claim
            self.next_ticket = max(self.next_ticket, claim)
        else:
            self.next_ticket = max(self.next_ticket + 1, now * 1000)
            ticket = self.next_ticket

        if (
            not self.queue
            and self.active(now) < RULES.capacity
            and self.rate_room(now) != 0
            and not self.holding(now)
        ):
            self.admit(visitor_id, ticket, now)
            return "admitted", 0
        self.queue[visitor_id] = ticket
        self.seen[visitor_id] = now
        return "queued", self.position(visitor_id)

    def heartbeat(self, visitor_id: str, now: int) -> str:
        self.touch_epoch(now)
        if visitor_id in self.queue:
            self.seen[visitor_id] = now
            return "queued"
        if self.admitted.get(visitor_id, now) > now:
            return "admitted"
        return "unknown"

    def renew(self, visitor_id: str, now: int) -> int | None:
        until = self.admitted.get(visitor_id)
        if until is None or until <= now:
            return None
        self.admitted[visitor_id] = now + RULES.session_ttl_ms
        return self.admitted[visitor_id]

    def leave(self, visitor_id: str, now: int) -> bool:
        had = visitor_id in self.queue or visitor_id in self.admitted
        if had:
            self.gone[visitor_id] = now
        self.queue.pop(visitor_id, None)
        self.seen.pop(visitor_id, None)
        self.admitted.pop(visitor_id, None)
        return had

    def tick(
        self, now: int, known: int | None
    ) -> tuple[list[str], list[tuple[str, int]]]:
        """Return ``(evicted, admitted)`` as tick.lua should."""
        self.touch_epoch(now)
        self.hold_if_lost(known)
        for visitor_id in [v for v, until in self.admitted.items() if until <= now]:
            del self.admitted[visitor_id]

        silent = sorted(
            (at, v)
            for v, at in self.seen.items()
            if at < now - RULES.heartbeat_timeout_ms
        )
        evicted = [v for _, v in silent[: RULES.max_evictions_per_tick]]
        for visitor_id in evicted:
            del self.queue[visitor_id]
            del self.seen[visitor_id]
            self.gone[visitor_id] = now
        self.evicted_total += len(evicted)

        slots = RULES.capacity - len(self.admitted)
        rate_room = self.rate_room(now)
        if 0 <= rate_room < slots:
            slots = rate_room
        if self.holding(now):
            slots = 0
        let_in = []
        for _ in range(max(0, slots)):
            if not self.queue:
                break
            visitor_id = min(self.queue, key=self.queue.__getitem__)
            ticket = self.queue.pop(visitor_id)
            self.admit(visitor_id, ticket, now)
            let_in.append((visitor_id, ticket))
        self.gone = {
            v: at for v, at in self.gone.items() if at >= now - RULES.gone_keep_ms
        }
        return evicted, let_in


class TwoProcessesOneRedis(RuleBasedStateMachine):
    """Two waiting rooms on one Redis, checked against :class:`Model`."""

    redis_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.raw = redis.Redis.from_url(self.redis_url, protocol=2)
        self.raw.flushall()
        room_settings = Settings(secret=SECRET, rooms={ROOM: RULES})
        self.stores = [
            RedisStore.from_url(self.redis_url, now_ms=self.clock.ms) for _ in PROCESSES
        ]
        self.rooms = [
            WaitingRoom(
                room_settings, store, TokenSigner(SECRET, clock=self.clock.seconds)
            )
            for store in self.stores
        ]
        self.keys = RedisKeys("equeue", ROOM)
        self.model = Model()
        self.saved: tuple[dict[bytes, bytes], Model] | None = None
        # The newest pass each visitor's page holds, and the process it talks to.
        self.passes: dict[str, str] = {}
        self.process_of: dict[str, int] = {}

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        self.raw.close()

    # Helpers -------------------------------------------------------------------

    def _pass(self, visitor_id: str) -> VisitorPass:
        raw = self.passes.get(visitor_id)
        if raw is None:
            return VisitorPass(visitor_id)
        visitor_pass = self.rooms[0].read_pass(raw)
        assert visitor_pass.visitor_id == visitor_id
        return visitor_pass

    def _register(self, visitor_id: str, process: int) -> Placement:
        """What the adapters do for ``register``: join with the pass, then hand
        the page a fresh pass."""
        room = self.rooms[process]
        visitor_pass = self._pass(visitor_id)
        claim = room.claim(visitor_pass, ROOM)

        now = self.clock.ms()
        waiting_before = dict(self.model.queue)
        was_admitted = self.model.admitted.get(visitor_id, now) > now

        known = room.known_epoch(ROOM)
        placement = room.join(ROOM, visitor_pass)
        expected = self.model.join(visitor_id, claim, now, known)

        assert (placement.status, placement.position) == expected
        assert placement.queue_length == len(self.model.queue)
        event(
            "register", placement.status + (" restored" if placement.restored else "")
        )
        if placement.status == "admitted" and not was_admitted:
            # Let in at join: only ever when nobody was waiting.
            assert not waiting_before, (visitor_id, waiting_before)
        self.passes[visitor_id] = room.pass_for(ROOM, placement)
        self.process_of[visitor_id] = process
        return placement

    def _check_admitted_in_order(self, admitted: list[tuple[str, int]]) -> None:
        # Nobody is let in while someone with a smaller ticket still waits.
        for visitor_id, ticket in admitted:
            assert visitor_id not in self.model.queue
            if self.model.queue:
                assert ticket < min(self.model.queue.values()), (visitor_id, ticket)

    # Rules ---------------------------------------------------------------------

    @rule(visitor_id=st.sampled_from(VISITORS), process=st.sampled_from(PROCESSES))
    def join(self, visitor_id: str, process: int) -> None:
        self._register(visitor_id, process)

    @precondition(lambda self: bool(self.process_of))
    @rule(data=st.data())
    def reconnect_to_the_other_process(self, data: st.DataObject) -> None:
        # The process the visitor was on died or the balancer moved them: the page
        # registers again elsewhere with the pass it holds.
        visitor_id = data.draw(st.sampled_from(sorted(self.process_of)))
        before = self.model.queue.get(visitor_id)
        placement = self._register(visitor_id, 1 - self.process_of[visitor_id])
        if before is not None:
            assert placement.ticket == before

    @rule(visitor_id=st.sampled_from(VISITORS), process=st.sampled_from(PROCESSES))
    def heartbeat(self, visitor_id: str, process: int) -> None:
        placement = self.rooms[process].heartbeat(ROOM, visitor_id)
        assert placement.status == self.model.heartbeat(visitor_id, self.clock.ms())
        if placement.status == "queued":
            assert placement.position == self.model.position(visitor_id)

    @rule()
    def every_waiting_page_beats(self) -> None:
        # Pages beat all the time; without this step most waiters would be evicted
        # by the first long pause and few would ever be admitted by a tick.
        for visitor_id in sorted(self.model.queue):
            self.heartbeat(visitor_id, self.process_of.get(visitor_id, 0))

    @rule(visitor_id=st.sampled_from(VISITORS), process=st.sampled_from(PROCESSES))
    def renew(self, visitor_id: str, process: int) -> None:
        until = self.rooms[process].renew(ROOM, visitor_id)
        assert until == self.model.renew(visitor_id, self.clock.ms())

    @rule(visitor_id=st.sampled_from(VISITORS), process=st.sampled_from(PROCESSES))
    def leave(self, visitor_id: str, process: int) -> None:
        assert self.rooms[process].leave(ROOM, visitor_id) == self.model.leave(
            visitor_id, self.clock.ms()
        )

    @rule(
        seconds=st.sampled_from([0.001, 0.5, 1, 3, 9, 21, 61]),
        pages_beat=st.booleans(),
        tickers_run=st.booleans(),
    )
    def time_passes(self, seconds: float, pages_beat: bool, tickers_run: bool) -> None:
        if not pages_beat and not tickers_run:
            # Every page is silent (asleep, offline) and no ticker runs meanwhile.
            self.clock.now_ms += int(seconds * 1000)
            return
        # Time passes in small steps: the waiting pages beat through it if they
        # are awake, and the processes' tickers take turns as they would.
        left_ms = int(seconds * 1000)
        step_ms = 2000 if tickers_run else int(RULES.heartbeat_interval_s * 1000)
        turn = 0
        while left_ms > 0:
            self.clock.now_ms += min(left_ms, step_ms)
            left_ms -= step_ms
            if pages_beat:
                self.every_waiting_page_beats()
            if tickers_run:
                self.tick(turn % 2)
                self.store_matches_the_model()
                turn += 1

    @rule(process=st.sampled_from(PROCESSES))
    def tick(self, process: int) -> None:
        known = self.rooms[process].known_epoch(ROOM)
        result: TickResult = self.rooms[process].tick(ROOM)
        evicted, admitted = self.model.tick(self.clock.ms(), known)

        assert list(result.evicted) == evicted
        assert list(result.admitted) == admitted
        event("tick admitted", str(min(len(admitted), 2)))
        event("tick evicted", str(min(len(evicted), 2)))
        self._check_admitted_in_order(admitted)

    @rule(first=st.sampled_from(PROCESSES))
    def both_tick_at_the_same_moment(self, first: int) -> None:
        # Racing tickers: the second tick of the same instant finds nothing to do
        # beyond what the first left, and never admits past capacity.
        self.tick(first)
        self.tick(1 - first)

    @precondition(lambda self: self.model.epoch is not None)
    @rule(dice=st.integers(0, 9))
    def redis_loses_its_data(self, dice: int) -> None:
        # Rarer than the other steps, so that queues have time to build up
        # between losses and the restored tickets have someone to be ordered among.
        if dice != 7:
            return
        event("redis lost its data")
        # A restart takes a moment; tickets issued after it are later than any
        # lost one (equal tickets would need 1000 joins in one millisecond).
        self.clock.now_ms += 1000
        self.raw.flushall()
        self.model = Model()
        self.saved = None

    @precondition(lambda self: self.model.epoch is not None)
    @rule()
    def redis_takes_a_snapshot(self) -> None:
        # What an RDB file or a lagging replica would hold from now on.
        self.saved = (
            {key: self.raw.dump(key) for key in self.raw.scan_iter("equeue:*")},
            copy.deepcopy(self.model),
        )

    @precondition(lambda self: self.saved is not None)
    @rule(dice=st.integers(0, 4))
    def redis_rolls_back_to_the_snapshot(self, dice: int) -> None:
        if dice != 2:
            return
        event("redis rolled back to a snapshot")
        dumps, model = self.saved
        self.clock.now_ms += 1000
        self.raw.flushall()
        for key, value in dumps.items():
            self.raw.restore(key, 0, value)
        self.model = copy.deepcopy(model)

    # Invariants ----------------------------------------------------------------

    @invariant()
    def store_matches_the_model(self) -> None:
        now = self.clock.ms()
        queue = {
            v.decode(): int(s)
            for v, s in self.raw.zrange(self.keys.queue, 0, -1, withscores=True)
        }
        seen = {
            v.decode(): int(s)
            for v, s in self.raw.zrange(self.keys.seen, 0, -1, withscores=True)
        }
        admitted = {
            v.decode(): int(s)
            for v, s in self.raw.zrange(self.keys.admitted, 0, -1, withscores=True)
        }
        active = {v for v, until in admitted.items() if until > now}

        assert queue == self.model.queue
        assert seen == self.model.seen
        # Ended sessions linger until the next tick sweeps them; both sides agree
        # on those too.
        assert admitted == self.model.admitted
        assert set(seen) == set(queue)
        assert not set(queue) & active, "a visitor holds a place and a slot"
        assert len(active) <= RULES.capacity

    @invariant()
    def positions_agree_and_have_no_gaps(self) -> None:
        if self.model.epoch is None:
            return
        snapshots = [room.snapshot(ROOM, VISITORS) for room in self.rooms]
        views = [
            {p.visitor_id: (p.status, p.position, p.ticket) for p in snap.placements}
            for snap in snapshots
        ]
        assert views[0] == views[1], "the two processes disagree on positions"

        queued = sorted(
            (p.position, p.ticket)
            for p in snapshots[0].placements
            if p.status == "queued"
        )
        assert [pos for pos, _ in queued] == list(range(1, len(queued) + 1))
        tickets = [ticket for _, ticket in queued]
        assert tickets == sorted(tickets)
        assert len(set(tickets)) == len(tickets)
        assert snapshots[0].queue_length == len(queued)
        assert snapshots[0].active <= RULES.capacity
        assert snapshots[0].admitted_total == self.model.admitted_total
        assert snapshots[0].evicted_total == self.model.evicted_total


def test_random_operations_across_two_processes_keep_every_invariant(
    redis_url: str,
) -> None:
    TwoProcessesOneRedis.redis_url = redis_url
    run_state_machine_as_test(
        TwoProcessesOneRedis,
        settings=settings(
            max_examples=500,
            stateful_step_count=50,
            derandomize=True,
            database=None,
            # Shrinking replays thousands of runs against Redis and outlasts the
            # test timeout; a failure prints its full, unshrunk list of steps.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_tickers_racing_in_threads_never_exceed_capacity_or_skip_a_ticket(
    redis_url: str,
) -> None:
    rules = RoomRules(
        capacity=3, session_ttl_s=0.05, heartbeat_interval_s=5, heartbeat_timeout_s=60
    )
    room_settings = Settings(secret=SECRET, rooms={ROOM: rules})
    stores = [RedisStore.from_url(redis_url) for _ in range(4)]
    rooms = [WaitingRoom(room_settings, store) for store in stores]
    raw = redis.Redis.from_url(redis_url, protocol=2)
    keys = RedisKeys("equeue", ROOM)
    rng = random.Random(20240605)
    admissions: list[tuple[int, int]] = []
    peak = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def ticker(room: WaitingRoom) -> None:
        while not stop.is_set():
            result = room.tick(ROOM)
            with lock:
                admissions.extend(
                    (result.now_ms, ticket) for _, ticket in result.admitted
                )

    def watcher() -> None:
        while not stop.is_set():
            now_s, now_us = raw.time()
            now_ms = now_s * 1000 + now_us // 1000
            active = raw.zcount(keys.admitted, f"({now_ms}", "+inf")
            peak[0] = max(peak[0], active)

    tickets = {}
    for i in range(60):
        tickets[f"t{i}"] = rooms[rng.randrange(4)].join(ROOM, VisitorPass(f"t{i}"))
    threads = [threading.Thread(target=ticker, args=(room,)) for room in rooms]
    threads.append(threading.Thread(target=watcher))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and raw.zcard(keys.queue) > 0:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    for store in stores:
        store.close()

    queued_tickets = sorted(p.ticket for p in tickets.values() if p.ticket is not None)
    assert raw.zcard(keys.queue) == 0, "the racing tickers did not drain the queue"
    raw.close()
    # Every queued ticket admitted exactly once, and in ticket order across all
    # four tickers. Admission times come from Redis in whole milliseconds, so two
    # ticks inside one millisecond cannot be told apart; between milliseconds the
    # order must hold.
    assert sorted(t for _, t in admissions) == queued_tickets
    by_ms: dict[int, list[int]] = {}
    for now_ms, ticket in admissions:
        by_ms.setdefault(now_ms, []).append(ticket)
    groups = [by_ms[ms] for ms in sorted(by_ms)]
    for earlier, later in itertools.pairwise(groups):
        assert max(earlier) < min(later)
    assert peak[0] <= rules.capacity
