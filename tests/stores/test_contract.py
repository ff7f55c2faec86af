"""The QueueStore contract, run unchanged over every backend in ``BACKENDS``."""

from __future__ import annotations

import pytest

from equeue import ConfigurationError, RoomRules

from .conftest import Backend

RULES = RoomRules(
    capacity=2,
    session_ttl_s=60,
    heartbeat_interval_s=1,
    heartbeat_timeout_s=10,
)


def fill(backend: Backend, room: str = "r", rules: RoomRules = RULES) -> None:
    """Take every slot of the room, so that later joins have to queue."""
    for i in range(rules.capacity):
        assert backend.store.join(room, f"in{i}", rules).status == "admitted"


def test_join_gives_increasing_tickets_and_positions_in_arrival_order(backend: Backend):
    fill(backend)
    placements = [backend.store.join("r", f"v{i}", RULES) for i in range(5)]

    assert [p.status for p in placements] == ["queued"] * 5
    assert [p.position for p in placements] == [1, 2, 3, 4, 5]
    tickets = [p.ticket for p in placements]
    assert tickets == sorted(tickets) and len(set(tickets)) == 5
    assert placements[-1].queue_length == 5


def test_joining_again_is_idempotent(backend: Backend):
    fill(backend)
    first = backend.store.join("r", "a", RULES)
    backend.store.join("r", "b", RULES)
    again = backend.store.join("r", "a", RULES)

    assert again.ticket == first.ticket
    assert again.position == 1
    assert backend.store.snapshot("r").queue_length == 2


def test_visitor_is_admitted_at_once_while_the_queue_is_empty_and_there_is_room(
    backend: Backend,
):
    first = backend.store.join("r", "a", RULES)
    second = backend.store.join("r", "b", RULES)
    third = backend.store.join("r", "c", RULES)

    assert (first.status, first.position) == ("admitted", 0)
    assert first.admitted_until_ms == first.now_ms + 60_000
    assert second.status == "admitted"
    assert (third.status, third.position) == ("queued", 1)
    assert backend.store.join("r", "a", RULES).status == "admitted"


def test_no_immediate_admission_past_a_waiting_visitor(backend: Backend):
    fill(backend)
    backend.store.join("r", "waiting", RULES)
    backend.store.leave("r", "in0")

    # A slot is free, but someone is waiting: the newcomer must queue behind them.
    late = backend.store.join("r", "late", RULES)
    assert (late.status, late.position) == ("queued", 2)


def test_tick_admits_from_the_head_in_ticket_order_up_to_capacity(backend: Backend):
    fill(backend)
    for i in range(4):
        backend.store.join("r", f"v{i}", RULES)
    backend.store.leave("r", "in0")
    backend.store.leave("r", "in1")

    result = backend.store.tick("r", RULES)

    assert [v for v, _ in result.admitted] == ["v0", "v1"]
    assert result.active == 2 and result.queue_length == 2
    snapshot = backend.store.snapshot("r", ["v0", "v2", "v3"])
    assert [p.status for p in snapshot.placements] == ["admitted", "queued", "queued"]
    assert [p.position for p in snapshot.placements] == [0, 1, 2]
    assert backend.store.tick("r", RULES).admitted == []


def test_capacity_is_never_exceeded_by_repeated_ticks(backend: Backend):
    for i in range(10):
        backend.store.join("r", f"v{i}", RULES)
    for _ in range(5):
        result = backend.store.tick("r", RULES)
        assert result.active <= RULES.capacity
    assert backend.store.snapshot("r").active == RULES.capacity


def test_admit_per_minute_caps_admissions_in_a_rolling_minute(backend: Backend):
    rules = RoomRules(
        capacity=10,
        admit_per_minute=3,
        session_ttl_s=600,
        heartbeat_interval_s=1,
        heartbeat_timeout_s=1000,
    )
    placements = [backend.store.join("r", f"v{i}", rules) for i in range(6)]
    assert [p.status for p in placements].count("admitted") == 3

    assert backend.store.tick("r", rules).admitted == []
    backend.clock.advance(30)
    assert backend.store.tick("r", rules).admitted == []
    backend.clock.advance(31)
    assert [v for v, _ in backend.store.tick("r", rules).admitted] == ["v3", "v4", "v5"]


def test_silent_waiter_is_evicted_after_the_timeout_and_not_before(backend: Backend):
    fill(backend)
    backend.store.join("r", "silent", RULES)
    backend.store.join("r", "beating", RULES)

    backend.clock.advance(6)
    assert backend.store.heartbeat("r", "beating", RULES).status == "queued"
    backend.clock.advance(4)
    assert backend.store.tick("r", RULES).evicted == []

    backend.clock.advance(0.5)
    result = backend.store.tick("r", RULES)

    assert result.evicted == ["silent"]
    snapshot = backend.store.snapshot("r", ["silent", "beating"])
    assert snapshot.placements[0].status == "unknown"
    assert snapshot.placements[1].position == 1
    assert snapshot.evicted_total == 1


