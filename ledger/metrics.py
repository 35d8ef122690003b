"""Prometheus metrics of ``ledger serve``, ``ledger relay`` and ``ledger project``.

``--metrics-port PORT`` (``LEDGER_METRICS_PORT``) serves them at ``/metrics`` on
127.0.0.1 unless ``--metrics-address`` (``LEDGER_METRICS_ADDRESS``) names another
address: the numbers say how busy the ledger is, so they are not published beyond the
host unless asked.  Read at each scrape:

- positions, from the store: ``ledger_store_head_position``, ``ledger_relay_position``
  (tracked) and ``ledger_relay_lag_positions``, ``ledger_projector_position`` (the stored
  views) and ``ledger_projector_lag_positions``;
- what the services in this process did since it started (counters: Prometheus'
  ``rate()`` gives the rates): ``ledger_relay_published_events_total``,
  ``ledger_relay_errors_total`` (failed publish rounds, each retried),
  ``ledger_relay_resyncs_total``, ``ledger_projector_applied_events_total``,
  ``ledger_projector_errors_total`` (runs stopped by an error, each retried) and
  ``ledger_projector_poison_messages_total`` (stream messages refused as not the store's
  events);
- the NATS projector's hold (``LEDGER_PROJECTOR_SOURCE=nats``, ``--source nats``):
  ``ledger_projector_held_messages`` (stream messages received and held until a signed
  checkpoint covers them) and ``ledger_projector_oldest_held_seconds`` (how long the
  oldest of them has waited; 0 when none is held).  A hold that keeps growing towards
  ``LEDGER_VERIFY_STALL_TIMEOUT`` is a relay that publishes no checkpoints, or forged
  events;
- ``ledger_metrics_store_errors_total``: scrapes that could not read the store (the
  position gauges are then left out of that scrape).

A service with a verifying subscriber (``subscribe(verify=True)``) exports the same two
figures for it with ``SubscriptionCollector`` in its own registry:
``ledger_subscriber_held_messages`` and ``ledger_subscriber_oldest_held_seconds``
(label ``consumer``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.projections.runner import ProjectorTotals, RunResult
    from ledger.relay import Relay
    from ledger.subscriber import Subscription

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1"
VIEWS_TRACKING = "views"


class LedgerCollector(Collector):
    """Reads the positions from the store at each scrape, and the counters from the
    relay and projector objects this process runs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.relay: Relay | None = None
        self.projector: ProjectorTotals | RunResult | None = None
        self.store_errors = 0
        self._app: Ledger | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self._lock:  # one scrape at a time reads through the one ledger
            yield from self._positions()
        if self.relay is not None:
            stats = self.relay.stats
            yield _counter(
                "ledger_relay_published_events", "Events published and acked.", stats.published
            )
            yield _counter(
                "ledger_relay_errors", "Failed publish rounds (each retried).", len(stats.failures)
            )
            yield _counter(
                "ledger_relay_resyncs", "Resynchronisations with the stream.", stats.resyncs
            )
        if self.projector is not None:
            yield _counter(
                "ledger_projector_applied_events",
                "Events applied to the stored views.",
                self.projector.applied,
            )
            yield _counter(
                "ledger_projector_errors",
                "Projector runs stopped by an error (each retried).",
                getattr(self.projector, "errors", 0),
            )
            yield _counter(
                "ledger_projector_poison_messages",
                "Stream messages refused as not the store's events.",
                self.projector.rejected,
            )
            yield from _hold_gauges(
                "ledger_projector",
                "Stream messages the NATS projector holds until a signed checkpoint covers them.",
                self.projector.held,
                self.projector.held_since,
            )
        yield _counter(
            "ledger_metrics_store_errors",
            "Scrapes that could not read the store.",
            self.store_errors,
        )

    def _positions(self) -> Iterator[Any]:
        from ledger.relay import read_tracked_position, read_tracking

        try:
            if self._app is None:
                from ledger.app import Ledger

                self._app = Ledger(self.settings)
            app = self._app
            head = app.head()
            relay = read_tracked_position(app, self.settings.stream)
            views = read_tracking(app, VIEWS_TRACKING)
        except Exception as exc:
            self.store_errors += 1
            log.warning("metrics: could not read the store: %s", exc)
            self.close()
            return
        yield _gauge("ledger_store_head_position", "The store's newest position.", head)
        yield _gauge("ledger_relay_position", "The relay's tracked position.", relay)
        yield _gauge("ledger_relay_lag_positions", "Store head - relay position.", head - relay)
        yield _gauge("ledger_projector_position", "The stored views' position.", views)
        yield _gauge(
            "ledger_projector_lag_positions", "Store head - views' position.", max(0, head - views)
        )

    def close(self) -> None:
        app, self._app = self._app, None
        if app is not None:
            app.close()


def _hold_gauges(
    prefix: str, doc: str, held: int, since: float | None, labels: dict[str, str] | None = None
) -> Iterator[GaugeMetricFamily]:
    """``{prefix}_held_messages`` and ``{prefix}_oldest_held_seconds`` (0 when none is held)."""
    age = 0.0 if since is None else max(0.0, time.monotonic() - since)
    gauges = (
        (f"{prefix}_held_messages", doc, float(held)),
        (f"{prefix}_oldest_held_seconds", "Seconds the oldest held message has waited.", age),
    )
    for name, text, value in gauges:
        if labels is None:
            yield _gauge(name, text, value)
        else:
            family = GaugeMetricFamily(name, text, labels=list(labels))
            family.add_metric(list(labels.values()), value)
            yield family


class SubscriptionCollector(Collector):
    """A verifying subscription's hold, for a service's own Prometheus registry::

        registry.register(SubscriptionCollector(sub))

    ``ledger_subscriber_held_messages`` and ``ledger_subscriber_oldest_held_seconds``,
    labelled with the consumer's name: a subscription waiting on a checkpoint that does
    not come shows here long before ``stall_timeout`` stops it."""

    def __init__(self, subscription: Subscription):
        self.subscription = subscription

    def collect(self) -> Iterator[Any]:
        sub = self.subscription
        yield from _hold_gauges(
            "ledger_subscriber",
            "Events a verifying subscriber holds until a signed checkpoint covers them.",
            sub.held,
            sub.held_since,
            {"consumer": sub.consumer or sub.durable or ""},
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class MetricsServer:
    """``/metrics`` over HTTP in a daemon thread, until ``stop()``."""

    def __init__(self, settings: Settings, port: int, address: str = DEFAULT_ADDRESS):
        self.collector = LedgerCollector(settings)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self._server, self._thread = start_http_server(port, address, registry=self.registry)
        self.address = address
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.collector.close()
