"""The waiting room on Starlette and python-socketio's ASGI server.

Usage::

    app = Starlette(routes=[...])
    waiting_room = Equeue(app, settings=Settings.from_env())

    @waiting_room.protect()
    async def shop(request: Request) -> Response: ...

    asgi = waiting_room.asgi_app()   # serve this one: uvicorn module:asgi

The adapter only translates: Socket.IO events and HTTP requests become awaited
calls on :class:`equeue.room.AsyncWaitingRoom`, results become emits and
responses. Nothing here blocks the event loop: the store is an asyncio store, files
are read in a worker thread, and signing tokens is CPU work of microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

try:
    import socketio
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
    )
    from starlette.routing import BaseRoute, Route
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:
    raise ImportError(
        "the Starlette adapter needs its extra: pip install 'equeue[starlette]'"
    ) from exc

from .. import web
from ..client import STATIC_FILES, content_type, render_splash, static_file
from ..config import Settings
from ..errors import InvalidPayload, StoreError, TokenError
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..metrics import Metrics
from ..notifier import PositionNotifier
from ..protocol import MAX_EVENT_BYTES, error_payload, parse_heartbeat, parse_register
from ..room import AsyncWaitingRoom
from ..stores import AsyncQueueStore, RoomSnapshot, async_store_from_url
from ..stores.base import Placement
from ..tokens import PASS_COOKIE, VisitorPass, admission_cookie_name

__all__ = ["Equeue", "EqueueMiddleware"]

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Callable[..., Any])

#: How long shutdown lets a running tick finish before cancelling it.
TICK_STOP_GRACE_S = 5.0
#: How long shutdown lets Socket.IO's event handlers finish before cancelling.
BACKGROUND_STOP_GRACE_S = 1.0
PASS_MAX_AGE_S = 7 * 24 * 3600


def _visitor_room(visitor_id: str) -> str:
    return f"visitor:{visitor_id}"


@dataclass
class _Verdict:
    """What the guard decided for one request to a protected page: either a
    ``response`` that replaces the page, or let the page through and add
    ``cookies`` (name, value, max-age) to its response."""

    response: Response | None = None
    cookies: list[tuple[str, str, int]] = field(default_factory=list)


class Equeue:
    """The Starlette extension.

    :param app: the Starlette app to add the routes and the lifespan to, or
        ``None`` to compose :attr:`routes` and :meth:`lifespan` by hand (or call
        :meth:`init_app` later).
    :param settings: the waiting room settings (default: from the environment).
    :param store: a ready asyncio store; default: built from
        ``settings.store_url``, and closed on shutdown.
    :param start_ticker: run the ticker during the app's lifespan.
    """

    def __init__(
        self,
        app: Starlette | None = None,
        *,
        settings: Settings | None = None,
        store: AsyncQueueStore | None = None,
        start_ticker: bool = True,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._owns_store = store is None
        self.store = store or async_store_from_url(self.settings.store_url)
        self.room = AsyncWaitingRoom(self.settings, self.store)
        self.notifier = PositionNotifier()
        # The collector cannot await the store, so /metrics fetches the snapshots
        # first and the collector reads them from here.
        # Nothing awaits between storing them and rendering, so concurrent
        # scrapes never read each other's half-done state.
        self._scraped: list[RoomSnapshot] = []
        self.metrics = Metrics(self.settings, lambda: self._scraped)
        self.socketio = self._make_server()
        self._background: set[asyncio.Task[Any]] = set()
        self._track_background_tasks()
        self.app: Starlette | None = None
        self._start_ticker = start_ticker
        self._stop = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._static = self._load_static()
        self._register_events()
        if app is not None:
            self.init_app(app)

    # Set-up -------------------------------------------------------------------

    def _make_server(self) -> Any:
        manager = None
        if self.settings.manager_url:
            # The manager's pool stays small because only the ticker publishes
            # (one emit at a time); answers to a socket skip the pub/sub.
            manager = socketio.AsyncRedisManager(
                self.settings.manager_url, channel=self.settings.socketio_channel
            )
        # cors_allowed_origins stays None: only the page's own origin may
        # connect, as with the Flask adapter.
        return socketio.AsyncServer(
            async_mode="asgi",
            client_manager=manager,
            max_http_buffer_size=MAX_EVENT_BYTES,
            cookie=None,
        )

    def _track_background_tasks(self) -> None:
        # Engine.IO starts a task per socket that sleeps through a ping interval
        # and outlives a closed socket, and the Redis manager's listener never
        # ends; shutdown() stops neither. Every task Socket.IO starts goes through
        # this one method, so recording them here lets aclose() end them all.
        engineio_server = self.socketio.eio
        start_task = engineio_server.start_background_task

        def start_tracked(target: Any, *args: Any, **kwargs: Any) -> Any:
            task = start_task(target, *args, **kwargs)
            if isinstance(task, asyncio.Task):
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return task

        engineio_server.start_background_task = start_tracked

    def _load_static(self) -> dict[str, bytes]:
        # Read once, before the event loop runs, so that serving them never
        # touches the disk from inside the loop.
        files = {name: static_file(name) for name in STATIC_FILES}
        client_file = self.settings.socketio_client_file
        if client_file:
            try:
                files["socket.io.min.js"] = Path(client_file).read_bytes()
            except OSError as exc:
                logger.warning("cannot read the socket.io client file: %s", exc)
        return files

    @property
    def routes(self) -> list[BaseRoute]:
        """The waiting room's HTTP routes, to add to a ``Router`` by hand."""
        prefix = self.settings.url_prefix
        return [
            Route(f"{prefix}/wait", self._wait, name="equeue_wait"),
            Route(f"{prefix}/admit", self._admit, name="equeue_admit"),
            Route(
                f"{prefix}/leave", self._leave, methods=["POST"], name="equeue_leave"
            ),
            Route(f"{prefix}/health", self._health, name="equeue_health"),
            Route(f"{prefix}/static/{{name}}", self._static_file, name="equeue_static"),
            Route("/queue_status", self._queue_status, name="equeue_queue_status"),
            Route(
                "/debug_heartbeats",
                self._debug_heartbeats,
                name="equeue_debug_heartbeats",
            ),
            Route("/metrics", self._metrics, name="equeue_metrics"),
        ]

    def init_app(self, app: Starlette) -> None:
        """Add the routes to ``app`` and run the ticker inside its lifespan
        (around the app's own lifespan, which keeps working)."""
        self.app = app
        app.state.equeue = self
        # In front of the app's routes, so that a catch-all route of the app
        # cannot shadow the waiting room.
        app.router.routes[0:0] = self.routes
        user_lifespan = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
            async with self.lifespan(), user_lifespan(asgi_app) as state:
                yield state

        app.router.lifespan_context = lifespan
        logger.info(
            "equeue on Starlette: rooms %s, store %s",
            ", ".join(self.settings.rooms),
            type(self.store).__name__,
        )

    def asgi_app(self, app: ASGIApp | None = None) -> ASGIApp:
        """Return the ASGI app to serve: Socket.IO at ``/socket.io``, everything
        else (lifespan included) passed on to ``app`` (default: the app given to
        :meth:`init_app`)."""
        other = app if app is not None else self.app
        return cast(
            ASGIApp,
            socketio.ASGIApp(
                self.socketio, other_asgi_app=other, socketio_path="socket.io"
            ),
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Run the ticker while the block runs, then shut down cleanly: usable as
        ``Starlette(lifespan=...)`` or inside a lifespan of your own."""
        if self._start_ticker:
            await self.start()
        try:
            yield
        finally:
            await self.aclose()

    async def start(self) -> None:
        """Start the ticker task (once) on the running loop."""
        if self._ticker is None or self._ticker.done():
            # A new event per start: an asyncio primitive belongs to the loop
            # that first waits on it, and a later start may run in another loop.
            self._stop = asyncio.Event()
            self._ticker = asyncio.create_task(
                self._tick_forever(), name="equeue-ticker"
            )
            logger.info("ticker started: every %.2f s", self.settings.tick_interval_s)

    async def stop(self) -> None:
        """Stop the ticker: its current tick may finish, then it is cancelled."""
        ticker, self._ticker = self._ticker, None
        if ticker is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(ticker), TICK_STOP_GRACE_S)
        except asyncio.TimeoutError:
            logger.warning(
                "ticker did not stop in %.1f s, cancelling it", TICK_STOP_GRACE_S
            )
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def aclose(self) -> None:
        """Stop the ticker and every background task of Socket.IO and its Redis
        manager, and close the store if this adapter built it. The queue is not
        touched: every visitor keeps their place for the next server."""
        await self.stop()
        await self.socketio.shutdown()
        await self._close_manager()
        await self._end_background_tasks()
        if self._owns_store:
            await self.store.close()
        logger.info("equeue shut down")

    async def _end_background_tasks(self) -> None:
        # Event handlers still running get a moment to answer; what is left by
        # then is idle (ping timers of closed sockets) and is cancelled.
        tasks = set(self._background)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=BACKGROUND_STOP_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        logger.debug("ended %d Socket.IO background tasks", len(pending))

    async def _close_manager(self) -> None:
        # python-socketio starts the manager's pub/sub listener on the first
        # connection and never stops it; shutdown() leaves it running.
        manager = self.socketio.manager
        listener = getattr(manager, "thread", None)
        if isinstance(listener, asyncio.Task) and not listener.done():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        for name in ("pubsub", "redis"):
            client = getattr(manager, name, None)
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        if hasattr(manager, "connected"):
            manager.connected = False
        # A later start in a new loop (tests, reloads) initialises it again.
        self.socketio.manager_initialized = False

    # The ticker --------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while not self._stop.is_set():
            for room in self.settings.rooms:
                try:
                    await self.tick_once(room)
                except Exception as exc:
                    self.metrics.ticks.labels("failed").inc()
                    self.room.tick_failed(room, exc)
                else:
                    self.metrics.ticks.labels("ok").inc()
                    self.room.tick_succeeded(room)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.tick_interval_s)
        logger.info("ticker stopped")

    async def tick_once(self, room: str) -> None:
        """Run one tick of ``room`` and update this process's visitors."""
        await self.room.tick(room)
        visitors = self.notifier.visitors(room)
        if not visitors:
            return
        snapshot = await self.room.snapshot(room, visitors)
        to_send, to_restore = self.notifier.plan(snapshot)
        for visitor_id, ticket in to_restore:
            to_send.append(await self.room.restore(room, visitor_id, ticket))
        for placement in to_send:
            await self._send(room, placement)

    async def _send(self, room: str, placement: Placement) -> None:
        payload = self.room.update(room, placement, web.admit_url(self.settings, room))
        # To the visitor's room, through the manager: their other tabs may be
        # connected to other server processes.
        await self.socketio.emit(
            "queue_update", payload, to=_visitor_room(placement.visitor_id)
        )
        self.notifier.sent(room, placement)
        logger.debug(
            "room %s: update %s -> %s", room, placement.status, placement.position
        )

    # Socket.IO events ----------------------------------------------------------

    def _register_events(self) -> None:
        self.socketio.on("register", self._on_register)
        self.socketio.on("heartbeat", self._on_heartbeat)
        self.socketio.on("disconnect", self._on_disconnect)

    async def _emit_to_sid(self, event: str, payload: Any, sid: str) -> None:
        # The socket is connected to this process (its event just arrived here),
        # so the message needs no trip through the manager's pub/sub.
        await self.socketio.emit(event, payload, to=sid, ignore_queue=True)

    async def _refuse(
        self, sid: str, event: str, reason: str, message: str
    ) -> dict[str, Any]:
        self.metrics.events.labels(event, reason).inc()
        await self._emit_to_sid("error", error_payload(reason, message), sid)
        logger.debug("refused %s: %s", event, reason)
        return {"ok": False, "reason": reason}

    async def _on_register(
        self, sid: str, payload: Any = None, *_extra: Any
    ) -> dict[str, Any]:
        try:
            req = parse_register(payload)
            self.room.rules(req.room)
            if req.visitor_pass is None:
                visitor_pass = VisitorPass(self.room.signer.new_visitor_id())
            else:
                visitor_pass = self.room.read_pass(req.visitor_pass)
            placement = await self.room.join(req.room, visitor_pass)
        except InvalidPayload as exc:
            return await self._refuse(sid, "register", exc.reason, str(exc))
        except StoreError as exc:
            logger.warning("register failed: %s", exc)
            return await self._refuse(
                sid,
                "register",
                "store_unavailable",
                "the waiting room is unavailable; retrying",
            )

        previous = self.notifier.visitor_of(sid)
        if previous is not None and previous[1] != visitor_pass.visitor_id:
            await self.socketio.leave_room(sid, _visitor_room(previous[1]))
        await self.socketio.enter_room(sid, _visitor_room(visitor_pass.visitor_id))
        self.notifier.attach(sid, req.room, visitor_pass.visitor_id, placement)
        await self._emit_to_sid(
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

    async def _on_heartbeat(
        self, sid: str, payload: Any = None, *_extra: Any
    ) -> dict[str, Any]:
        try:
            parse_heartbeat(payload)
        except InvalidPayload as exc:
            return await self._refuse(sid, "heartbeat", exc.reason, str(exc))
        registered = self.notifier.visitor_of(sid)
        if registered is None:
            return await self._refuse(
                sid, "heartbeat", "not_registered", "send register before heartbeat"
            )
        room, visitor_id = registered
        try:
            placement = await self.room.heartbeat(room, visitor_id)
        except StoreError as exc:
            # Per-event traffic: an outage is logged by the ticker, once.
            logger.debug("heartbeat failed: %s", exc)
            return await self._refuse(
                sid,
                "heartbeat",
                "store_unavailable",
                "the waiting room is unavailable; retrying",
            )
        self.metrics.events.labels("heartbeat", "ok").inc()
        logger.debug("room %s: heartbeat (%s)", room, placement.status)
        return {"ok": True, "status": placement.status}

    async def _on_disconnect(self, sid: str, *_reason: Any) -> None:
        # A disconnect never touches the queue: the visitor may be reconnecting
        # or have another tab. Silence is handled by the heartbeat timeout.
        self.notifier.detach(sid)

    # HTTP routes -------------------------------------------------------------

    def _room_arg(self, request: Request) -> str | Response:
        room = request.query_params.get("room", self.settings.default_room)
        if room not in self.settings.rooms:
            return PlainTextResponse(f"there is no room named {room!r}", 404)
        return room

    def _next_arg(self, request: Request) -> str:
        return web.safe_next(
            request.query_params.get("next"), self.settings.allowed_return_hosts
        )

    def _cookie_options(self, request: Request) -> dict[str, Any]:
        return web.cookie_options(self.settings, request.url.scheme == "https")

    def _pass_cookie(self, room: str, placement: Placement) -> tuple[str, str, int]:
        return PASS_COOKIE, self.room.pass_for(room, placement), PASS_MAX_AGE_S

    def _fresh_pass_cookie(self, visitor_pass: VisitorPass) -> tuple[str, str, int]:
        issued = self.room.signer.issue_pass(visitor_pass.visitor_id)
        return PASS_COOKIE, issued, PASS_MAX_AGE_S

    def _admission_cookie(
        self, room: str, placement: Placement
    ) -> tuple[str, str, int]:
        assert placement.admitted_until_ms is not None
        admission_token = self.room.admission_token(
            room, placement.visitor_id, placement.admitted_until_ms
        )
        max_age = max(1, (placement.admitted_until_ms - placement.now_ms) // 1000)
        return admission_cookie_name(room), admission_token, max_age

    def _set_cookies(
        self,
        request: Request,
        response: Response,
        cookies: Sequence[tuple[str, str, int]],
    ) -> Response:
        options = self._cookie_options(request)
        for name, value, max_age in cookies:
            response.set_cookie(name, value, max_age=max_age, **options)
        return response

    async def _wait(self, request: Request) -> Response:
        room = self._room_arg(request)
        if isinstance(room, Response):
            return room
        next_url = self._next_arg(request)
        visitor_pass, new = self.room.pass_or_new(request.cookies.get(PASS_COOKIE))
        placement: Placement | None = None
        if new:
            # No pass cookie yet: hand one out without taking a place, and come
            # back once to find it. A client that drops cookies never holds a
            # place or a slot; if it still has none, the page's socket joins.
            pass_cookie = self._fresh_pass_cookie(visitor_pass)
            if not request.query_params.get("cookie_check"):
                target = web.wait_url(self.settings, room, next_url, True)
                redirect = RedirectResponse(target, 303)
                return self._set_cookies(request, redirect, [pass_cookie])
        else:
            try:
                placement = await self.room.join(room, visitor_pass)
            except StoreError as exc:
                logger.warning("wait page: %s", exc)
                return self._unavailable(request)
            pass_cookie = self._pass_cookie(room, placement)
            if placement.status == "admitted":
                response: Response = RedirectResponse(
                    web.admit_url(self.settings, room, next_url), 303
                )
                return self._set_cookies(request, response, [pass_cookie])

        config = web.splash_config(
            self.settings,
            self.room.rules(room),
            room,
            pass_cookie[1],
            next_url,
            self.room.initial_view(room, placement, visitor_pass),
        )
        page = render_splash(
            config,
            static_url=config["static_url"],
            template=await self._splash_template(),
        )
        response = HTMLResponse(page, headers={"Cache-Control": "no-store"})
        return self._set_cookies(request, response, [pass_cookie])

    async def _splash_template(self) -> str | None:
        path = self.settings.splash_template
        if not path:
            return None
        # Read on every page like the Flask adapter (edits show at once), in a
        # worker thread so the loop never waits on the disk.
        return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")

    async def _admit(self, request: Request) -> Response:
        room = self._room_arg(request)
        if isinstance(room, Response):
            return room
        next_url = self._next_arg(request)
        back = RedirectResponse(web.wait_url(self.settings, room, next_url), 303)
        try:
            visitor_pass = self.room.signer.read_pass(request.cookies.get(PASS_COOKIE))
            snapshot = await self.room.snapshot(room, [visitor_pass.visitor_id])
        except TokenError:
            return back
        except StoreError as exc:
            logger.warning("admit: %s", exc)
            return self._unavailable(request)
        placement = snapshot.placements[0]
        if placement.status != "admitted":
            return back
        logger.debug("room %s: admission picked up", room)
        return self._set_cookies(
            request,
            RedirectResponse(next_url, 303),
            [self._admission_cookie(room, placement)],
        )

    async def _leave(self, request: Request) -> Response:
        room = self._room_arg(request)
        if isinstance(room, Response):
            return room
        next_url = self._next_arg(request)
        left = False
        try:
            visitor_pass = self.room.signer.read_pass(request.cookies.get(PASS_COOKIE))
            left = await self.room.leave(room, visitor_pass.visitor_id)
        except TokenError:
            pass
        except StoreError as exc:
            logger.warning("leave: %s", exc)
            return self._unavailable(request)
        response: Response = (
            JSONResponse({"left": left})
            if web.wants_json(request.headers.get("accept"))
            else RedirectResponse(next_url, 303)
        )
        response.delete_cookie(admission_cookie_name(room), path="/")
        return response

    async def _health(self, request: Request) -> Response:
        ok = await self.store.ping()
        return JSONResponse(
            {"ok": ok, "store": "ok" if ok else "unavailable"},
            status_code=200 if ok else 503,
        )

    async def _static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        data = self._static.get(name)
        if data is None:
            return PlainTextResponse("not found", 404)
        return Response(
            data,
            media_type=content_type(name),
            headers={"Cache-Control": "public, max-age=300"},
        )

    @staticmethod
    def _unavailable(request: Request, as_json: bool = False) -> Response:
        headers = {"Retry-After": "5"}
        if as_json or web.wants_json(request.headers.get("accept")):
            return JSONResponse(web.UNAVAILABLE, status_code=503, headers=headers)
        return HTMLResponse(web.unavailable_html(), status_code=503, headers=headers)

    # Protecting pages ----------------------------------------------------------

    def protect(self, room: str | None = None) -> Callable[[E], E]:
        """Decorate an endpoint ``(request) -> Response`` so only admitted
        visitors reach it.

        Without a valid admission cookie for ``room`` the visitor joins the queue:
        while there is room they are admitted at once and the endpoint runs;
        otherwise pages are redirected to the waiting room and JSON clients get
        ``503`` with ``Retry-After``. Activity renews an admitted visitor's
        session. A plain (non-async) endpoint runs in the thread pool, as
        Starlette itself would run it.

        :raises InvalidPayload: at decoration time, for a room not configured.
        """
        room_name = room or self.settings.default_room
        self.room.rules(room_name)

        def decorator(endpoint: E) -> E:
            @functools.wraps(endpoint)
            async def wrapper(request: Request) -> Response:
                verdict = await self.check(request, room_name)
                if verdict.response is not None:
                    return verdict.response
                if inspect.iscoroutinefunction(endpoint):
                    response = await endpoint(request)
                else:
                    response = await run_in_threadpool(endpoint, request)
                return self._set_cookies(request, response, verdict.cookies)

            return cast(E, wrapper)

        return decorator

    def protect_paths(
        self, paths: Sequence[str], room: str | None = None
    ) -> Middleware:
        """Return a middleware that protects every path under ``paths``, for
        ``Starlette(middleware=[...])``; see :class:`EqueueMiddleware`."""
        return Middleware(EqueueMiddleware, equeue=self, paths=paths, room=room)

    async def check(self, request: Request, room: str) -> _Verdict:
        """Decide what a request to a protected page of ``room`` gets."""
        cookie = request.cookies.get(admission_cookie_name(room))
        try:
            admission = self.room.signer.read_admission(cookie, room)
        except TokenError as exc:
            logger.debug("room %s: no valid admission (%s)", room, exc.reason)
            return await self._queue_or_admit(request, room)

        rules = self.room.rules(room)
        remaining = admission.expires_at - self.room.signer.now()
        if remaining >= rules.session_ttl_s / 2:
            return _Verdict()
        try:
            until_ms = await self.room.renew(room, admission.visitor_id)
        except StoreError as exc:
            logger.warning("room %s: could not renew a session: %s", room, exc)
            until_ms = None
        if until_ms is None:
            return _Verdict()
        admission_token = self.room.admission_token(
            room, admission.visitor_id, until_ms
        )
        return _Verdict(
            cookies=[
                (admission_cookie_name(room), admission_token, int(rules.session_ttl_s))
            ]
        )

    async def _queue_or_admit(self, request: Request, room: str) -> _Verdict:
        visitor_pass, new = self.room.pass_or_new(request.cookies.get(PASS_COOKIE))
        next_url = request.url.path
        if request.url.query:
            next_url += f"?{request.url.query}"
        target = web.wait_url(self.settings, room, next_url)
        if new:
            # First sight of this client: hand out a pass cookie and send it on
            # without taking a place or a slot, so scripts and crawlers that drop
            # cookies cannot fill the room. Browsers come back with the cookie.
            response = self._waiting_answer(request, room, None, target)
            cookies = [self._fresh_pass_cookie(visitor_pass)]
            return _Verdict(response=self._set_cookies(request, response, cookies))
        try:
            placement = await self.room.join(room, visitor_pass)
        except StoreError as exc:
            logger.warning("room %s: %s", room, exc)
            return _Verdict(response=self._unavailable(request))
        if placement.status == "admitted":
            return _Verdict(
                cookies=[
                    self._pass_cookie(room, placement),
                    self._admission_cookie(room, placement),
                ]
            )
        # The pass cookie is left as it is: the wait page compares its ticket with
        # the place it finds, to tell a visitor who lost their place so.
        return _Verdict(response=self._waiting_answer(request, room, placement, target))

    def _waiting_answer(
        self, request: Request, room: str, placement: Placement | None, target: str
    ) -> Response:
        """A page gets a redirect to the waiting room; a JSON client gets 503."""
        if not web.wants_json(request.headers.get("accept")):
            return RedirectResponse(target, 303)
        eta = None if placement is None else self.room.eta_s(room, placement)
        body, retry_after = web.waiting_payload(room, placement, eta, target)
        return JSONResponse(
            body, status_code=503, headers={"Retry-After": str(retry_after)}
        )

    def cookie_headers(
        self, request: Request, cookies: Sequence[tuple[str, str, int]]
    ) -> list[tuple[bytes, bytes]]:
        """The ``Set-Cookie`` headers for ``cookies``, for raw ASGI responses."""
        carrier = self._set_cookies(request, Response(), cookies)
        return [(k, v) for k, v in carrier.raw_headers if k == b"set-cookie"]

    # Debug and operations routes ---------------------------------------------

    def _forbidden(self, request: Request) -> Response | None:
        if web.admin_allowed(
            self.settings,
            request.headers.get(web.ADMIN_HEADER),
            request.query_params.get("admin_key"),
        ):
            return None
        return PlainTextResponse("this route needs the equeue admin key", 403)

    async def _all_snapshots(self) -> list[RoomSnapshot]:
        return [await self.room.snapshot(room) for room in self.settings.rooms]

    async def _queue_status(self, request: Request) -> Response:
        refused = self._forbidden(request)
        if refused is not None:
            return refused
        connected = {
            room: len(self.notifier.visitors(room)) for room in self.settings.rooms
        }
        try:
            snapshots = await self._all_snapshots()
        except StoreError as exc:
            logger.warning("queue status: %s", exc)
            as_json = request.query_params.get("format") == "json"
            return self._unavailable(request, as_json)
        payload = web.status_payload(self.settings, snapshots, connected)
        if request.query_params.get("format") == "json" or web.wants_json(
            request.headers.get("accept")
        ):
            return JSONResponse(payload)
        return HTMLResponse(web.status_html(payload))

    async def _debug_heartbeats(self, request: Request) -> Response:
        refused = self._forbidden(request)
        if refused is not None:
            return refused
        room = self._room_arg(request)
        if isinstance(room, Response):
            return room
        visitor_id = request.query_params.get("user_id")
        if visitor_id is None or not web.valid_visitor_id(visitor_id):
            return JSONResponse(
                error_payload(
                    "bad_payload", "user_id must be 1-64 characters of A-Z a-z 0-9 _ -"
                ),
                status_code=400,
            )
        try:
            beats = await self.room.heartbeats(room, visitor_id)
        except StoreError as exc:
            logger.warning("debug heartbeats: %s", exc)
            return self._unavailable(request, as_json=True)
        return JSONResponse(web.heartbeats_payload(room, visitor_id, beats))

    async def _metrics(self, request: Request) -> Response:
        refused = self._forbidden(request)
        if refused is not None:
            return refused
        try:
            self._scraped = await self._all_snapshots()
            body = self.metrics.render()
        except StoreError as exc:
            logger.warning("metrics: %s", exc)
            return self._unavailable(request, as_json=True)
        return Response(body, media_type=METRICS_CONTENT_TYPE)


class EqueueMiddleware:
    """ASGI middleware that puts every path under ``paths`` behind the waiting
    room, with the same answers as :meth:`Equeue.protect`.

    A path is protected when it equals one of ``paths`` or continues it after a
    ``/`` (``/shop`` covers ``/shop`` and ``/shop/cart``, not ``/shopping``). The
    waiting room's own routes and Socket.IO never go through it. Only HTTP is
    guarded; websockets of the app pass untouched.

    :param app: the ASGI app to wrap.
    :param equeue: the waiting room.
    :param paths: path prefixes to protect.
    :param room: the room (default: the first configured one).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        equeue: Equeue,
        paths: Sequence[str],
        room: str | None = None,
    ) -> None:
        self.app = app
        self.equeue = equeue
        self.room = room or equeue.settings.default_room
        equeue.room.rules(self.room)
        self.paths = tuple(p.rstrip("/") or "/" for p in paths)
        if not self.paths:
            raise ValueError("EqueueMiddleware needs at least one path to protect")

    def protects(self, path: str) -> bool:
        """Tell whether requests to ``path`` must hold an admission."""
        if path.startswith((f"{self.equeue.settings.url_prefix}/", "/socket.io/")):
            return False
        return any(
            prefix == "/" or path == prefix or path.startswith(f"{prefix}/")
            for prefix in self.paths
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.protects(scope["path"]):
            await self.app(scope, receive, send)
            return

        request = Request(scope)
        verdict = await self.equeue.check(request, self.room)
        if verdict.response is not None:
            await verdict.response(scope, receive, send)
            return
        if not verdict.cookies:
            await self.app(scope, receive, send)
            return

        extra = self.equeue.cookie_headers(request, verdict.cookies)

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cookies)
