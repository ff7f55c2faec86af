"""The exception tree of equeue: one base class and a few leaves."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "EqueueError",
    "InvalidPayload",
    "StoreError",
    "TokenError",
]


class EqueueError(Exception):
    """Base class of every error equeue raises on purpose."""


class ConfigurationError(EqueueError):
    """The waiting room was configured in a way that cannot work.

    Raised at start-up: a bad store URL, a missing secret outside debug mode,
    room rules that contradict each other, a missing install extra.
    """


class StoreError(EqueueError):
    """The queue store could not do what was asked (connection lost, bad reply)."""


class TokenError(EqueueError):
    """A visitor pass or an admission token was missing, forged, expired or
    meant for another room.

    ``reason`` is a short stable code (``expired``, ``invalid``, ``wrong_room``,
    ``missing``) that adapters put on the wire; the message is for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidPayload(EqueueError):
    """A Socket.IO event or HTTP request carried a payload equeue refuses.

    ``reason`` is a stable code sent to the client in the ``error`` event.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