def test_eviction_per_tick_is_bounded(backend: Backend):
    rules = RoomRules(
        capacity=1,
        heartbeat_interval_s=1,
        heartbeat_timeout_s=5,
        max_evictions_per_tick=3,
    )
    fill(backend, rules=rules)
    for i in range(7):
        backend.store.join("r", f"v{i}", rules)
    backend.clock.advance(6)

    assert len(backend.store.tick("r", rules).evicted) == 3
    assert len(backend.store.tick("r", rules).evicted) == 3
    assert len(backend.store.tick("r", rules).evicted) == 1


def test_ended_session_frees_its_slot_and_renew_extends_it(backend: Backend):
    fill(backend)
    backend.store.join("r", "next", RULES)

    for _ in range(5):
        backend.clock.advance(10)
        backend.store.heartbeat("r", "next", RULES)
    renewed = backend.store.renew("r", "in0", RULES)
    assert renewed == backend.clock.now + 60_000
    assert backend.store.renew("r", "next", RULES) is None

    backend.clock.advance(10)
    backend.store.heartbeat("r", "next", RULES)
    backend.clock.advance(1)
    result = backend.store.tick("r", RULES)

    assert result.expired == 1
    assert result.admitted[0][0] == "next"
    assert backend.store.snapshot("r", ["in0"]).placements[0].status == "admitted"
    assert backend.store.snapshot("r", ["in1"]).placements[0].status == "unknown"


def test_leave_gives_back_a_place_or_a_slot(backend: Backend):
    fill(backend)
    backend.store.join("r", "a", RULES)
    backend.store.join("r", "b", RULES)

    assert backend.store.leave("r", "a") is True
    assert backend.store.leave("r", "a") is False
    assert backend.store.join("r", "b", RULES).position == 1
    assert backend.store.leave("r", "in0") is True
    assert backend.store.snapshot("r").active == 1


def test_snapshot_reports_each_visitor_in_one_call(backend: Backend):
    fill(backend)
    backend.store.join("r", "q", RULES)

    snapshot = backend.store.snapshot("r", ["in0", "q", "stranger"])

    assert [(p.visitor_id, p.status, p.position) for p in snapshot.placements] == [
        ("in0", "admitted", 0),
        ("q", "queued", 1),
        ("stranger", "unknown", None),
    ]
    assert (snapshot.queue_length, snapshot.active, snapshot.admitted_total) == (
        1,
        2,
        2,
    )
    assert snapshot.tickets_issued == 3


def test_heartbeat_history_is_newest_first_and_capped(backend: Backend):
    fill(backend)
    backend.store.join("r", "a", RULES)
    for _ in range(25):
        backend.clock.advance(1)
        backend.store.heartbeat("r", "a", RULES)

    beats = backend.store.heartbeats("r", "a")

    assert len(beats) == 20
    assert beats[0] == backend.clock.now
    assert beats == sorted(beats, reverse=True)
    assert backend.store.heartbeats("r", "nobody") == []


def test_heartbeat_of_an_unknown_visitor_changes_no_queue(backend: Backend):
    fill(backend)
    placement = backend.store.heartbeat("r", "ghost", RULES)

    assert placement.status == "unknown"
    assert backend.store.snapshot("r").queue_length == 0


def test_after_data_loss_a_valid_claim_restores_the_old_order(backend: Backend):
    fill(backend)
    a = backend.store.join("r", "a", RULES)
    b = backend.store.join("r", "b", RULES)

    backend.wipe()
    backend.clock.advance(1)
    fill(backend)
    newcomer = backend.store.join("r", "new", RULES)
    restored_b = backend.store.join("r", "b", RULES, claim=b.ticket)
    restored_a = backend.store.join("r", "a", RULES, claim=a.ticket)

    assert restored_a.restored and restored_b.restored
    assert newcomer.epoch > a.epoch
    snapshot = backend.store.snapshot("r", ["a", "b", "new"])
    assert [p.position for p in snapshot.placements] == [1, 2, 3]
    # The counter is past every restored ticket.
    assert backend.store.join("r", "later", RULES).ticket > b.ticket


def test_a_claim_of_a_visitor_who_left_cannot_jump_the_queue(backend: Backend):
    fill(backend)
    a = backend.store.join("r", "a", RULES)
    backend.store.join("r", "b", RULES)
    backend.store.leave("r", "a")

    back = backend.store.join("r", "a", RULES, claim=a.ticket)

    assert not back.restored
    assert back.position == 2 and back.ticket > a.ticket


