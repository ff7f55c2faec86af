"""Validation of what clients send, and the payloads the server sends back.

Shared by every adapter, so that a bad payload gets the same ``error`` event with
the same reason on Flask and on Starlette.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InvalidPayload
from .rules import ROOM_NAME_PATTERN

__all__ = [
    "MAX_EVENT_BYTES",
    "RegisterRequest",
    "error_payload",
    "parse_heartbeat",
    "parse_register",
]

#: The Socket.IO servers refuse bigger messages outright.
MAX_EVENT_BYTES = 16 * 1024
_MAX_PASS_LENGTH = 4096


@dataclass(frozen=True)
class RegisterRequest:
    room: str
    visitor_pass: str | None


def parse_register(payload: Any) -> RegisterRequest:
    """Validate a ``register`` payload: ``{room: str, pass?: str}``.

    :raises InvalidPayload: with reason ``bad_payload`` or ``payload_too_large``.
    """
    if not isinstance(payload, dict):
        raise InvalidPayload(
            "bad_payload",
            f"register expects a JSON object, got {type(payload).__name__}",
        )
    room = payload.get("room")
    if not isinstance(room, str):
        raise InvalidPayload("bad_payload", "register needs a string field 'room'")
    if len(room) > 64 or not ROOM_NAME_PATTERN.match(room):
        raise InvalidPayload(
            "bad_payload", "room must be 1-64 characters of A-Z a-z 0-9 _ -"
        )
    visitor_pass = payload.get("pass")
    if visitor_pass is not None and not isinstance(visitor_pass, str):
        raise InvalidPayload("bad_payload", "'pass' must be a string when given")
    if visitor_pass is not None and len(visitor_pass) > _MAX_PASS_LENGTH:
        raise InvalidPayload(
            "payload_too_large", f"'pass' is longer than {_MAX_PASS_LENGTH} characters"
        )
    return RegisterRequest(room=room, visitor_pass=visitor_pass or None)


def parse_heartbeat(payload: Any) -> None:
    """Validate a ``heartbeat`` payload: nothing, or a JSON object.

    :raises InvalidPayload: with reason ``bad_payload``.
    """
    if payload is not None and not isinstance(payload, dict):
        raise InvalidPayload(
            "bad_payload",
            f"heartbeat expects a JSON object, got {type(payload).__name__}",
        )


def error_payload(reason: str, message: str) -> dict[str, str]:
    """Return the body of an ``error`` event."""
    return {"reason": reason, "message": message}
