"""Visitor passes and admission tokens: what is accepted and what is refused."""

from __future__ import annotations

import jwt
import pytest

from equeue import ConfigurationError, TokenError, TokenSigner

SECRET = "s" * 40
NOW = 1_800_000_000.0


def signer(now: float = NOW, **options: float) -> TokenSigner:
    return TokenSigner(SECRET, clock=lambda: now, **options)


def test_a_short_secret_is_refused_at_start_up():
    with pytest.raises(ConfigurationError, match="at least 32"):
        TokenSigner("short")


def test_admission_token_carries_exactly_the_documented_claims():
    token = signer().issue_admission("visitor1", "default", NOW + 600)

    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience="default",
        options={"verify_exp": False, "verify_iat": False},
    )
    header = jwt.get_unverified_header(token)

    assert claims == {
        "sub": "visitor1",
        "aud": "default",
        "iat": int(NOW),
        "exp": int(NOW + 600),
    }
    assert header["alg"] == "HS256"
    assert signer().read_admission(token, "default").visitor_id == "visitor1"


@pytest.mark.parametrize(
    ("offset_s", "reason"),
    [(-31, "expired"), (-29, None), (3600, None)],
)
def test_admission_expiry_allows_the_configured_skew(offset_s, reason):
    token = signer(NOW - 7200).issue_admission("v", "default", NOW + offset_s)

    if reason is None:
        assert signer().read_admission(token, "default").expires_at == int(
            NOW + offset_s
        )
    else:
        with pytest.raises(TokenError) as info:
            signer().read_admission(token, "default")
        assert info.value.reason == reason


def test_a_token_issued_in_the_future_is_refused():
    token = signer(NOW + 120).issue_admission("v", "default", NOW + 600)

    with pytest.raises(TokenError, match="future"):
        signer().read_admission(token, "default")


def test_a_pass_is_never_accepted_as_an_admission_token_nor_the_reverse():
    visitor_pass = signer().issue_pass("v")
    admission = signer().issue_admission("v", "default", NOW + 600)

    with pytest.raises(TokenError):
        signer().read_admission(visitor_pass, "default")
    with pytest.raises(TokenError):
        signer().read_pass(admission)


def test_a_pass_vouches_for_its_ticket_only_in_its_room_and_until_it_expires():
    visitor_pass = signer().issue_pass(
        "v", room="default", ticket=7, epoch=5, ticket_ttl_s=60
    )
    read = signer().read_pass(visitor_pass)

    assert read.ticket_claim("default", NOW + 59) == 7
    assert read.ticket_claim("default", NOW + 61) is None
    assert read.ticket_claim("other", NOW) is None


@pytest.mark.parametrize("bad", [None, "", 42, ["a"], "x" * 5000, "a.b.c"])
def test_malformed_passes_are_refused_with_a_reason(bad):
    with pytest.raises(TokenError) as info:
        signer().read_pass(bad)

    assert info.value.reason in ("missing", "invalid")
    assert str(info.value)


def test_a_pass_with_tampered_claims_is_refused():
    claims = {
        "sub": "v",
        "aud": "equeue:visitor-pass",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
        "tkt": "7",
    }
    forged = jwt.encode(claims, "another-secret-" + "z" * 40, algorithm="HS256")

    with pytest.raises(TokenError):
        signer().read_pass(forged)
