"""What only the Starlette adapter has to prove: its lifespan, its event loop, bursts
over the asyncio Redis store, and serving one room together with a Flask server.

The protocol itself is checked for every adapter by ``tests/test_adapters.py``.
Servers are real (uvicorn, in this process or as the example app in a child
process) on free loopback ports; visitors are python-socketio clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from fixtures.aio import run_async
from fixtures.servers import ServerProcess, ServerStartError, free_port

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from equeue import RoomRules, Settings
from equeue.adapters.starlette import Equeue

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SECRET = "starlette-test-secret-" + "s" * 32
ADMIN_KEY = "starlette-admin-key"
ADMIN = {"X-Equeue-Admin-Key": ADMIN_KEY}


# Helpers ----------------------------------------------------------------------


def _env(port: int, **overrides: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "EQUEUE_SECRET": SECRET,
        "EQUEUE_ADMIN_KEY": ADMIN_KEY,
        "EQUEUE_DEBUG": "0",
        "EQUEUE_CAPACITY": "1",
        "EQUEUE_HEARTBEAT_INTERVAL": "1",
        "EQUEUE_HEARTBEAT_TIMEOUT": "120",
        "EQUEUE_TICK_INTERVAL": "0.2",
        "EQUEUE_ASYNC_MODE": "threading",
        "REDIS_URL": None,
        "LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


def _start(
    server_factory: Callable[..., ServerProcess],
    argv: list[str],
    name: str,
    **env: str | None,
) -> tuple[str, ServerProcess]:
    """Start a server on a free port (retrying if the port is taken first)."""
    last: ServerStartError | None = None
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        try:
            server = server_factory(
                argv,
                ready_url=f"{url}/equeue/health",
                env=_env(port, **env),
                cwd=str(ROOT),
                name=name,
            )
        except ServerStartError as exc:
            last = exc
            continue
        return url, server
    raise AssertionError(f"{name} did not start: {last}")


def _example(name: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / f"{name}_app.py")]


def _status(url: str) -> dict[str, Any]:
    response = requests.get(
        f"{url}/queue_status", params={"format": "json"}, headers=ADMIN, timeout=10
    )
    response.raise_for_status()
    room: dict[str, Any] = response.json()["rooms"][0]
    return room


def _admit_one(url: str) -> requests.Session:
    """A shopper who walks into the empty shop and fills its one place."""
    shopper = requests.Session()
    response = shopper.get(f"{url}/shop", timeout=10)
    assert response.status_code == 200 and "You are in" in response.text
    return shopper


class AsyncVisitor:
    """A visitor's socket (asyncio client) that records every update."""

    def __init__(self, url: str, visitor_pass: str | None = None) -> None:
        self.url = url
        self.visitor_pass = visitor_pass
        self.updates: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.client = socketio.AsyncClient(reconnection=False)
        self.client.on("queue_update", self._on_update)

    async def _on_update(self, payload: dict[str, Any]) -> None:
        self.visitor_pass = payload.get("pass") or self.visitor_pass
        self.updates.append(payload)
        self.changed.set()

    async def connect(self) -> AsyncVisitor:
        await self.client.connect(self.url, transports=["websocket"], wait_timeout=20)
        return self

    async def register(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"room": "default"}
        if self.visitor_pass:
            payload["pass"] = self.visitor_pass
        mark = len(self.updates)
        ack = await self.client.call("register", payload, timeout=30)
        assert ack["ok"], ack
        return await self.wait_for(lambda u: True, start=mark)

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        start: int = 0,
        timeout_s: float = 20,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for update in self.updates[start:]:
                if predicate(update):
                    return update
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching update; got {self.updates[-3:]}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.disconnect()
        # A socket the server closed first is not closed by the client itself.
        ws = getattr(self.client.eio, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        http = getattr(self.client.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()


async def _connect_all(
    url: str, count: int, *, at_once: int = 100
) -> list[AsyncVisitor]:
    gate = asyncio.Semaphore(at_once)

    async def one() -> AsyncVisitor:
        async with gate:
            return await AsyncVisitor(url).connect()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _close_all(visitors: list[AsyncVisitor]) -> None:
    await asyncio.gather(*(v.close() for v in visitors))


@pytest.fixture
def many_files() -> Iterator[None]:
    """Raise this process's open-file limit (inherited by the servers it starts)
    for tests with a thousand sockets."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# Lifespan ---------------------------------------------------------------------


def _in_process_app(redis_url: str) -> tuple[Starlette, Equeue]:
    settings = Settings(
        secret=SECRET,
        rooms={"default": RoomRules(capacity=1, heartbeat_timeout_s=120)},
        store_url=redis_url,
        tick_interval_s=0.05,
        admin_key=ADMIN_KEY,
    )
    started: list[str] = []

    @contextlib.asynccontextmanager
    async def own_lifespan(app: Starlette) -> Any:
        started.append("up")
        yield {"greeting": "hello"}
        started.append("down")

    async def home(request: Request) -> Response:
        return PlainTextResponse(request.state.greeting)

    app = Starlette(routes=[Route("/", home)], lifespan=own_lifespan)
    app.state.lifecycle = started
    waiting_room = Equeue(app, settings=settings)

    @waiting_room.protect()
    async def shop(request: Request) -> Response:
        return PlainTextResponse("You are in")

    app.router.routes.append(Route("/shop", shop))
    return app, waiting_room


def test_lifespan_start_and_stop_leave_no_task_running(redis_url: str) -> None:
    app, waiting_room = _in_process_app(redis_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario() -> list[asyncio.Task[Any]]:
        config = uvicorn.Config(
            waiting_room.asgi_app(),
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            assert not serving.done(), "uvicorn stopped during start-up"
            await asyncio.sleep(0.02)
        assert waiting_room._ticker is not None and not waiting_room._ticker.done()

        # The app's own lifespan runs inside the waiting room's and keeps its state.
        home = await asyncio.to_thread(requests.get, f"{url}/", timeout=5)
        assert home.text == "hello"
        assert app.state.lifecycle == ["up"]

        # Connected visitors start Socket.IO's service task and the Redis
        # manager's listener; they must stop with the server too.
        await asyncio.to_thread(_admit_one, url)
        visitors = await _connect_all(url, 20)
        places = [(await v.register())["position"] for v in visitors]
        assert sorted(places) == list(range(1, 21))

        server.should_exit = True
        await asyncio.wait_for(serving, 20)
        await _close_all(visitors)
        await asyncio.sleep(0.2)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    left_over = run_async(scenario())

    assert left_over == []
    assert app.state.lifecycle == ["up", "down"]
    assert waiting_room._ticker is None


# Shutdown under load ------------------------------------------------------------


def test_shutdown_under_load_keeps_every_place(
    server_factory: Callable[..., ServerProcess], redis_url: str, many_files: None
) -> None:
    url, server = _start(
        server_factory, _example("starlette"), "starlette-1", REDIS_URL=redis_url
    )
    _admit_one(url)
    count = 300

    async def before() -> dict[str, int]:
        visitors = await _connect_all(url, count)
        updates = await asyncio.gather(*(v.register() for v in visitors))
        places = {u["pass"]: u["position"] for u in updates}

        # Stop the server while every visitor beats and a few more register.
        async def beat(v: AsyncVisitor) -> None:
            with contextlib.suppress(Exception):
                for _ in range(50):
                    await v.client.call("heartbeat", {}, timeout=5)

        load = [asyncio.create_task(beat(v)) for v in visitors]
        await asyncio.sleep(0.3)
        code = await asyncio.to_thread(server.stop, timeout_s=15)
        # uvicorn shuts down, then re-raises the SIGTERM it caught (exit -15).
        assert code in (0, -signal.SIGTERM), f"exit {code}: {server.output_tail()}"
        await asyncio.gather(*load)
        await _close_all(visitors)
        return places

    places = run_async(before())
    assert sorted(places.values()) == list(range(1, count + 1))
    log = server.output()
    assert "equeue shut down" in log
    assert "Application shutdown complete" in log
    troubles = [
        line
        for line in log.splitlines()
        if any(
            sign in line
            for sign in ("Traceback", "Task was destroyed", "tick failed", " ERROR ")
        )
    ]
    assert troubles == []

    # A new server on the same Redis finds every waiter in their place.
    url, _ = _start(
        server_factory, _example("starlette"), "starlette-2", REDIS_URL=redis_url
    )
    assert _status(url)["queue_length"] == count

    async def after() -> dict[str, int]:
        visitors = [AsyncVisitor(url, visitor_pass) for visitor_pass in places]
        await asyncio.gather(*(v.connect() for v in visitors))
        updates = await asyncio.gather(*(v.register() for v in visitors))
        await _close_all(visitors)
        return {
            visitor_pass: update["position"]
            for visitor_pass, update in zip(places, updates, strict=True)
        }

    assert run_async(after()) == places
    assert _status(url)["queue_length"] == count


# The event loop never blocks ------------------------------------------------------

#: Runs the example under an asyncio loop in debug mode, with a slow-callback
#: threshold, a marker for any synchronous Redis call or time.sleep on the loop's
#: thread, and one route that blocks on purpose to prove the detectors work.
_LAUNCHER = textwrap.dedent(
    """
    import asyncio, gc, logging, os, sys, threading, time

    import redis
    import uvicorn
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    sys.path.insert(0, sys.argv[1])
    from starlette_app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    loop_thread = threading.main_thread()

    real_sleep = time.sleep

    def watched_sleep(seconds):
        if threading.current_thread() is loop_thread:
            print("BLOCKING: time.sleep on the event loop thread", flush=True)
        real_sleep(seconds)

    time.sleep = watched_sleep

    gc_started = [0.0]

    def gc_watch(phase, info):
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            pause = time.perf_counter() - gc_started[0]
            if pause > 0.01:
                print(f"GC pause gen {info['generation']} {pause:.3f}", flush=True)

    gc.callbacks.append(gc_watch)
    sync_call = redis.Redis.execute_command

    def guarded(self, *args, **kwargs):
        print("BLOCKING: synchronous redis call", args[:1], flush=True)
        return sync_call(self, *args, **kwargs)

    redis.Redis.execute_command = guarded

    async def block(request):
        time.sleep(0.3)
        return PlainTextResponse("blocked")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = float(sys.argv[2])
        app, waiting_room = create_app()
        app.router.routes.append(Route("/_test/block", block))
        # What start-up imported never becomes garbage: keep the collector from
        # walking it, or a full collection alone pauses the loop for ~80 ms.
        gc.freeze()
        config = uvicorn.Config(
            waiting_room.asgi_app(), host="127.0.0.1", port=int(os.environ["PORT"]),
            lifespan="on", log_config=None, access_log=False, loop="asyncio",
            timeout_graceful_shutdown=5,
        )
        await uvicorn.Server(config).serve()

    asyncio.run(main())
    """
)
SLOW_CALLBACK_S = 0.05


_TOOK = re.compile(r"Executing .* took (\d+\.\d+) seconds")
_GC_PAUSE = re.compile(r"GC pause gen \d (\d+\.\d+)")


def _blocking_lines(text: str) -> list[str]:
    """The lines that show the loop blocked: a marker of a blocking call, or a
    slow callback that the garbage collector does not explain.

    A full collection pauses whatever callback is running (asyncio's debug mode
    keeps a traceback per task, which makes them long); the launcher prints each
    pause, so a slow callback whose excess over the threshold is covered by the
    pauses printed just before it is the collector's, not a blocking call's.
    """
    found: list[str] = []
    recent: list[str] = []
    for line in text.splitlines():
        took = _TOOK.search(line)
        if "BLOCKING" in line:
            found.append(line)
        elif took:
            paused = sum(
                float(m.group(1)) for m in map(_GC_PAUSE.search, recent[-5:]) if m
            )
            if float(took.group(1)) - paused > SLOW_CALLBACK_S:
                found.append(line)
            recent = []
            continue
        recent.append(line)
    return found


def test_no_blocking_call_in_the_event_loop(
    server_factory: Callable[..., ServerProcess],
    redis_url: str,
    tmp_path: Path,
    many_files: None,
) -> None:
    launcher = tmp_path / "debug_loop_launcher.py"
    launcher.write_text(_LAUNCHER, encoding="utf-8")
    url, server = _start(
        server_factory,
        [sys.executable, str(launcher), str(EXAMPLES), str(SLOW_CALLBACK_S)],
        "starlette-debug-loop",
        REDIS_URL=redis_url,
        PYTHONASYNCIODEBUG="1",
    )

    # Warm up (first imports and connections), then prove the detectors fire.
    _admit_one(url)
    requests.get(f"{url}/equeue/wait", timeout=10)
    warm = run_async(_burst(url, 5))
    assert warm == list(range(2, 7))
    requests.get(f"{url}/_test/block", timeout=10)
    deadline = time.monotonic() + 5
    while len(_blocking_lines(server.output())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    control = _blocking_lines(server.output())
    assert any("took" in line for line in control), server.output_tail()
    assert any("time.sleep" in line for line in control), server.output_tail()
    seen = len(server.output())

    # The burst: registrations, heartbeats, ticks, wait pages and status pages.
    places = run_async(_burst(url, 300, http_joins=100))
    assert len(set(places)) == 300 and places[0] >= 7 and places[-1] <= 406
    assert _status(url)["queue_length"] == 406
    time.sleep(1)

    during = _blocking_lines(server.output()[seen:])
    assert during == [], "\n".join(during)


async def _burst(url: str, sockets: int, http_joins: int = 0) -> list[int]:
    """Register ``sockets`` visitors at once (beating, with ``http_joins`` wait
    pages alongside) and return their positions in order."""
    visitors = await _connect_all(url, sockets)

    def wait_pages() -> None:
        with requests.Session() as session:
            for _ in range(http_joins):
                session.cookies.clear()
                session.get(f"{url}/equeue/wait", timeout=10)
                session.get(
                    f"{url}/queue_status?format=json", headers=ADMIN, timeout=10
                )

    pages = asyncio.create_task(asyncio.to_thread(wait_pages))
    updates = await asyncio.gather(*(v.register() for v in visitors))
    await asyncio.gather(
        *(v.client.call("heartbeat", {}, timeout=10) for v in visitors)
    )
    await pages
    await _close_all(visitors)
    return sorted(u["position"] for u in updates)


# A burst over the asyncio Redis store ------------------------------------------


def test_a_burst_of_1000_joins_over_async_redis_loses_none(
    server_factory: Callable[..., ServerProcess], redis_url: str, many_files: None
) -> None:
    url, _ = _start(
        server_factory, _example("starlette"), "starlette-burst", REDIS_URL=redis_url
    )
    _admit_one(url)
    count = 1000

    async def burst() -> list[dict[str, Any]]:
        visitors = await _connect_all(url, count, at_once=200)
        try:
            # Every register at once: far more than the store's connection pool.
            acks = await asyncio.gather(
                *(
                    v.client.call("register", {"room": "default"}, timeout=60)
                    for v in visitors
                )
            )
            assert all(ack["ok"] for ack in acks), [a for a in acks if not a["ok"]][:3]
            return await asyncio.gather(*(v.wait_for(lambda u: True) for v in visitors))
        finally:
            await _close_all(visitors)

    updates = run_async(burst())

    assert sorted(u["position"] for u in updates) == list(range(1, count + 1))
    status = _status(url)
    assert status["queue_length"] == count
    assert status["tickets_issued"] == count + 1


# Flask and Starlette serving one room ------------------------------------------


@pytest.mark.parametrize("deciding", ["flask", "starlette"])
def test_flask_and_starlette_servers_share_one_room(
    server_factory: Callable[..., ServerProcess], redis_url: str, deciding: str
) -> None:
    """Visitors queued through either server keep one order, and an admission
    decided by one server reaches a visitor's socket on the other through the
    Socket.IO Redis manager (both on the channel ``equeue``).

    The deciding server ticks every 0.2 s; the other one only every 60 s, so the
    update on its socket can only have come through the manager in time.
    """
    other = "starlette" if deciding == "flask" else "flask"
    fast_url, _ = _start(
        server_factory, _example(deciding), f"{deciding}-fast", REDIS_URL=redis_url
    )
    slow_url, _ = _start(
        server_factory,
        _example(other),
        f"{other}-slow",
        REDIS_URL=redis_url,
        EQUEUE_TICK_INTERVAL="60",
    )
    shopper = _admit_one(slow_url)

    async def scenario() -> None:
        # Arrivals alternate between the two servers.
        first = await AsyncVisitor(slow_url).connect()
        second = await AsyncVisitor(fast_url).connect()
        third = await AsyncVisitor(slow_url).connect()
        people = [first, second, third]
        try:
            places = [(await v.register())["position"] for v in people]
            assert places == [1, 2, 3]

            # The head of the queue also has a tab open on the deciding server.
            tab = AsyncVisitor(fast_url, first.visitor_pass)
            people.append(await tab.connect())
            assert (await tab.register())["position"] == 1
            mark = len(first.updates)

            left = await asyncio.to_thread(
                shopper.post,
                f"{fast_url}/equeue/leave?room=default",
                headers={"Accept": "application/json"},
                timeout=10,
            )
            assert left.json() == {"left": True}

            admitted = await first.wait_for(
                lambda u: u["status"] == "admitted", start=mark, timeout_s=10
            )
            assert admitted["position"] == 0 and admitted["admit_url"]
            moved = await second.wait_for(lambda u: u["position"] == 1, timeout_s=10)
            assert moved["status"] == "queued"
        finally:
            await _close_all(people)

    run_async(scenario())

    for url in (fast_url, slow_url):
        status = _status(url)
        assert (status["queue_length"], status["active"]) == (2, 1)
