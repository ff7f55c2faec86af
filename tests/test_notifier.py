"""Which connected visitor gets which update."""

from __future__ import annotations

from equeue.notifier import DEEP_INTERVAL_MS, NEAR_HEAD, PositionNotifier
from equeue.stores.base import Placement, RoomSnapshot

EPOCH = 1_000


def placement(visitor_id, status, position, now_ms=0, ticket=None, epoch=EPOCH):
    return Placement(visitor_id, status, position, ticket, 10, epoch, now_ms)


def snapshot(*placements, epoch=EPOCH):
    return RoomSnapshot("r", 0, epoch, 10, 1, 0, 0, 0, 0, placements)


def test_only_changed_positions_are_sent():
    notifier = PositionNotifier()
    notifier.attach("s1", "r", "a", placement("a", "queued", 3, ticket=5))
    notifier.attach("s2", "r", "b", placement("b", "queued", 4, ticket=6))

    to_send, to_restore = notifier.plan(
        snapshot(placement("a", "queued", 3), placement("b", "queued", 2))
    )

    assert [p.visitor_id for p in to_send] == ["b"] and to_restore == []


def test_deep_in_the_queue_updates_are_throttled_but_admission_is_not():
    notifier = PositionNotifier()
    deep = NEAR_HEAD + 50
    notifier.attach("s1", "r", "a", placement("a", "queued", deep, ticket=5))

    soon, _ = notifier.plan(snapshot(placement("a", "queued", deep - 1, now_ms=10)))
    later, _ = notifier.plan(
        snapshot(placement("a", "queued", deep - 1, now_ms=DEEP_INTERVAL_MS))
    )
    admitted, _ = notifier.plan(snapshot(placement("a", "admitted", 0, now_ms=11)))

    assert soon == [] and len(later) == 1 and len(admitted) == 1


def test_a_waiter_the_store_no_longer_knows_is_checked_for_a_restore():
    notifier = PositionNotifier()
    notifier.attach("s1", "r", "a", placement("a", "queued", 1, ticket=5))
    notifier.attach("s2", "r", "b", placement("b", "queued", 2, ticket=6))
    notifier.attach("s3", "r", "c", placement("c", "admitted", 0))

    to_send, to_restore = notifier.plan(
        snapshot(
            placement("a", "unknown", None),
            placement("b", "queued", 1),
            placement("c", "unknown", None),
        )
    )

    assert to_restore == [("a", 5)]
    assert [(p.visitor_id, p.status) for p in to_send] == [
        ("b", "queued"),
        ("c", "unknown"),
    ]
    assert notifier.ticket_of("r", "a") == 5


def test_a_visitor_stays_watched_while_one_of_their_tabs_is_connected():
    notifier = PositionNotifier()
    notifier.attach("tab1", "r", "a", placement("a", "queued", 1, ticket=5))
    notifier.attach("tab2", "r", "a", placement("a", "queued", 1, ticket=5))

    assert notifier.detach("tab1") is not None
    assert notifier.visitors("r") == ["a"]
    assert notifier.detach("tab2") is None
    assert notifier.visitors("r") == []
