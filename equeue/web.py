"""Framework-free pieces of the HTTP side, shared by the adapters: return-URL
checks, content negotiation, cookie flags, the admin check, the status page and
the splash page's configuration."""

from __future__ import annotations

import hmac
import html
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from .client import socketio_client_source
from .config import Settings
from .rules import RoomRules
from .stores.base import Placement, RoomSnapshot

__all__ = [
    "ADMIN_HEADER",
    "admin_allowed",
    "cookie_options",
    "heartbeats_payload",
    "safe_next",
    "splash_config",
    "status_html",
    "status_payload",
    "wait_url",
    "wants_json",
]

ADMIN_HEADER = "X-Equeue-Admin-Key"

#: The body of a 503 answer to a JSON client while the store is unreachable.
UNAVAILABLE = {
    "reason": "store_unavailable",
    "message": "the waiting room is unavailable, try again soon",
}
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def safe_next(value: object, allowed_hosts: Sequence[str] = ()) -> str:
    """Return where a visitor may be sent back to: a path on this site, or a URL
    on an allowed host. Anything else (other sites, ``//host``, ``javascript:``,
    backslashes, control characters) becomes ``/``."""
    if not isinstance(value, str) or not value or len(value) > 2048:
        return "/"
    if any(ord(ch) < 32 or ch == "\\" for ch in value):
        return "/"
    if value.startswith("/") and not value.startswith("//"):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname in allowed_hosts:
        return value
    return "/"


def wants_json(accept: str | None) -> bool:
    """True when the client prefers JSON to HTML (API clients, fetch calls)."""
    if not accept:
        return False
    best: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        best[media.lower()] = max(best.get(media.lower(), 0.0), quality)
    json_q = best.get("application/json", 0.0)
    html_q = max(best.get("text/html", 0.0), best.get("*/*", 0.0) * 0.99)
    return json_q > 0 and json_q >= html_q


def cookie_options(settings: Settings, request_is_https: bool) -> dict[str, Any]:
    """The flags every equeue cookie gets."""
    secure = (
        request_is_https if settings.cookie_secure is None else settings.cookie_secure
    )
    return {"httponly": True, "samesite": "Lax", "path": "/", "secure": secure}


def admin_allowed(settings: Settings, header: str | None, query: str | None) -> bool:
    """True if the debug routes may answer this request."""
    if settings.debug:
        return True
    if not settings.admin_key:
        return False
    given = header or query or ""
    return hmac.compare_digest(given.encode(), settings.admin_key.encode())


def wait_url(
    settings: Settings, room: str, next_url: str, cookie_check: bool = False
) -> str:
    """The waiting room page; ``cookie_check`` marks the one return trip made to
    see whether the client kept the pass cookie it was just given."""
    url = (
        f"{settings.url_prefix}/wait?room={quote(room)}&next={quote(next_url, safe='')}"
    )
    return url + "&cookie_check=1" if cookie_check else url


def admit_url(settings: Settings, room: str, next_url: str | None = None) -> str:
    url = f"{settings.url_prefix}/admit?room={quote(room)}"
    if next_url is not None:
        url += f"&next={quote(next_url, safe='')}"
    return url


