"""Prometheus metrics for ``/metrics``, one registry per waiting room instance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .config import Settings
from .stores.base import RoomSnapshot

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _RoomCollector(Collector):
    """Reads each room's state from the store at scrape time, so every process
    reports the same cluster-wide numbers."""

    def __init__(
        self, settings: Settings, snapshots: Callable[[], Sequence[RoomSnapshot]]
    ) -> None:
        self._settings = settings
        self._snapshots = snapshots

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snapshots = self._snapshots()
        waiting = GaugeMetricFamily(
            "equeue_waiting", "Visitors waiting in the queue", labels=["room"]
        )
        active = GaugeMetricFamily(
            "equeue_active", "Admitted visitors counted as active", labels=["room"]
        )
        capacity = GaugeMetricFamily(
            "equeue_capacity", "Configured capacity", labels=["room"]
        )
        admitted = CounterMetricFamily(
            "equeue_admitted",
            "Visitors admitted since the room's data began",
            labels=["room"],
        )
        evicted = CounterMetricFamily(
            "equeue_evicted",
            "Waiters who lost their place by going silent",
            labels=["room"],
        )
        for snap in snapshots:
            waiting.add_metric([snap.room], snap.queue_length)
            active.add_metric([snap.room], snap.active)
            capacity.add_metric([snap.room], self._settings.rooms[snap.room].capacity)
            admitted.add_metric([snap.room], snap.admitted_total)
            evicted.add_metric([snap.room], snap.evicted_total)
        yield from (waiting, active, capacity, admitted, evicted)


class Metrics:
    """The metrics of one waiting room instance (its own registry, so that several
    apps in one process, as in tests, never collide)."""

    def __init__(
        self, settings: Settings, snapshots: Callable[[], Sequence[RoomSnapshot]]
    ) -> None:
        # No auto-describe: registering would otherwise collect, reading the
        # store at start-up, and an unreachable Redis would stop the app.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RoomCollector(settings, snapshots))
        self.events = Counter(
            "equeue_socket_events",
            "Socket.IO events handled, by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.ticks = Counter(
            "equeue_ticks",
            "Ticks run by this process, by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
