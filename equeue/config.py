"""Settings of a waiting room deployment, from code or from the environment."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigurationError
from .rules import RoomRules, check_room_name
from .tokens import MIN_SECRET_LENGTH

__all__ = ["DEVELOPMENT_SECRET", "Settings"]

logger = logging.getLogger(__name__)

#: Used only in debug mode when no secret is configured; refused otherwise.
DEVELOPMENT_SECRET = "equeue-development-secret-never-use-in-production"


@dataclass(frozen=True)
class Settings:
    """Everything an adapter needs to run a waiting room.

    :param secret: signs visitor passes and admission tokens; at least 32
        characters; the edge Worker gets the same value. Required unless ``debug``.
    :param rooms: the rules of each room, by room name.
    :param store_url: ``memory://`` (default), ``redis://``, ``rediss://``,
        ``redis+cluster://host:port,...``.
    :param debug: development mode: a built-in secret when none is given, and the
        debug routes answer without the admin key.
    :param admin_key: required by ``/queue_status``, ``/debug_heartbeats`` and
        ``/metrics`` outside debug mode (they answer 404 when neither is set).
    :param url_prefix: where the waiting room's own routes live.
    :param tick_interval_s: how often each room is ticked.
    :param socketio_client_url: a self-hosted ``socket.io.min.js`` URL instead of
        the public CDN.
    :param socketio_client_file: a local ``socket.io.min.js`` the adapter serves
        itself at ``<url_prefix>/static/socket.io.min.js``.
    :param allowed_return_hosts: hosts a visitor may be sent back to after
        admission, besides this site's own paths.
    :param cookie_secure: force the ``Secure`` cookie flag on or off; ``None``
        follows the request's scheme.
    :param splash_template: path of an edited copy of ``splash.html``.
    :param message_queue: Redis URL for the Socket.IO manager that carries emits
        between server processes; defaults to ``store_url`` when that is Redis.
    :param socketio_channel: the pub/sub channel of that manager; Flask and
        Starlette servers of one deployment must use the same one.
    """

    secret: str | None = None
    rooms: Mapping[str, RoomRules] = field(
        default_factory=lambda: {"default": RoomRules()}
    )
    store_url: str | None = None
    debug: bool = False
    admin_key: str | None = None
    url_prefix: str = "/equeue"
    tick_interval_s: float = 1.0
    socketio_client_url: str | None = None
    socketio_client_file: str | None = None
    allowed_return_hosts: tuple[str, ...] = ()
    cookie_secure: bool | None = None
    splash_template: str | None = None
    heartbeat_max_retries: int = 3
    connect_max_attempts: int = 8
    message_queue: str | None = None
    socketio_channel: str = "equeue"

    def __post_init__(self) -> None:
        if not self.rooms:
            raise ConfigurationError("at least one room must be configured")
        for room, rules in self.rooms.items():
            check_room_name(room)
            if not isinstance(rules, RoomRules):
                raise ConfigurationError(f"rules of room {room!r} must be RoomRules")
        if not self.url_prefix.startswith("/") or self.url_prefix.endswith("/"):
            raise ConfigurationError(
                f"url_prefix must start with '/' and not end with one, "
                f"got {self.url_prefix!r}"
            )
        if self.tick_interval_s <= 0:
            raise ConfigurationError("tick_interval_s must be > 0")
        if self.secret is not None and len(self.secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"the equeue secret must be at least {MIN_SECRET_LENGTH} characters"
            )
        if self.socketio_client_file and not os.path.isfile(self.socketio_client_file):
            raise ConfigurationError(
                f"socketio_client_file {self.socketio_client_file!r} is not a file; "
                "point it at socket.io-client's dist/socket.io.min.js"
            )
        if self.secret is None and not self.debug:
            raise ConfigurationError(
                "no equeue secret configured: set Settings(secret=...) or "
                "EQUEUE_SECRET (at least 32 characters). Only debug mode runs "
                "without one."
            )

    @property
    def signing_secret(self) -> str:
        """The secret in force; in debug mode without one, the development secret."""
        if self.secret is not None:
            return self.secret
        logger.warning(
            "equeue is using its built-in development secret (debug mode): "
            "anyone can forge passes and admission tokens; set EQUEUE_SECRET"
        )
        return DEVELOPMENT_SECRET

    @property
    def default_room(self) -> str:
        return next(iter(self.rooms))

    @property
    def manager_url(self) -> str | None:
        """The Redis URL for the Socket.IO manager, or ``None`` for one process."""
        if self.message_queue:
            return self.message_queue
        if self.store_url and self.store_url.startswith(("redis://", "rediss://")):
            return self.store_url
        return None

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``EQUEUE_*`` variables and ``REDIS_URL``.

        One room comes from ``EQUEUE_ROOM`` (default ``default``) with the rules
        in ``EQUEUE_CAPACITY``, ``EQUEUE_ADMIT_PER_MINUTE`` and so on. Several
        rooms come from ``EQUEUE_ROOMS``, a JSON object of room name to rules,
        for example ``{"shop": {"capacity": 50}, "tickets": {"capacity": 5,
        "admit_per_minute": 60}}``; the fields are those of
        :class:`~equeue.rules.RoomRules`, and a field a room leaves out takes the
        value of the single-room variable (or its default). The first room is the
        default room.

        :raises ConfigurationError: naming the variable whose value is wrong.
        """
        env = os.environ if environ is None else environ
        rules = RoomRules(
            capacity=_number(env, "EQUEUE_CAPACITY", 2, int),
            admit_per_minute=_number(env, "EQUEUE_ADMIT_PER_MINUTE", None, int),
            session_ttl_s=_number(env, "EQUEUE_SESSION_TTL", 600.0, float),
            heartbeat_interval_s=_number(env, "EQUEUE_HEARTBEAT_INTERVAL", 5.0, float),
            heartbeat_timeout_s=_number(env, "EQUEUE_HEARTBEAT_TIMEOUT", 75.0, float),
        )
        rooms = _rooms_from_env(env, rules)
        hosts = tuple(
            h.strip()
            for h in env.get("EQUEUE_ALLOWED_RETURN_HOSTS", "").split(",")
            if h.strip()
        )
        return cls(
            secret=env.get("EQUEUE_SECRET") or None,
            rooms=rooms,
            store_url=env.get("REDIS_URL") or None,
            debug=_flag(env, "EQUEUE_DEBUG"),
            admin_key=env.get("EQUEUE_ADMIN_KEY") or None,
            tick_interval_s=_number(env, "EQUEUE_TICK_INTERVAL", 1.0, float),
            socketio_client_url=env.get("EQUEUE_SOCKETIO_CLIENT_URL") or None,
            socketio_client_file=env.get("EQUEUE_SOCKETIO_CLIENT_FILE") or None,
            allowed_return_hosts=hosts,
            message_queue=env.get("EQUEUE_MESSAGE_QUEUE") or None,
            socketio_channel=env.get("EQUEUE_SOCKETIO_CHANNEL", "equeue"),
        )


