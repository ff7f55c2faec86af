"""Settings from the environment: one room, several rooms, and clear errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from equeue import ConfigurationError, Settings
from equeue.config import _ROOM_FIELDS
from equeue.rules import RoomRules

SECRET = "s" * 40


def settings(**env: str) -> Settings:
    return Settings.from_env({"EQUEUE_SECRET": SECRET, **env})


def test_one_room_comes_from_equeue_room_and_the_rule_variables():
    s = settings(EQUEUE_ROOM="shop", EQUEUE_CAPACITY="7", EQUEUE_ADMIT_PER_MINUTE="30")

    assert list(s.rooms) == ["shop"]
    assert s.rooms["shop"].capacity == 7
    assert s.rooms["shop"].admit_per_minute == 30


def test_without_any_room_variable_there_is_one_default_room():
    assert list(settings().rooms) == ["default"]


def test_equeue_rooms_gives_each_room_its_own_rules_in_order():
    rooms = {
        "shop": {"capacity": 50, "session_ttl_s": 300},
        "tickets": {"capacity": 5, "admit_per_minute": 60},
        "vip": {"capacity": 1, "heartbeat_interval_s": 2, "heartbeat_timeout_s": 9.5},
    }

    s = settings(EQUEUE_ROOMS=json.dumps(rooms))

    assert list(s.rooms) == ["shop", "tickets", "vip"]
    assert s.default_room == "shop"
    assert s.rooms["shop"] == RoomRules(capacity=50, session_ttl_s=300)
    assert s.rooms["tickets"].admit_per_minute == 60
    assert s.rooms["vip"].heartbeat_timeout_s == 9.5


def test_fields_a_room_leaves_out_take_the_single_room_variables():
    s = settings(
        EQUEUE_ROOMS='{"a": {"capacity": 3}, "b": {}}',
        EQUEUE_CAPACITY="9",
        EQUEUE_HEARTBEAT_TIMEOUT="40",
    )

    assert (s.rooms["a"].capacity, s.rooms["a"].heartbeat_timeout_s) == (3, 40.0)
    assert (s.rooms["b"].capacity, s.rooms["b"].heartbeat_timeout_s) == (9, 40.0)


def test_admit_per_minute_null_turns_a_default_rate_off():
    s = settings(
        EQUEUE_ROOMS='{"a": {"admit_per_minute": null}}', EQUEUE_ADMIT_PER_MINUTE="5"
    )

    assert s.rooms["a"].admit_per_minute is None


def test_every_field_equeue_rooms_accepts_is_a_room_rule():
    assert set(_ROOM_FIELDS) <= {f.name for f in dataclasses.fields(RoomRules)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "EQUEUE_ROOMS is not valid JSON"),
        ("[]", "EQUEUE_ROOMS must be a non-empty JSON object"),
        ("{}", "EQUEUE_ROOMS must be a non-empty JSON object"),
        ('"shop"', "EQUEUE_ROOMS must be a non-empty JSON object"),
        ('{"shop": 5}', "EQUEUE_ROOMS room 'shop': the rules must be a JSON object"),
        ('{"bad name": {}}', "EQUEUE_ROOMS room 'bad name': room name must be"),
        (
            '{"shop": {"capcity": 5}}',
            "EQUEUE_ROOMS room 'shop': unknown field 'capcity'",
        ),
        (
            '{"shop": {"capacity": "5"}}',
            "EQUEUE_ROOMS room 'shop': field 'capacity' must be int, got '5'",
        ),
        (
            '{"shop": {"capacity": 2.5}}',
            "EQUEUE_ROOMS room 'shop': field 'capacity' must be int",
        ),
        (
            '{"shop": {"capacity": true}}',
            "EQUEUE_ROOMS room 'shop': field 'capacity' must be int, got True",
        ),
        (
            '{"shop": {"session_ttl_s": null}}',
            "EQUEUE_ROOMS room 'shop': field 'session_ttl_s' must be int or float",
        ),
        (
            '{"shop": {"capacity": 0}}',
            "EQUEUE_ROOMS room 'shop': capacity must be a positive integer",
        ),
        (
            '{"shop": {"heartbeat_timeout_s": 1}}',
            "EQUEUE_ROOMS room 'shop': heartbeat_timeout_s must be longer",
        ),
    ],
)
def test_a_bad_equeue_rooms_is_an_error_naming_the_variable_and_field(raw, expected):
    with pytest.raises(ConfigurationError) as caught:
        settings(EQUEUE_ROOMS=raw)

    assert expected in str(caught.value)


def test_equeue_room_and_equeue_rooms_together_are_refused():
    with pytest.raises(
        ConfigurationError, match=r"either EQUEUE_ROOM \(.*EQUEUE_ROOMS"
    ):
        settings(EQUEUE_ROOM="shop", EQUEUE_ROOMS='{"shop": {}}')