def splash_config(
    settings: Settings,
    rules: RoomRules,
    room: str,
    visitor_pass: str,
    next_url: str,
    initial: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON configuration the splash page's script starts from."""
    self_hosted = settings.socketio_client_url
    if self_hosted is None and settings.socketio_client_file:
        self_hosted = f"{settings.url_prefix}/static/socket.io.min.js"
    return {
        "room": room,
        "pass": visitor_pass,
        "next": next_url,
        "wait_url": wait_url(settings, room, next_url),
        "admit_url": admit_url(settings, room, next_url),
        "static_url": f"{settings.url_prefix}/static",
        "socket": {"url": None, "path": "/socket.io"},
        "socketio_client": socketio_client_source(self_hosted),
        "heartbeat_interval_ms": int(rules.heartbeat_interval_s * 1000),
        "heartbeat_ack_timeout_ms": max(1000, int(rules.heartbeat_interval_s * 1000)),
        "heartbeat_max_retries": settings.heartbeat_max_retries,
        "connect_max_attempts": settings.connect_max_attempts,
        "initial": dict(initial),
    }


def status_payload(
    settings: Settings, snapshots: Sequence[RoomSnapshot], connected: Mapping[str, int]
) -> dict[str, Any]:
    """``/queue_status`` as JSON."""
    rooms = []
    for snap in snapshots:
        rules = settings.rooms[snap.room]
        rooms.append(
            {
                "room": snap.room,
                "queue_length": snap.queue_length,
                "active": snap.active,
                "capacity": rules.capacity,
                "admit_per_minute": rules.admit_per_minute,
                "admissions_last_5_min": snap.recent_admissions,
                "admitted_total": snap.admitted_total,
                "evicted_total": snap.evicted_total,
                "tickets_issued": snap.tickets_issued,
                "connected_here": connected.get(snap.room, 0),
                "store_time_ms": snap.now_ms,
            }
        )
    return {"rooms": rooms}


def status_html(payload: Mapping[str, Any]) -> str:
    """``/queue_status`` as a small HTML page; every value is escaped."""
    rows = []
    for room in payload["rooms"]:
        cells = "".join(
            f"<td>{html.escape(str(room[key]))}</td>"
            for key in (
                "room",
                "queue_length",
                "active",
                "capacity",
                "admissions_last_5_min",
                "admitted_total",
                "evicted_total",
                "tickets_issued",
                "connected_here",
            )
        )
        rows.append(f"<tr>{cells}</tr>")
    head = "".join(
        f"<th>{label}</th>"
        for label in (
            "Room",
            "Waiting",
            "Active",
            "Capacity",
            "Admitted (5 min)",
            "Admitted (all)",
            "Evicted (all)",
            "Tickets issued",
            "Connected here",
        )
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>equeue status</title><style>body{font-family:system-ui,sans-serif;"
        "margin:2rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.3rem .6rem;text-align:right}</style></head><body>"
        "<h1>Queue status</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>"
    )


def valid_visitor_id(value: object) -> bool:
    return isinstance(value, str) and bool(_VISITOR_ID.match(value))


def heartbeats_payload(
    room: str, visitor_id: str, beats_ms: Sequence[int]
) -> dict[str, Any]:
    """``/debug_heartbeats`` as JSON, newest beat first."""
    return {
        "room": room,
        "user_id": visitor_id,
        "count": len(beats_ms),
        "heartbeats": [
            {
                "ms": ms,
                "at": datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(),
            }
            for ms in beats_ms
        ],
    }


def waiting_payload(
    room: str, placement: Placement | None, eta_s: int | None, target: str
) -> tuple[dict[str, Any], int]:
    """The 503 body for a JSON client kept out of a protected view, and the
    ``Retry-After`` seconds. Without a placement (a client seen for the first
    time, given its pass cookie) the position is not known yet."""
    body = {
        "error": "waiting_room",
        "room": room,
        "position": None if placement is None else placement.position,
        "queue_length": None if placement is None else placement.queue_length,
        "eta_seconds": eta_s,
        "waiting_room_url": target,
    }
    retry_after = 1 if placement is None else min(60, max(1, eta_s or 5))
    return body, retry_after


def unavailable_html() -> str:
    """A small page for people while the store cannot be reached."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="10">'
        "<title>Please wait</title><style>body{font-family:system-ui,sans-serif;"
        "max-width:32rem;margin:4rem auto;padding:0 1rem;text-align:center}</style>"
        "</head><body><h1>Almost there</h1><p>The waiting room is busy for a "
        "moment. This page tries again by itself in a few seconds.</p></body></html>"
    )
