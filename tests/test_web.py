"""Framework-free HTTP helpers shared by the adapters."""

from __future__ import annotations

import pytest

from equeue import Settings
from equeue.web import admin_allowed, safe_next, status_html, wants_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/shop?x=1", "/shop?x=1"),
        ("/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("https://shop.example/cart", "https://shop.example/cart"),
        ("javascript:alert(1)", "/"),
        ("/shop\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
        (42, "/"),
        ("", "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_return_urls_stay_on_this_site_or_an_allowed_host(value, expected):
    assert safe_next(value, ("shop.example",)) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", True),
        ("text/html,application/xhtml+xml,*/*;q=0.8", False),
        ("*/*", False),
        (None, False),
        ("application/json;q=0.5, text/html", False),
        ("application/json, text/plain;q=0.9", True),
    ],
)
def test_json_is_chosen_only_when_the_client_prefers_it(accept, expected):
    assert wants_json(accept) is expected


def test_debug_routes_need_the_key_outside_debug_mode():
    locked = Settings(secret="k" * 32, admin_key="right")
    keyless = Settings(secret="k" * 32)

    assert admin_allowed(locked, "right", None)
    assert admin_allowed(locked, None, "right")
    assert not admin_allowed(locked, "wrong", None)
    assert not admin_allowed(keyless, "", None)
    assert admin_allowed(Settings(debug=True), None, None)


def test_the_status_page_escapes_what_it_shows():
    page = status_html(
        {
            "rooms": [
                {
                    "room": "<script>x</script>",
                    "queue_length": 1,
                    "active": 0,
                    "capacity": 2,
                    "admissions_last_5_min": 0,
                    "admitted_total": 0,
                    "evicted_total": 0,
                    "tickets_issued": 1,
                    "connected_here": 0,
                }
            ]
        }
    )

    assert "<script>x" not in page and "&lt;script&gt;" in page
