"""The waiting room over real websockets, one suite for every adapter.

Each test starts an example app (Flask under threading and eventlet, Starlette under
uvicorn) as a real server process on loopback and talks to it with python-socketio
clients and plain HTTP, as a browser would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from fixtures import REPO_ROOT
from fixtures.examples import (
    ADAPTER_IDS,
    ADAPTERS,
    ADMIN_KEY,
    SECRET,
    ExampleApp,
    Visitor,
    example_env,
    start_example,
)
from fixtures.servers import free_port

from equeue import TokenSigner

pytestmark = pytest.mark.slow


@pytest.fixture(params=ADAPTER_IDS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(server_factory: Any, adapter: str) -> ExampleApp:
    return start_example(server_factory, adapter)


def queue_of(
    app: ExampleApp, n: int, visitors: Callable[..., Visitor]
) -> list[Visitor]:
    """Connect ``n`` visitors and register them in arrival order."""
    people = []
    for _ in range(n):
        visitor = visitors(app)
        visitor.register()
        people.append(visitor)
    return people


def test_register_answers_with_positions_in_arrival_order(app, visitors):
    first, second, third = queue_of(app, 3, visitors)

    assert (first.last["status"], first.last["position"]) == ("admitted", 0)
    assert first.last["admit_url"].startswith("/equeue/admit?room=default")
    assert (second.last["status"], second.last["position"]) == ("queued", 1)
    assert (third.last["position"], third.last["queue_length"]) == (2, 2)
    assert isinstance(third.last["eta_seconds"], int) and third.last["eta_seconds"] > 0
    assert app.status()["queue_length"] == 2


def test_registering_again_with_the_same_pass_keeps_one_place(app, visitors):
    _, second, _ = queue_of(app, 3, visitors)

    again = second.register()

    assert (again["position"], again["queue_length"]) == (1, 2)
    assert app.status()["queue_length"] == 2


def test_reconnecting_with_a_new_sid_keeps_the_place(app, visitors):
    _, second, third = queue_of(app, 3, visitors)
    old_sid = second.client.get_sid()
    second.close()

    back = visitors(app, second.visitor_pass)
    update = back.register()

    assert back.client.get_sid() != old_sid
    assert update["position"] == 1
    assert third.register()["position"] == 2
    assert app.status()["queue_length"] == 2


def test_two_sockets_of_one_visitor_hold_one_place_and_both_hear_updates(app, visitors):
    first, second, _ = queue_of(app, 3, visitors)
    other_tab = visitors(app, second.visitor_pass)

    assert other_tab.register()["position"] == 1
    assert app.status()["queue_length"] == 2

    requests.post(
        f"{app.url}/equeue/leave?room=default",
        cookies=first.cookies(),
        timeout=5,
        allow_redirects=False,
    )

    for tab in (second, other_tab):
        update = tab.wait_for(lambda u: u["status"] == "admitted")
        assert update["position"] == 0


def test_admission_follows_ticket_order_and_never_exceeds_capacity(app, visitors):
    people = queue_of(app, 4, visitors)
    admitted_order = []

    for i in range(4):
        current = people[i]
        current.wait_for(lambda u: u["status"] == "admitted", beat=True)
        admitted_order.append(i)
        status = app.status()
        assert status["active"] <= 1
        for later in people[i + 1 :]:
            later.heartbeat()
        requests.post(
            f"{app.url}/equeue/leave?room=default",
            cookies=current.cookies(),
            timeout=5,
            allow_redirects=False,
        )

    assert admitted_order == [0, 1, 2, 3]


def test_waiters_move_up_when_the_head_is_admitted(app, visitors):
    first, second, third = queue_of(app, 3, visitors)

    requests.post(
        f"{app.url}/equeue/leave?room=default",
        cookies=first.cookies(),
        timeout=5,
        allow_redirects=False,
    )

    assert second.wait_for(lambda u: u["status"] == "admitted")["position"] == 0
    assert third.wait_for(lambda u: u["position"] == 1)["queue_length"] == 1


def test_admitted_visitor_picks_up_the_cookie_and_reaches_the_shop(
    app, visitors, request
):
    (first,) = queue_of(app, 1, visitors)
    session = requests.Session()
    session.cookies.set("equeue_pass", first.visitor_pass)
    request.addfinalizer(session.close)

    pickup = session.get(
        f"{app.url}{first.last['admit_url']}&next=/shop/tickets/3",
        allow_redirects=False,
        timeout=5,
    )
    shop = session.get(f"{app.url}/shop/tickets/3", allow_redirects=False, timeout=5)

    assert pickup.status_code == 303
    assert pickup.headers["Location"].endswith("/shop/tickets/3")
    cookie = next(c for c in session.cookies if c.name == "equeue_admission_default")
    claims = jwt.decode(cookie.value, SECRET, algorithms=["HS256"], audience="default")
    assert set(claims) == {"sub", "aud", "iat", "exp"}
    assert "HttpOnly" in pickup.headers["Set-Cookie"]
    assert shop.status_code == 200 and "You are in" in shop.text


def test_a_silent_waiter_loses_the_place_after_the_timeout(
    server_factory, adapter, visitors
):
    app = start_example(server_factory, adapter, EQUEUE_HEARTBEAT_TIMEOUT="3")
    _, beating, silent = queue_of(app, 3, visitors)

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and app.status()["queue_length"] > 1:
        beating.heartbeat()
        time.sleep(0.5)

    assert silent.wait_for(lambda u: u["status"] == "expired")["position"] is None
    assert beating.register()["position"] == 1
    assert app.status()["queue_length"] == 1


def test_a_disconnect_does_not_cost_the_place(app, visitors):
    _, second, third = queue_of(app, 3, visitors)
    second.close()
    time.sleep(1)

    assert app.status()["queue_length"] == 2
    assert third.register()["position"] == 2


def _pass_signed_with(secret: str, **claims: Any) -> str:
    return TokenSigner(secret).issue_pass("visitor-x", **claims)


def _hs512_token() -> str:
    # The right secret under another algorithm; PyJWT warns the key is short for it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(
            {
                "sub": "v",
                "aud": "default",
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
            },
            SECRET,
            algorithm="HS512",
        )


BAD_REGISTERS = [
    (None, "bad_payload"),
    ("default", "bad_payload"),
    (42, "bad_payload"),
    ([], "bad_payload"),
    ({}, "bad_payload"),
    ({"room": 5}, "bad_payload"),
    ({"room": ""}, "bad_payload"),
    ({"room": "x" * 10_000}, "bad_payload"),
    ({"room": "<script>"}, "bad_payload"),
    ({"room": "nope"}, "unknown_room"),
    ({"room": "default", "pass": 5}, "bad_payload"),
    ({"room": "default", "pass": "a" * 5000}, "payload_too_large"),
    ({"room": "default", "pass": "not.a.pass"}, "bad_pass"),
    (
        {"room": "default", "pass": _pass_signed_with("another-secret-" + "x" * 40)},
        "bad_pass",
    ),
]


def test_malformed_register_payloads_get_an_error_and_change_nothing(app, visitors):
    queue_of(app, 2, visitors)
    before = app.status()
    probe = visitors(app)

    for payload, reason in BAD_REGISTERS:
        probe.client.emit("register", payload)
        error = probe.next_error()
        assert error["reason"] == reason, payload
        assert error["message"]

    assert probe.updates.empty()
    after = app.status()
    assert (after["queue_length"], after["active"], after["tickets_issued"]) == (
        before["queue_length"],
        before["active"],
        before["tickets_issued"],
    )


def test_an_expired_pass_is_refused(app, visitors):
    expired = TokenSigner(
        SECRET, clock=lambda: time.time() - 30 * 24 * 3600, pass_ttl_s=3600
    ).issue_pass("visitor-y")
    probe = visitors(app)

    probe.client.emit("register", {"room": "default", "pass": expired})

    assert probe.next_error()["reason"] == "bad_pass"
    assert app.status()["tickets_issued"] == 0


def test_heartbeat_needs_a_registration_and_an_object(app, visitors):
    probe = visitors(app)

    assert probe.client.call("heartbeat", {}, timeout=5) == {
        "ok": False,
        "reason": "not_registered",
    }
    assert probe.next_error()["reason"] == "not_registered"
    probe.register()
    assert probe.client.call("heartbeat", "beat", timeout=5)["reason"] == "bad_payload"
    assert probe.heartbeat() == {"ok": True, "status": "admitted"}


def test_an_oversized_message_is_dropped_without_changing_the_queue(app, visitors):
    queue_of(app, 2, visitors)
    probe = visitors(app)

    probe.client.emit("register", {"room": "default", "junk": "x" * 200_000})
    time.sleep(1)

    assert probe.updates.empty()
    assert app.status()["queue_length"] == 1


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        jwt.encode({"sub": "v", "aud": "default", "iat": 0, "exp": 1}, SECRET),
        jwt.encode(
            {
                "sub": "v",
                "aud": "other",
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
            },
            SECRET,
        ),
        jwt.encode(
            {
                "sub": "v",
                "aud": "default",
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
            },
            "wrong-secret-" + "y" * 40,
        ),
        _hs512_token(),
    ],
    ids=["empty", "garbage", "expired", "wrong-room", "wrong-secret", "hs512"],
)
def test_a_protected_page_refuses_bad_admission_cookies(
    app, visitors, token, accept, request
):
    queue_of(app, 1, visitors)
    (holder,) = queue_of(app, 1, visitors)
    session = requests.Session()
    request.addfinalizer(session.close)
    session.cookies.set("equeue_pass", holder.visitor_pass)

    response = session.get(
        f"{app.url}/shop?x=1",
        cookies={"equeue_admission_default": token},
        headers={"Accept": accept},
        allow_redirects=False,
        timeout=5,
    )

    if accept == "text/html":
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/equeue/wait?room=default")
        assert "next=%2Fshop%3Fx%3D1" in response.headers["Location"]
    else:
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        body = response.json()
        assert body["error"] == "waiting_room" and body["position"] == 1


def test_the_admit_route_sends_a_waiting_visitor_back_to_the_queue(app, visitors):
    _, second = queue_of(app, 2, visitors)

    response = requests.get(
        f"{app.url}/equeue/admit?room=default&next=/shop",
        cookies=second.cookies(),
        allow_redirects=False,
        timeout=5,
    )

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/equeue/wait?room=default")
    assert "equeue_admission_default" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
    ],
)
def test_the_return_url_never_leaves_the_site(app, visitors, target):
    (first,) = queue_of(app, 1, visitors)

    response = requests.get(
        f"{app.url}/equeue/admit",
        params={"room": "default", "next": target},
        cookies=first.cookies(),
        allow_redirects=False,
        timeout=5,
    )

    assert response.status_code == 303
    assert response.headers["Location"] in ("/", f"{app.url}/")


def test_the_wait_page_serves_the_splash_with_its_scripts(app, visitors, request):
    queue_of(app, 1, visitors)
    session = requests.Session()
    request.addfinalizer(session.close)

    page = session.get(f"{app.url}/equeue/wait?room=default&next=/shop", timeout=5)
    script = session.get(f"{app.url}/equeue/static/equeue.js", timeout=5)
    worker = session.get(f"{app.url}/equeue/static/heartbeat-worker.js", timeout=5)
    escape = session.get(f"{app.url}/equeue/static/..%2F..%2Fpyproject.toml", timeout=5)

    assert page.status_code == 200 and 'id="equeue-config"' in page.text
    assert "equeue_pass" in session.cookies
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert worker.status_code == 200
    assert escape.status_code == 404


def test_debug_routes_need_the_admin_key_and_escape_what_they_show(app, visitors):
    _, second = queue_of(app, 2, visitors)
    second.heartbeat()
    second.heartbeat()
    visitor_id = TokenSigner(SECRET).read_pass(second.visitor_pass).visitor_id
    key = {"X-Equeue-Admin-Key": ADMIN_KEY}

    assert requests.get(f"{app.url}/queue_status", timeout=5).status_code == 403
    assert (
        requests.get(
            f"{app.url}/queue_status",
            headers={"X-Equeue-Admin-Key": "wrong"},
            timeout=5,
        ).status_code
        == 403
    )
    page = requests.get(f"{app.url}/queue_status", headers=key, timeout=5)
    beats = requests.get(
        f"{app.url}/debug_heartbeats",
        headers=key,
        timeout=5,
        params={"user_id": visitor_id, "room": "default"},
    )
    bad = requests.get(
        f"{app.url}/debug_heartbeats",
        headers=key,
        timeout=5,
        params={"user_id": "<b>x</b>"},
    )
    metrics = requests.get(f"{app.url}/metrics", headers=key, timeout=5)

    assert page.status_code == 200 and "<table>" in page.text
    assert beats.json()["count"] == 2 and beats.json()["user_id"] == visitor_id
    assert bad.status_code == 400 and "<b>" not in bad.text
    assert 'equeue_waiting{room="default"} 1.0' in metrics.text


def test_health_reports_the_store(app):
    response = requests.get(f"{app.url}/equeue/health", timeout=5)

    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_visitors_get_their_order_back_after_redis_loses_its_data(
    server_factory, adapter, visitors, redis_server, redis_url
):
    app = start_example(server_factory, adapter, REDIS_URL=redis_url)
    _, second, third = queue_of(app, 3, visitors)

    redis_server.restart()
    newcomer = visitors(app)
    newcomer_update = newcomer.register()

    assert newcomer_update["status"] == "admitted" or newcomer_update["position"] >= 1
    second.wait_for(
        lambda u: u["status"] == "admitted" or u.get("position") == 1, beat=True
    )
    positions = {}
    for name, visitor in (("second", second), ("third", third), ("newcomer", newcomer)):
        update = visitor.register()
        positions[name] = update["position"]
    # The newcomer may have taken the free slot at once (the data loss also lost
    # the admitted session), but never a place ahead of the restored waiters.
    assert positions["second"] < positions["third"]
    if positions["newcomer"] != 0:
        assert positions["third"] < positions["newcomer"]


def test_a_visitor_back_after_losing_the_place_is_told_and_queues_at_the_back(
    server_factory, adapter, visitors
):
    app = start_example(server_factory, adapter, EQUEUE_HEARTBEAT_TIMEOUT="2")
    _, away, staying = queue_of(app, 3, visitors)
    old_pass = away.visitor_pass
    # Closing can wait for the server's close frame; keep the other visitor beating.
    threading.Thread(target=away.close).start()

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and app.status()["queue_length"] > 1:
        staying.heartbeat()
        time.sleep(0.3)
    back = visitors(app, old_pass)
    update = back.register()
    again = back.register()

    assert update["requeued"] is True
    assert (update["status"], update["position"]) == ("queued", 2)
    assert "requeued" not in again and again["position"] == 2


def test_reconnecting_in_time_is_not_reported_as_a_lost_place(app, visitors):
    _, second, _ = queue_of(app, 3, visitors)
    second.close()

    update = visitors(app, second.visitor_pass).register()

    assert "requeued" not in update and update["position"] == 1


def test_clients_that_drop_cookies_take_no_place_and_no_slot(app, request):
    for _ in range(5):
        page = requests.get(f"{app.url}/shop", allow_redirects=False, timeout=5)
        api = requests.get(
            f"{app.url}/shop",
            headers={"Accept": "application/json"},
            allow_redirects=False,
            timeout=5,
        )
        wait = requests.get(
            f"{app.url}{page.headers['Location']}", allow_redirects=False, timeout=5
        )
        checked = requests.get(
            f"{app.url}{wait.headers['Location']}", allow_redirects=False, timeout=5
        )
        assert page.status_code == 303 and "equeue_pass" in page.cookies
        assert api.status_code == 503 and api.json()["position"] is None
        assert wait.status_code == 303 and "cookie_check=1" in wait.headers["Location"]
        assert checked.status_code == 200 and 'id="equeue-config"' in checked.text
    status = app.status()
    assert (status["active"], status["queue_length"], status["tickets_issued"]) == (
        0,
        0,
        0,
    )

    browser_like = requests.Session()
    request.addfinalizer(browser_like.close)
    shop = browser_like.get(f"{app.url}/shop/tickets/2", timeout=10)

    assert shop.status_code == 200 and "You are in" in shop.text
    assert shop.url.endswith("/shop/tickets/2")
    assert app.status()["active"] == 1


def test_an_unreachable_redis_gives_clear_answers_and_one_log_line(
    server_factory, adapter
):
    app = start_example(
        server_factory, adapter, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    key = {"X-Equeue-Admin-Key": ADMIN_KEY}
    session = requests.Session()
    session.cookies.set("equeue_pass", TokenSigner(SECRET).issue_pass("visitor-z"))

    health = requests.get(f"{app.url}/equeue/health", timeout=5)
    status = requests.get(f"{app.url}/queue_status?format=json", headers=key, timeout=5)
    metrics = requests.get(f"{app.url}/metrics", headers=key, timeout=5)
    page = session.get(f"{app.url}/shop", allow_redirects=False, timeout=5)
    api = session.get(
        f"{app.url}/shop", headers={"Accept": "application/json"}, timeout=5
    )
    time.sleep(2)
    session.close()

    assert health.status_code == 503 and health.json()["ok"] is False
    assert status.status_code == 503 and status.json()["reason"] == "store_unavailable"
    assert metrics.status_code == 503
    assert page.status_code == 503 and "text/html" in page.headers["Content-Type"]
    assert api.status_code == 503 and api.json()["reason"] == "store_unavailable"
    log = app.server.output_tail(lines=2000)
    assert log.count("tick failed; retrying") == 1, log[-3000:]
    assert "Traceback" in log  # the first failure is logged in full, once


def test_a_missing_socketio_client_file_stops_the_start_with_a_clear_error(adapter):
    _, script, mode = next(a for a in ADAPTERS if a[0] == adapter)
    env = {
        **os.environ,
        **example_env(free_port(), EQUEUE_ASYNC_MODE=mode),
        "EQUEUE_SOCKETIO_CLIENT_FILE": "/nonexistent/socket.io.min.js",
    }

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "socketio_client_file" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_coming_back_through_a_protected_page_after_losing_the_place_says_so(
    server_factory, adapter, visitors, request
):
    app = start_example(server_factory, adapter, EQUEUE_HEARTBEAT_TIMEOUT="2")
    _, away, staying = queue_of(app, 3, visitors)
    session = requests.Session()
    request.addfinalizer(session.close)
    session.cookies.set("equeue_pass", away.visitor_pass)
    threading.Thread(target=away.close).start()

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and app.status()["queue_length"] > 1:
        staying.heartbeat()
        time.sleep(0.3)
    shop = session.get(f"{app.url}/shop", allow_redirects=False, timeout=5)
    page = session.get(f"{app.url}{shop.headers['Location']}", timeout=5)

    config = json.loads(
        re.search(
            r'<script id="equeue-config" type="application/json">(.*?)</script>',
            page.text,
            re.S,
        ).group(1)
    )

    assert shop.status_code == 303
    assert config["initial"]["requeued"] is True
    assert config["initial"]["position"] == 2
