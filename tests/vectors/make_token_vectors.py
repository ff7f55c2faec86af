"""Admission token test vectors shared by the Python checks and the edge Worker tests.

Run as a script to write them as JSON::

    python tests/vectors/make_token_vectors.py [OUT.json]

(default ``tests/vectors/admission_vectors.json``), or import it and call
:func:`build_vectors`. Every vector names the outcome ``TokenSigner.read_admission``
must reach at ``now`` with ``clock_skew_s`` of leeway: accepted, or refused with the
``TokenError.reason`` given. ``tests/test_token_vectors.py`` checks them against the
Python side, ``cloudflare/test/`` against the Worker running in workerd.

Tokens the Python library can mint are minted by it (``TokenSigner``); the forged ones
are assembled by hand or with PyJWT, the way an attacker would. Times are relative to
the moment of generation, with margins of at least ten seconds on either side of every
boundary, so a Worker checking them against its real clock right after generation
reaches the same verdicts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:
    from equeue.tokens import TokenSigner, admission_cookie_name
except ImportError:  # Run from a checkout without the package installed.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from equeue.tokens import TokenSigner, admission_cookie_name

__all__ = ["DEFAULT_OUTPUT", "FORMAT_VERSION", "TokenVector", "build_vectors", "main"]

logger = logging.getLogger(__name__)

#: Where the script writes when no path is given (ignored by git: made at test time).
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "admission_vectors.json"
#: Bumped when the JSON layout changes, so stale readers fail loudly.
FORMAT_VERSION = 1

# Test-only values; neither secret protects anything.
SECRET = "equeue-test-vectors-secret-0123456789-abcdefghij"
WRONG_SECRET = "equeue-test-vectors-other-secret-9876543210-zyxw"
ROOM = "spring-sale"
OTHER_ROOM = "winter-sale"
VISITOR_ID = "vNq3xZb0TkqVw1yH2pL8dA"
CLOCK_SKEW_S = 30

_LIFETIME_S = 600
# Far enough inside or outside the skew window that a few seconds between generating
# the vectors and checking them change nothing.
_INSIDE_SKEW_S = 10
_OUTSIDE_SKEW_S = 120
_MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class TokenVector:
    """One admission token and what verifying it for :data:`ROOM` must give.

    ``reason`` is ``None`` when the token is accepted, else a ``TokenError`` reason.
    """

    name: str
    description: str
    admission_token: str
    accepted: bool
    reason: str | None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: Any) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _hs256(signing_input: str, key: str) -> str:
    digest = hmac.new(key.encode(), signing_input.encode("ascii"), hashlib.sha256)
    return _b64url(digest.digest())


def _assemble(header: Any, claims: Any, key: str = SECRET) -> str:
    """Sign any header and claims with HMAC-SHA256, whatever the header says."""
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    return f"{signing_input}.{_hs256(signing_input, key)}"


def _assemble_raw(header: Any, payload_json: str, key: str = SECRET) -> str:
    """Like :func:`_assemble`, with the payload JSON written out by hand."""
    signing_input = f"{_json_segment(header)}.{_b64url(payload_json.encode())}"
    return f"{signing_input}.{_hs256(signing_input, key)}"


def _hs512_token(claims: dict[str, Any]) -> str:
    # Built by hand: PyJWT would warn that a 48-byte key is short for HS512, and the
    # point here is only that a correct signature of another algorithm is refused.
    signing_input = (
        f"{_json_segment({'alg': 'HS512', 'typ': 'JWT'})}.{_json_segment(claims)}"
    )
    digest = hmac.new(SECRET.encode(), signing_input.encode("ascii"), hashlib.sha512)
    return f"{signing_input}.{_b64url(digest.digest())}"


def _flip_first_character(segment: str) -> str:
    # The first character carries six full bits, so a different one always changes
    # the decoded bytes and never just the padding bits.
    replacement = "B" if segment[0] != "B" else "C"
    return replacement + segment[1:]


def build_vectors(now: int) -> list[TokenVector]:
    """Return the vectors for a verifier whose clock reads ``now`` (Unix seconds)."""
    signer = TokenSigner(SECRET, leeway_s=CLOCK_SKEW_S, clock=lambda: now)
    valid = signer.issue_admission(VISITOR_ID, ROOM, now + _LIFETIME_S)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": VISITOR_ID, "aud": ROOM, "iat": now, "exp": now + _LIFETIME_S}

    def minted_at(issued_at: int, expires_at: int, room: str = ROOM) -> str:
        return TokenSigner(
            SECRET, leeway_s=CLOCK_SKEW_S, clock=lambda: issued_at
        ).issue_admission(VISITOR_ID, room, expires_at)

    def without(name: str) -> dict[str, Any]:
        return {key: value for key, value in claims.items() if key != name}

    header_segment, payload_segment, signature_segment = valid.split(".")
    tampered_claims = {**claims, "sub": "someone-else"}

    accepted = [
        ("valid", "minted by TokenSigner.issue_admission", valid),
        (
            "expired_within_skew",
            f"exp {_INSIDE_SKEW_S} s ago, inside the {CLOCK_SKEW_S} s skew",
            minted_at(now - _LIFETIME_S, now - _INSIDE_SKEW_S),
        ),
        (
            "future_iat_within_skew",
            f"issued {_INSIDE_SKEW_S} s in the future (origin clock ahead)",
            minted_at(now + _INSIDE_SKEW_S, now + _LIFETIME_S),
        ),
        (
            "no_typ_header",
            "header without typ",
            _assemble({"alg": "HS256"}, claims),
        ),
        (
            "extra_claims",
            "an unknown extra claim is ignored, as PyJWT does",
            _assemble(header, {**claims, "note": "hello"}),
        ),
        (
            "aud_list_with_room",
            "aud as a list naming the room: PyJWT (without strict_aud) accepts it",
            _assemble(header, {**claims, "aud": [ROOM]}),
        ),
        (
            "padded_segments",
            "base64url segments with their = padding, which PyJWT accepts",
            _padded_token(header, claims),
        ),
    ]

    refused: list[tuple[str, str, str, str]] = [
        (
            "tampered_payload",
            "payload changed, signature kept",
            f"{header_segment}.{_json_segment(tampered_claims)}.{signature_segment}",
            "invalid",
        ),
        (
            "tampered_signature",
            "first character of the signature changed",
            f"{header_segment}.{payload_segment}."
            f"{_flip_first_character(signature_segment)}",
            "invalid",
        ),
        (
            "truncated_signature",
            "signature cut short",
            f"{header_segment}.{payload_segment}.{signature_segment[:-4]}",
            "invalid",
        ),
        (
            "expired",
            f"exp {_OUTSIDE_SKEW_S} s ago, beyond the skew",
            minted_at(now - _LIFETIME_S, now - _OUTSIDE_SKEW_S),
            "expired",
        ),
        (
            "future_iat_beyond_skew",
            f"issued {_OUTSIDE_SKEW_S} s in the future",
            minted_at(now + _OUTSIDE_SKEW_S, now + _OUTSIDE_SKEW_S + _LIFETIME_S),
            "invalid",
        ),
        (
            "wrong_room",
            "minted for another room",
            minted_at(now, now + _LIFETIME_S, OTHER_ROOM),
            "wrong_room",
        ),
        (
            "wrong_room_and_expired",
            "the audience is checked before the times",
            minted_at(now - _LIFETIME_S, now - _OUTSIDE_SKEW_S, OTHER_ROOM),
            "wrong_room",
        ),
        (
            "aud_list_without_room",
            "aud as a list of other rooms",
            _assemble(header, {**claims, "aud": [OTHER_ROOM, "x"]}),
            "wrong_room",
        ),
        (
            "aud_number",
            "aud neither a string nor a list",
            _assemble(header, {**claims, "aud": 7}),
            "wrong_room",
        ),
        (
            "aud_empty",
            "an empty aud counts as missing",
            _assemble(header, {**claims, "aud": ""}),
            "invalid",
        ),
        (
            "wrong_secret",
            "signed with another secret",
            TokenSigner(WRONG_SECRET, clock=lambda: now).issue_admission(
                VISITOR_ID, ROOM, now + _LIFETIME_S
            ),
            "invalid",
        ),
        (
            "visitor_pass",
            "a visitor pass from the same signer is no admission token",
            signer.issue_pass(VISITOR_ID),
            "invalid",
        ),
        (
            "alg_none",
            "alg none without a signature",
            f"{_json_segment({'alg': 'none', 'typ': 'JWT'})}.{payload_segment}.",
            "invalid",
        ),
        (
            "alg_none_signed",
            "alg none with a valid HS256 signature of the same bytes",
            _assemble({"alg": "none", "typ": "JWT"}, claims),
            "invalid",
        ),
        (
            "alg_hs512_same_secret",
            "a correct HS512 signature with the same secret",
            _hs512_token(claims),
            "invalid",
        ),
        (
            "alg_rs256_header",
            "header says RS256, signed with HMAC and the secret (key confusion)",
            _assemble({"alg": "RS256", "typ": "JWT"}, claims),
            "invalid",
        ),
        (
            "alg_lowercase",
            "alg hs256: algorithm names are case-sensitive",
            _assemble({"alg": "hs256", "typ": "JWT"}, claims),
            "invalid",
        ),
        (
            "alg_missing",
            "header without alg",
            _assemble({"typ": "JWT"}, claims),
            "invalid",
        ),
        (
            "kid_not_string",
            "PyJWT refuses a key id that is not a string",
            _assemble({**header, "kid": 1}, claims),
            "invalid",
        ),
        (
            "header_not_object",
            "header is a JSON array",
            _assemble(["HS256"], claims),
            "invalid",
        ),
        (
            "payload_not_object",
            "payload is a JSON string",
            _assemble(header, "claims"),
            "invalid",
        ),
        ("missing_exp", "no exp claim", _assemble(header, without("exp")), "invalid"),
        ("missing_sub", "no sub claim", _assemble(header, without("sub")), "invalid"),
        ("missing_iat", "no iat claim", _assemble(header, without("iat")), "invalid"),
        ("missing_aud", "no aud claim", _assemble(header, without("aud")), "invalid"),
        (
            "sub_empty",
            "empty visitor id",
            _assemble(header, {**claims, "sub": ""}),
            "invalid",
        ),
        (
            "sub_not_string",
            "visitor id is a number",
            _assemble(header, {**claims, "sub": 12345}),
            "invalid",
        ),
        (
            "sub_too_long",
            "visitor id of 65 characters",
            _assemble(header, {**claims, "sub": "v" * 65}),
            "invalid",
        ),
        (
            "exp_float",
            "exp written as 1234.0: Python reads a float, not an integer",
            _assemble_raw(
                header,
                f'{{"sub":"{VISITOR_ID}","aud":"{ROOM}","iat":{now},'
                f'"exp":{now + _LIFETIME_S}.0}}',
            ),
            "invalid",
        ),
        (
            "exp_string",
            "exp as a string",
            _assemble(header, {**claims, "exp": str(now + _LIFETIME_S)}),
            "invalid",
        ),
        (
            "iat_boolean",
            "iat true",
            _assemble(header, {**claims, "iat": True}),
            "invalid",
        ),
        (
            "oversized",
            f"correctly signed but longer than {_MAX_TOKEN_LENGTH} characters",
            _assemble(header, {**claims, "note": "x" * _MAX_TOKEN_LENGTH}),
            "invalid",
        ),
        (
            "four_segments",
            "an extra segment",
            f"{valid}.{signature_segment}",
            "invalid",
        ),
        (
            "two_segments",
            "no signature segment",
            f"{header_segment}.{payload_segment}",
            "invalid",
        ),
        ("garbage", "not a JWT at all", "not-a-jwt", "invalid"),
        ("garbage_dots", "three segments of nothing", "a.b.c", "invalid"),
        ("empty", "an empty cookie", "", "missing"),
    ]

    vectors = [
        TokenVector(name, description, token, True, None)
        for name, description, token in accepted
    ]
    vectors += [
        TokenVector(name, description, token, False, reason)
        for name, description, token, reason in refused
    ]
    return vectors


def _padded_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def padded(value: Any) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii")

    # Pick claims whose encodings need padding; otherwise the vector tests nothing.
    claims = dict(claims)
    while len(padded(claims)) == len(_json_segment(claims)):
        claims["note"] = claims.get("note", "") + "x"
    header = dict(header)
    while len(padded(header)) == len(_json_segment(header)):
        header["typ"] = header["typ"] + " "
    signing_input = f"{padded(header)}.{padded(claims)}"
    digest = hmac.new(SECRET.encode(), signing_input.encode("ascii"), hashlib.sha256)
    signature = base64.urlsafe_b64encode(digest.digest()).decode("ascii")
    return f"{signing_input}.{signature}"


def build_document(now: int | None = None) -> dict[str, Any]:
    """Return the whole JSON document: settings plus vectors, generated at ``now``."""
    generated_at = int(time.time()) if now is None else now
    return {
        "format": FORMAT_VERSION,
        "generated_at": generated_at,
        "secret": SECRET,
        "room": ROOM,
        "cookie_name": admission_cookie_name(ROOM),
        "clock_skew_s": CLOCK_SKEW_S,
        "vectors": [asdict(vector) for vector in build_vectors(generated_at)],
    }


def main(argv: list[str] | None = None) -> int:
    """Write the vectors to the path in ``argv`` (or :data:`DEFAULT_OUTPUT`)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: make_token_vectors.py [OUT.json]", file=sys.stderr)
        return 2
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    document = build_document()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    logger.debug("wrote %d admission vectors to %s", len(document["vectors"]), output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
