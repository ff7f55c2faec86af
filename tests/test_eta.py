"""The estimated wait."""

from __future__ import annotations

from equeue import RoomRules
from equeue.eta import estimate_wait_s

RULES = RoomRules(capacity=2, session_ttl_s=600)
EPOCH = 1_000_000 * 1000


def test_the_wait_follows_the_measured_rate():
    # 60 admissions in the last 5 minutes: one every 5 s.
    assert estimate_wait_s(10, 60, 1_000_000 + 300_000, EPOCH, RULES) == 50


def test_a_young_room_measures_over_its_own_age():
    # 10 admissions in the room's first 10 s: one per second.
    assert estimate_wait_s(5, 10, 1_000_000 + 10_000, EPOCH, RULES) == 5


def test_before_any_admission_the_slowest_possible_rate_is_assumed():
    # Two slots, each held 600 s: one admission per 300 s.
    assert estimate_wait_s(3, 0, 1_000_000 + 5_000, EPOCH, RULES) == 900


def test_admit_per_minute_caps_the_rate():
    rules = RoomRules(capacity=100, admit_per_minute=6)
    assert estimate_wait_s(6, 1000, 1_000_000 + 300_000, EPOCH, rules) == 60


def test_admitted_and_unknown_positions():
    assert estimate_wait_s(0, 5, 1_000_000, EPOCH, RULES) == 0
    assert estimate_wait_s(-1, 5, 1_000_000, EPOCH, RULES) is None
