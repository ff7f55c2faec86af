"""The waiting room on Flask and Flask-SocketIO.

Usage::

    app = Flask(__name__)
    waiting_room = Equeue(app, settings=Settings.from_env())

    @app.route("/shop")
    @waiting_room.protect()
    def shop(): ...

    waiting_room.run(host="127.0.0.1", port=5000)

The adapter only translates: Socket.IO events and HTTP requests become calls on
:class:`equeue.room.WaitingRoom`, results become emits and responses.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

try:
    from flask import (
        Blueprint,
        Flask,
        abort,
        jsonify,
        make_response,
        redirect,
        request,
    )
    from flask_socketio import SocketIO, join_room, leave_room
    from werkzeug.wrappers import Response as BaseResponse
except ImportError as exc:
    raise ImportError(
        "the Flask adapter needs its extra: pip install 'equeue[flask]'"
    ) from exc

from .. import web
from ..client import content_type, render_splash, static_file
from ..config import Settings
from ..errors import InvalidPayload, StoreError, TokenError
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..metrics import Metrics
from ..notifier import PositionNotifier
from ..protocol import MAX_EVENT_BYTES, error_payload, parse_heartbeat, parse_register
from ..room import WaitingRoom
from ..stores import QueueStore, RoomSnapshot, store_from_url
from ..stores.base import Placement
from ..tokens import PASS_COOKIE, VisitorPass, admission_cookie_name

__all__ = ["Equeue"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: The pass cookie lives as long as the pass's identity (TokenSigner's pass_ttl_s).
PASS_COOKIE_MAX_AGE = 7 * 24 * 3600

#: eventlet's WSGI server accepts 1024 connections unless told otherwise.
EVENTLET_MAX_CONNECTIONS = 20_000


def _visitor_room(visitor_id: str) -> str:
    return f"visitor:{visitor_id}"


class Equeue:
    """The Flask extension.

    :param app: the Flask app, or ``None`` to call :meth:`init_app` later.
    :param settings: the waiting room settings (default: from the environment).
    :param store: a ready store; default: built from ``settings.store_url``.
    :param socketio: an existing ``SocketIO`` to register on; default: a new one.
    :param async_mode: Flask-SocketIO's async mode (``threading`` or ``eventlet``);
        pass it explicitly, since Flask-SocketIO picks eventlet whenever it is
        installed.
    :param start_ticker: start the background ticker in :meth:`init_app`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | None = None,
        store: QueueStore | None = None,
        socketio: SocketIO | None = None,
        async_mode: str | None = None,
        start_ticker: bool = True,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or store_from_url(self.settings.store_url)
        self.room = WaitingRoom(self.settings, self.store)
        self.notifier = PositionNotifier()
        self.metrics = Metrics(self.settings, self._all_snapshots)
        self.socketio = socketio
        self._async_mode = async_mode
        self._start_ticker = start_ticker
        self._stop = threading.Event()
        self._ticker: Any = None
        if app is not None:
            self.init_app(app)

    # Set-up -------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Register the routes, the Socket.IO events and start the ticker."""
        if self.socketio is None:
            self.socketio = SocketIO(
                app,
                async_mode=self._async_mode,
                message_queue=self.settings.manager_url,
                channel=self.settings.socketio_channel,
                max_http_buffer_size=MAX_EVENT_BYTES,
                cookie=None,
            )
        else:
            self.socketio.init_app(app)
        app.extensions["equeue"] = self
        app.register_blueprint(self._blueprint())
        for rule, view in (
            ("/queue_status", self._queue_status),
            ("/debug_heartbeats", self._debug_heartbeats),
            ("/metrics", self._metrics),
        ):
            app.add_url_rule(rule, f"equeue_{view.__name__.lstrip('_')}", view)
        self._register_events(self.socketio)
        logger.info(
            "equeue on Flask: rooms %s, store %s, async mode %s",
            ", ".join(self.settings.rooms),
            type(self.store).__name__,
            self.socketio.async_mode,
        )
        if self._start_ticker:
            self.start()

    def start(self) -> None:
        """Start the background ticker (once)."""
        assert self.socketio is not None
        if self._ticker is None:
            self._stop.clear()
            self._ticker = self.socketio.start_background_task(self._tick_forever)
            logger.info("ticker started: every %.2f s", self.settings.tick_interval_s)

    def stop(self) -> None:
        """Ask the ticker to stop after its current tick."""
        self._stop.set()
        self._ticker = None

    def run(
        self, app: Flask, host: str = "127.0.0.1", port: int = 5000, **options: Any
    ) -> None:
        """Serve ``app`` with Flask-SocketIO's server; under eventlet, with the
        connection limit raised from eventlet's 1024."""
        assert self.socketio is not None
        if self.socketio.async_mode == "eventlet":
            options.setdefault("max_size", EVENTLET_MAX_CONNECTIONS)
        else:
            options.setdefault("allow_unsafe_werkzeug", True)
        options.setdefault("log_output", False)
        self.socketio.run(app, host=host, port=port, **options)

    # The ticker --------------------------------------------------------------

    def _tick_forever(self) -> None:
        assert self.socketio is not None
        while not self._stop.is_set():
            for room in self.settings.rooms:
                try:
                    self.tick_once(room)
                except Exception as exc:
                    self.metrics.ticks.labels("failed").inc()
                    self.room.tick_failed(room, exc)
                else:
                    self.metrics.ticks.labels("ok").inc()
                    self.room.tick_succeeded(room)
            self.socketio.sleep(self.settings.tick_interval_s)
        logger.info("ticker stopped")

    def tick_once(self, room: str) -> None:
        """Run one tick of ``room`` and update this process's visitors."""
        self.room.tick(room)
        visitors = self.notifier.visitors(room)
        if not visitors:
            return
        snapshot = self.room.snapshot(room, visitors)
        to_send, to_restore = self.notifier.plan(snapshot)
        for visitor_id, ticket in to_restore:
            to_send.append(self.room.restore(room, visitor_id, ticket))
        for placement in to_send:
            self._send(room, placement)

    def _send(self, room: str, placement: Placement) -> None:
        assert self.socketio is not None
        payload = self.room.update(room, placement, web.admit_url(self.settings, room))
        self.socketio.emit(
            "queue_update", payload, to=_visitor_room(placement.visitor_id)
        )
        self.notifier.sent(room, placement)
        logger.debug(
            "room %s: update %s -> %s", room, placement.status, placement.position
        )

    # Socket.IO events ----------------------------------------------------------

    def _register_events(self, socketio: SocketIO) -> None:
        socketio.on_event("register", self._on_register)
        socketio.on_event("heartbeat", self._on_heartbeat)
        socketio.on_event("disconnect", self._on_disconnect)

    def _emit_to_sid(self, event: str, payload: dict[str, Any], sid: str) -> None:
        # The socket is connected to this process, so the answer skips the message
        # queue: a burst of registrations makes no Redis publish each.
        assert self.socketio is not None
        self.socketio.emit(event, payload, to=sid, ignore_queue=True)

    def _refuse(self, event: str, reason: str, message: str) -> dict[str, Any]:
        assert self.socketio is not None
        self.metrics.events.labels(event, reason).inc()
        sid = request.sid  # type: ignore[attr-defined]
        self._emit_to_sid("error", error_payload(reason, message), sid)
        logger.debug("refused %s: %s", event, reason)
        return {"ok": False, "reason": reason}

    def _on_register(self, payload: Any = None) -> dict[str, Any]:
        sid = request.sid  # type: ignore[attr-defined]
        try:
            req = parse_register(payload)
            self.room.rules(req.room)
            if req.visitor_pass is None:
                visitor_pass = VisitorPass(self.room.signer.new_visitor_id())
            else:
                visitor_pass = self.room.read_pass(req.visitor_pass)
            placement = self.room.join(req.room, visitor_pass)
        except InvalidPayload as exc:
            return self._refuse("register", exc.reason, str(exc))
        except StoreError as exc:
            logger.warning("register failed: %s", exc)
            return self._refuse(
                "register",
                "store_unavailable",
                "the waiting room is unavailable; retrying",
            )

        previous = self.notifier.visitor_of(sid)
        if previous is not None and previous[1] != visitor_pass.visitor_id:
            leave_room(_visitor_room(previous[1]))
        join_room(_visitor_room(visitor_pass.visitor_id))
        self.notifier.attach(sid, req.room, visitor_pass.visitor_id, placement)
        self._emit_to_sid(
            "queue_update",
            self.room.update(
                req.room,
                placement,
                web.admit_url(self.settings, req.room),
                requeued=self.room.requeued(req.room, visitor_pass, placement),
            ),
            sid,
        )
        self.metrics.events.labels("register", "ok").inc()
        return {"ok": True, "status": placement.status}

    def _on_heartbeat(self, payload: Any = None) -> dict[str, Any]:
        sid = request.sid  # type: ignore[attr-defined]
        try:
            parse_heartbeat(payload)
        except InvalidPayload as exc:
            return self._refuse("heartbeat", exc.reason, str(exc))
        registered = self.notifier.visitor_of(sid)
        if registered is None:
            return self._refuse(
                "heartbeat", "not_registered", "send register before heartbeat"
            )
        room, visitor_id = registered
        try:
            placement = self.room.heartbeat(room, visitor_id)
        except StoreError as exc:
            # Per-event traffic: an outage is logged by the ticker, once.
            logger.debug("heartbeat failed: %s", exc)
            return self._refuse(
                "heartbeat",
                "store_unavailable",
                "the waiting room is unavailable; retrying",
            )
        self.metrics.events.labels("heartbeat", "ok").inc()
        logger.debug("room %s: heartbeat (%s)", room, placement.status)
        return {"ok": True, "status": placement.status}

    def _on_disconnect(self, *args: Any) -> None:
        # A disconnect never touches the queue: the visitor may be reconnecting
        # or have another tab. Silence is handled by the heartbeat timeout.
        self.notifier.detach(request.sid)  # type: ignore[attr-defined]

    # HTTP routes -------------------------------------------------------------

    def _blueprint(self) -> Blueprint:
        bp = Blueprint("equeue", __name__, url_prefix=self.settings.url_prefix)
        bp.add_url_rule("/wait", "wait", self._wait)
        bp.add_url_rule("/admit", "admit", self._admit)
        bp.add_url_rule("/leave", "leave", self._leave, methods=["POST"])
        bp.add_url_rule("/health", "health", self._health)
        bp.add_url_rule("/static/<name>", "static", self._static)
        return bp

    def _room_arg(self) -> str:
        room = request.args.get("room", self.settings.default_room)
        if room not in self.settings.rooms:
            abort(
                make_response(
                    jsonify(error_payload("unknown_room", "there is no such room")),
                    404,
                )
            )
        return room

    def _next_arg(self) -> str:
        return web.safe_next(
            request.args.get("next"), self.settings.allowed_return_hosts
        )

    def _set_cookie(
        self, response: BaseResponse, name: str, value: str, max_age: int
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            **web.cookie_options(self.settings, request.is_secure),
        )

    def _set_pass(self, response: BaseResponse, room: str, placement: Placement) -> str:
        visitor_pass = self.room.pass_for(room, placement)
        self._set_cookie(response, PASS_COOKIE, visitor_pass, PASS_COOKIE_MAX_AGE)
        return visitor_pass

    def _admit_response(
        self, room: str, placement: Placement, response: BaseResponse
    ) -> BaseResponse:
        assert placement.admitted_until_ms is not None
        token = self.room.admission_token(
            room, placement.visitor_id, placement.admitted_until_ms
        )
        max_age = max(1, (placement.admitted_until_ms - placement.now_ms) // 1000)
        self._set_cookie(response, admission_cookie_name(room), token, max_age)
        return response

    def _wait(self) -> BaseResponse:
        room, next_url = self._room_arg(), self._next_arg()
        visitor_pass, new = self.room.pass_or_new(request.cookies.get(PASS_COOKIE))
        if new:
            # No pass cookie yet: hand one out without taking a place, and come
            # back once to find it. A client that drops cookies never holds a
            # place or a slot; if it still has none, the page's socket joins.
            if request.args.get("cookie_check"):
                return self._splash(room, next_url, visitor_pass, None)
            response = redirect(web.wait_url(self.settings, room, next_url, True), 303)
            page_pass = self.room.signer.issue_pass(visitor_pass.visitor_id)
            self._set_cookie(response, PASS_COOKIE, page_pass, PASS_COOKIE_MAX_AGE)
            return response
        try:
            placement = self.room.join(room, visitor_pass)
        except StoreError as exc:
            logger.warning("wait page: %s", exc)
            return self._unavailable()
        if placement.status == "admitted":
            response = redirect(web.admit_url(self.settings, room, next_url), 303)
            self._set_pass(response, room, placement)
            return response

        return self._splash(room, next_url, visitor_pass, placement)

    def _splash(
        self,
        room: str,
        next_url: str,
        visitor_pass: VisitorPass,
        placement: Placement | None,
    ) -> BaseResponse:
        response = make_response()
        if placement is None:
            page_pass = self.room.signer.issue_pass(visitor_pass.visitor_id)
            self._set_cookie(response, PASS_COOKIE, page_pass, PASS_COOKIE_MAX_AGE)
        else:
            page_pass = self._set_pass(response, room, placement)
        config = web.splash_config(
            self.settings,
            self.room.rules(room),
            room,
            page_pass,
            next_url,
            self.room.initial_view(room, placement, visitor_pass),
        )
        response.set_data(
            render_splash(
                config,
                static_url=config["static_url"],
                template=self._splash_template(),
            )
        )
        response.content_type = "text/html; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        return response

    def _splash_template(self) -> str | None:
        path = self.settings.splash_template
        return Path(path).read_text(encoding="utf-8") if path else None

    def _admit(self) -> BaseResponse:
        room, next_url = self._room_arg(), self._next_arg()
        back = redirect(web.wait_url(self.settings, room, next_url), 303)
        try:
            visitor_pass = self.room.signer.read_pass(request.cookies.get(PASS_COOKIE))
            snapshot = self.room.snapshot(room, [visitor_pass.visitor_id])
        except TokenError:
            return back
        except StoreError as exc:
            logger.warning("admit: %s", exc)
            return self._unavailable()
        placement = snapshot.placements[0]
        if placement.status != "admitted":
            return back
        logger.debug("room %s: admission picked up", room)
        return self._admit_response(room, placement, redirect(next_url, 303))

    def _leave(self) -> BaseResponse:
        room, next_url = self._room_arg(), self._next_arg()
        left = False
        try:
            visitor_pass = self.room.signer.read_pass(request.cookies.get(PASS_COOKIE))
            left = self.room.leave(room, visitor_pass.visitor_id)
        except TokenError:
            pass
        except StoreError as exc:
            logger.warning("leave: %s", exc)
            return self._unavailable()
        response = (
            jsonify({"left": left})
            if web.wants_json(request.headers.get("Accept"))
            else redirect(next_url, 303)
        )
        response.delete_cookie(admission_cookie_name(room), path="/")
        return response

    def _health(self) -> BaseResponse:
        ok = self.store.ping()
        response = jsonify({"ok": ok, "store": "ok" if ok else "unavailable"})
        response.status_code = 200 if ok else 503
        return response

    def _static(self, name: str) -> BaseResponse:
        if name == "socket.io.min.js" and self.settings.socketio_client_file:
            data = Path(self.settings.socketio_client_file).read_bytes()
        else:
            try:
                data = static_file(name)
            except ValueError:
                abort(404)
        response = make_response(data)
        response.content_type = content_type(name)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    def _unavailable(self, as_json: bool = False) -> BaseResponse:
        if as_json or web.wants_json(request.headers.get("Accept")):
            response = jsonify(web.UNAVAILABLE)
        else:
            response = make_response(web.unavailable_html())
            response.content_type = "text/html; charset=utf-8"
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    # Protecting views ----------------------------------------------------------

    def protect(self, room: str | None = None) -> Callable[[F], F]:
        """Decorate a view so only admitted visitors reach it.

        Without a valid admission cookie for ``room`` the visitor joins the queue:
        while there is room they are admitted at once and the view runs; otherwise
        pages are redirected to the waiting room and JSON clients get ``503`` with
        ``Retry-After``. Activity renews an admitted visitor's session.
        """
        room_name = room or self.settings.default_room
        self.room.rules(room_name)

        def decorator(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return self._guard(room_name, view, args, kwargs)

            return cast(F, wrapper)

        return decorator

    def _guard(
        self, room: str, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> BaseResponse:
        cookie = request.cookies.get(admission_cookie_name(room))
        try:
            admission = self.room.signer.read_admission(cookie, room)
        except TokenError as exc:
            logger.debug("room %s: no valid admission (%s)", room, exc.reason)
            return self._queue_or_admit(room, view, args, kwargs)

        response = make_response(view(*args, **kwargs))
        rules = self.room.rules(room)
        remaining = admission.expires_at - self.room.signer.now()
        if remaining < rules.session_ttl_s / 2:
            try:
                until_ms = self.room.renew(room, admission.visitor_id)
            except StoreError as exc:
                logger.warning("room %s: could not renew a session: %s", room, exc)
                until_ms = None
            if until_ms is not None:
                token = self.room.admission_token(room, admission.visitor_id, until_ms)
                self._set_cookie(
                    response,
                    admission_cookie_name(room),
                    token,
                    int(rules.session_ttl_s),
                )
        return response

    def _queue_or_admit(
        self, room: str, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> BaseResponse:
        visitor_pass, new = self.room.pass_or_new(request.cookies.get(PASS_COOKIE))
        next_url = request.full_path if request.query_string else request.path
        target = web.wait_url(self.settings, room, next_url)
        response: BaseResponse
        if new:
            # First sight of this client: hand out a pass cookie and send it on
            # without taking a place or a slot, so scripts and crawlers that drop
            # cookies cannot fill the room. Browsers come back with the cookie.
            response = self._waiting_answer(room, None, target)
            page_pass = self.room.signer.issue_pass(visitor_pass.visitor_id)
            self._set_cookie(response, PASS_COOKIE, page_pass, PASS_COOKIE_MAX_AGE)
            return response
        try:
            placement = self.room.join(room, visitor_pass)
        except StoreError as exc:
            logger.warning("room %s: %s", room, exc)
            return self._unavailable()
        if placement.status == "admitted":
            response = make_response(view(*args, **kwargs))
            self._set_pass(response, room, placement)
            return self._admit_response(room, placement, response)

        # The pass cookie is left as it is: the wait page compares its ticket with
        # the place it finds, to tell a visitor who lost their place so.
        return self._waiting_answer(room, placement, target)

    def _waiting_answer(
        self, room: str, placement: Placement | None, target: str
    ) -> BaseResponse:
        """A page gets a redirect to the waiting room; a JSON client gets 503."""
        if not web.wants_json(request.headers.get("Accept")):
            return redirect(target, 303)
        eta = None if placement is None else self.room.eta_s(room, placement)
        body, retry_after = web.waiting_payload(room, placement, eta, target)
        response = jsonify(body)
        response.status_code = 503
        response.headers["Retry-After"] = str(retry_after)
        return response

    # Debug and operations routes ---------------------------------------------

    def _require_admin(self) -> None:
        if not web.admin_allowed(
            self.settings,
            request.headers.get(web.ADMIN_HEADER),
            request.args.get("admin_key"),
        ):
            abort(403, description="this route needs the equeue admin key")

    def _all_snapshots(self) -> list[RoomSnapshot]:
        return [self.room.snapshot(room) for room in self.settings.rooms]

    def _queue_status(self) -> BaseResponse:
        self._require_admin()
        connected = {
            room: len(self.notifier.visitors(room)) for room in self.settings.rooms
        }
        try:
            snapshots = self._all_snapshots()
        except StoreError as exc:
            logger.warning("queue status: %s", exc)
            return self._unavailable(request.args.get("format") == "json")
        payload = web.status_payload(self.settings, snapshots, connected)
        if request.args.get("format") == "json" or web.wants_json(
            request.headers.get("Accept")
        ):
            return jsonify(payload)
        response = make_response(web.status_html(payload))
        response.content_type = "text/html; charset=utf-8"
        return response

    def _debug_heartbeats(self) -> BaseResponse:
        self._require_admin()
        room = self._room_arg()
        visitor_id = request.args.get("user_id")
        if not web.valid_visitor_id(visitor_id):
            response = jsonify(
                error_payload(
                    "bad_payload", "user_id must be 1-64 characters of A-Z a-z 0-9 _ -"
                )
            )
            response.status_code = 400
            return response
        assert visitor_id is not None
        try:
            beats = self.room.heartbeats(room, visitor_id)
        except StoreError as exc:
            logger.warning("debug heartbeats: %s", exc)
            return self._unavailable(as_json=True)
        return jsonify(web.heartbeats_payload(room, visitor_id, beats))

    def _metrics(self) -> BaseResponse:
        self._require_admin()
        try:
            body = self.metrics.render()
        except StoreError as exc:
            logger.warning("metrics: %s", exc)
            return self._unavailable(as_json=True)
        response = make_response(body)
        response.content_type = METRICS_CONTENT_TYPE
        return response