def test_a_restored_visitor_who_leaves_cannot_be_restored_again(backend: Backend):
    fill(backend)
    a = backend.store.join("r", "a", RULES)
    backend.wipe()
    backend.clock.advance(1)
    fill(backend)
    backend.store.join("r", "b", RULES)

    first = backend.store.join("r", "a", RULES, claim=a.ticket)
    backend.store.leave("r", "a")
    second = backend.store.join("r", "a", RULES, claim=a.ticket)

    assert first.restored and first.position == 1
    assert not second.restored and second.position == 2


def test_rooms_are_independent(backend: Backend):
    fill(backend, "one")
    backend.store.join("one", "a", RULES)

    other = backend.store.join("two", "a", RULES)

    assert other.status == "admitted"
    assert backend.store.snapshot("one").queue_length == 1


def test_a_bad_room_name_is_refused(backend: Backend):
    with pytest.raises(ConfigurationError):
        backend.store.join("no spaces {here}", "a", RULES)


def test_after_a_rollback_to_an_older_snapshot_a_lost_join_is_restored(
    backend: Backend,
):
    fill(backend)
    backend.store.join("r", "a", RULES)
    saved = backend.save()
    backend.clock.advance(1)
    lost = backend.store.join("r", "lost", RULES)

    backend.rollback(saved)
    backend.clock.advance(1)
    newcomer = backend.store.join("r", "new", RULES)
    back = backend.store.join("r", "lost", RULES, claim=lost.ticket)

    assert back.restored and back.ticket == lost.ticket
    assert newcomer.ticket != lost.ticket
    snapshot = backend.store.snapshot("r", ["a", "lost", "new"])
    assert [p.position for p in snapshot.placements] == [1, 2, 3]


def test_an_evicted_visitor_cannot_claim_the_old_place(backend: Backend):
    fill(backend)
    silent = backend.store.join("r", "silent", RULES)
    backend.store.join("r", "other", RULES)
    backend.clock.advance(11)
    backend.store.heartbeat("r", "other", RULES)
    assert backend.store.tick("r", RULES).evicted == ["silent"]

    back = backend.store.join("r", "silent", RULES, claim=silent.ticket)

    assert not back.restored and back.position == 2


def test_restore_only_gives_back_a_lost_ticket_and_nothing_else(backend: Backend):
    fill(backend)
    a = backend.store.join("r", "a", RULES)
    backend.store.join("r", "b", RULES)
    backend.store.leave("r", "b")

    backend.wipe()
    backend.clock.advance(1)
    fill(backend)
    lost = backend.store.join("r", "a", RULES, claim=a.ticket, restore_only=True)
    stranger = backend.store.join("r", "c", RULES, restore_only=True)

    assert (lost.status, lost.position, lost.restored) == ("queued", 1, True)
    assert (stranger.status, stranger.position) == ("unknown", None)
    assert backend.store.snapshot("r").queue_length == 1


def test_tickets_never_fall_behind_the_clock(backend: Backend):
    fill(backend)
    first = backend.store.join("r", "a", RULES)
    backend.clock.advance(5)
    second = backend.store.join("r", "b", RULES)

    assert second.ticket >= backend.clock.now * 1000 > first.ticket
    assert backend.store.snapshot("r").tickets_issued == 4


def test_after_a_loss_admissions_pause_until_waiters_can_get_their_tickets_back(
    backend: Backend,
):
    rules = RoomRules(capacity=1, heartbeat_interval_s=1, heartbeat_timeout_s=60)
    fill(backend, rules=rules)
    held_elsewhere = backend.store.join("r", "elsewhere", rules)
    old_epoch = held_elsewhere.epoch

    backend.wipe()
    backend.clock.advance(1)
    # A process that knew the old epoch notices the loss: a newcomer is not let
    # in at once, and ticks admit nobody during the grace period.
    newcomer = backend.store.join("r", "new", rules, known_epoch=old_epoch)
    first_tick = backend.store.tick("r", rules, known_epoch=old_epoch)
    restored = backend.store.join(
        "r", "elsewhere", rules, claim=held_elsewhere.ticket, restore_only=True
    )
    backend.clock.advance(rules.restore_grace_s - 0.5)
    during = backend.store.tick("r", rules, known_epoch=newcomer.epoch)
    backend.clock.advance(1)
    after = backend.store.tick("r", rules, known_epoch=newcomer.epoch)

    assert newcomer.status == "queued" and first_tick.admitted == []
    assert restored.restored and during.admitted == []
    assert [v for v, _ in after.admitted] == ["elsewhere"]


def test_a_process_that_never_saw_the_room_does_not_pause_it(backend: Backend):
    placement = backend.store.join("r", "a", RULES, known_epoch=None)
    again = backend.store.join("r", "b", RULES, known_epoch=placement.epoch)

    assert placement.status == again.status == "admitted"
