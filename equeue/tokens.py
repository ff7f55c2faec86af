"""Visitor passes and admission tokens.

Both are JWTs signed with HS256 through PyJWT. The admission token is the one the
edge Worker also verifies, so it is signed with the configured secret as it is and
carries exactly ``sub`` (visitor id), ``aud`` (room), ``iat`` and ``exp``. The visitor
pass is signed with a key derived from the same secret, so that neither kind of token
can ever be passed off as the other.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt

from .errors import ConfigurationError, TokenError
from .rules import check_room_name

__all__ = [
    "ADMISSION_COOKIE_PREFIX",
    "MIN_SECRET_LENGTH",
    "PASS_COOKIE",
    "Admission",
    "TokenSigner",
    "VisitorPass",
    "admission_cookie_name",
]

logger = logging.getLogger(__name__)

#: The visitor pass cookie (HttpOnly); the splash page also gets a copy for the socket.
PASS_COOKIE = "equeue_pass"
#: Admission cookies are per room: ``equeue_admission_<room>``.
ADMISSION_COOKIE_PREFIX = "equeue_admission_"
#: HS256 keys shorter than this are refused (RFC 7518 asks for at least 256 bits).
MIN_SECRET_LENGTH = 32

_ALGORITHM = "HS256"
_PASS_AUDIENCE = "equeue:visitor-pass"
_PASS_KEY_LABEL = b"equeue visitor pass v1"
_MAX_TOKEN_LENGTH = 4096


def admission_cookie_name(room: str) -> str:
    """Return the name of the cookie that holds the admission token for ``room``."""
    return ADMISSION_COOKIE_PREFIX + check_room_name(room)


@dataclass(frozen=True)
class VisitorPass:
    """What a verified visitor pass says.

    ``ticket`` and ``epoch`` are set once the visitor has joined a queue; they let
    a visitor reclaim their place after the store lost its data, until
    ``ticket_expires_at`` (Unix seconds).
    """

    visitor_id: str
    room: str | None = None
    ticket: int | None = None
    epoch: int | None = None
    ticket_expires_at: float | None = None

    def ticket_claim(self, room: str, now: float) -> int | None:
        """Return the ticket this pass vouches for in ``room``, while it does."""
        if (
            self.room != room
            or self.ticket is None
            or self.epoch is None
            or self.ticket_expires_at is None
            or self.ticket_expires_at <= now
        ):
            return None
        return self.ticket


@dataclass(frozen=True)
class Admission:
    """What a verified admission token says: ``visitor_id`` may use ``room``
    until ``expires_at`` (Unix seconds)."""

    visitor_id: str
    room: str
    issued_at: int
    expires_at: int


class TokenSigner:
    """Issues and verifies visitor passes and admission tokens.

    :param secret: the shared secret, at least 32 characters. The edge Worker
        must be given the same value.
    :param pass_ttl_s: how long a visitor pass (the identity) stays valid.
    :param leeway_s: clock skew tolerated when checking ``exp`` and ``iat``.
    :param clock: returns the current Unix time in seconds; tests inject one.
    :raises ConfigurationError: if the secret is missing or too short.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        pass_ttl_s: float = 7 * 24 * 3600,
        leeway_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"the equeue secret must be at least {MIN_SECRET_LENGTH} characters "
                f"long, got {len(key)}; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        self._admission_key = key
        self._pass_key = hmac.new(key, _PASS_KEY_LABEL, hashlib.sha256).digest()
        self._pass_ttl_s = pass_ttl_s
        self._leeway_s = leeway_s
        self._clock = clock

    def now(self) -> float:
        """Return the signer's current Unix time in seconds."""
        return self._clock()

    @staticmethod
    def new_visitor_id() -> str:
        """Return a fresh random visitor id (22 URL-safe characters)."""
        return secrets.token_urlsafe(16)

    def issue_pass(
        self,
        visitor_id: str,
        *,
        room: str | None = None,
        ticket: int | None = None,
        epoch: int | None = None,
        ticket_ttl_s: float | None = None,
    ) -> str:
        """Return a signed visitor pass for ``visitor_id``.

        With ``room``, ``ticket``, ``epoch`` and ``ticket_ttl_s`` it also vouches
        for the visitor's place in that room for ``ticket_ttl_s`` seconds.
        """
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": visitor_id,
            "aud": _PASS_AUDIENCE,
            "iat": now,
            "exp": now + int(self._pass_ttl_s),
        }
        if room is not None and ticket is not None and epoch is not None:
            claims["room"] = room
            claims["tkt"] = int(ticket)
            claims["ep"] = int(epoch)
            claims["tkx"] = now + int(ticket_ttl_s or 0)
        return jwt.encode(claims, self._pass_key, algorithm=_ALGORITHM)

    def read_pass(self, visitor_pass: object) -> VisitorPass:
        """Verify a visitor pass and return what it says.

        :raises TokenError: if it is not a string, is forged, or has expired.
        """
        claims = self._decode(visitor_pass, self._pass_key, _PASS_AUDIENCE, "pass")
        ticket, epoch, ticket_exp = (
            claims.get("tkt"),
            claims.get("ep"),
            claims.get("tkx"),
        )
        room = claims.get("room")
        if not all(
            value is None or (isinstance(value, int) and not isinstance(value, bool))
            for value in (ticket, epoch, ticket_exp)
        ) or not (room is None or isinstance(room, str)):
            raise TokenError("invalid", "visitor pass has malformed ticket claims")
        return VisitorPass(
            visitor_id=claims["sub"],
            room=room,
            ticket=ticket,
            epoch=epoch,
            ticket_expires_at=float(ticket_exp) if ticket_exp is not None else None,
        )

    def issue_admission(self, visitor_id: str, room: str, expires_at: float) -> str:
        """Return an admission token letting ``visitor_id`` into ``room`` until
        ``expires_at`` (Unix seconds)."""
        claims = {
            "sub": visitor_id,
            "aud": check_room_name(room),
            "iat": int(self._clock()),
            "exp": int(expires_at),
        }
        return jwt.encode(claims, self._admission_key, algorithm=_ALGORITHM)

    def read_admission(self, admission_token: object, room: str) -> Admission:
        """Verify an admission token for ``room`` and return what it says.

        :raises TokenError: if it is missing, forged, expired, issued in the
            future or meant for another room.
        """
        claims = self._decode(admission_token, self._admission_key, room, "admission")
        return Admission(
            visitor_id=claims["sub"],
            room=room,
            issued_at=claims["iat"],
            expires_at=claims["exp"],
        )

    def _decode(self, token: object, key: bytes, audience: str, kind: str) -> Any:
        if token is None or token == "":
            raise TokenError("missing", f"no {kind} token was given")
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
            raise TokenError(
                "invalid",
                f"{kind} token must be a string of at most "
                f"{_MAX_TOKEN_LENGTH} characters",
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=audience,
                options={
                    "require": ["sub", "aud", "iat", "exp"],
                    # Expiry is checked below against the injectable clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenError("wrong_room", f"{kind} token is for another room") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("invalid", f"{kind} token is not valid: {exc}") from exc

        now = self._clock()
        sub, iat, exp = claims.get("sub"), claims.get("iat"), claims.get("exp")
        if not isinstance(sub, str) or not 1 <= len(sub) <= 64:
            raise TokenError("invalid", f"{kind} token has a malformed subject")
        if not _is_int(iat) or not _is_int(exp):
            raise TokenError("invalid", f"{kind} token has non-integer times")
        if iat > now + self._leeway_s:
            raise TokenError("invalid", f"{kind} token was issued in the future")
        if exp <= now - self._leeway_s:
            raise TokenError("expired", f"{kind} token has expired")
        return claims


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