#: The rules a room may set in ``EQUEUE_ROOMS``, with the JSON types each takes.
_ROOM_FIELDS: dict[str, tuple[type, ...]] = {
    "capacity": (int,),
    "admit_per_minute": (int, type(None)),
    "session_ttl_s": (int, float),
    "heartbeat_interval_s": (int, float),
    "heartbeat_timeout_s": (int, float),
    "pass_ttl_s": (int, float),
    "max_evictions_per_tick": (int,),
}


def _rooms_from_env(
    env: Mapping[str, str], defaults: RoomRules
) -> dict[str, RoomRules]:
    raw = env.get("EQUEUE_ROOMS", "").strip()
    if not raw:
        return {env.get("EQUEUE_ROOM", "default"): defaults}
    if env.get("EQUEUE_ROOM", "").strip():
        # Two sources for the room list would leave one silently ignored.
        raise ConfigurationError(
            "set either EQUEUE_ROOM (one room) or EQUEUE_ROOMS (several), not both"
        )
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"EQUEUE_ROOMS is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigurationError(
            "EQUEUE_ROOMS must be a non-empty JSON object of room name to rules, "
            f'like {{"shop": {{"capacity": 50}}}}; got {raw[:80]!r}'
        )
    return {room: _room_rules(room, given, defaults) for room, given in parsed.items()}


def _room_rules(room: str, given: Any, defaults: RoomRules) -> RoomRules:
    where = f"EQUEUE_ROOMS room {room!r}"
    try:
        check_room_name(room)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
    if not isinstance(given, dict):
        raise ConfigurationError(
            f"{where}: the rules must be a JSON object, got {given!r}"
        )
    for name, value in given.items():
        kinds = _ROOM_FIELDS.get(name)
        if kinds is None:
            raise ConfigurationError(
                f"{where}: unknown field {name!r}; expected some of "
                + ", ".join(_ROOM_FIELDS)
            )
        # JSON true/false would pass as the integers 1/0.
        if isinstance(value, bool) or not isinstance(value, kinds):
            wanted = " or ".join(
                "null" if kind is type(None) else kind.__name__ for kind in kinds
            )
            raise ConfigurationError(
                f"{where}: field {name!r} must be {wanted}, got {value!r}"
            )
    try:
        return replace(defaults, **given)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{name} must be a{'n integer' if kind is int else ' number'}, got {raw!r}"
        ) from exc


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name} must be 1/0, true/false, yes/no; got {raw!r}")
