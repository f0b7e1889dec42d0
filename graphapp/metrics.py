"""This process's metrics in Prometheus' form (needs prometheus_client: the ``metrics`` extra).

Nothing here counts. At each scrape :class:`GraphappCollector` reads what the
parts of graphapp count already: the hubs their streams, graphapp.limits the
connects it refused, the publisher its publications, failures and lag,
graphapp.snapshots its computations. So these numbers and health's agree, and
between scrapes a process pays a few increments and no more.

:data:`registry` is graphapp's own, apart from prometheus_client's global one:
a project's metrics and graphapp's mix only where the project registers one
in the other (``registry.register(...)``, or
``prometheus_client.REGISTRY.register(GraphappCollector())``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from graphapp import snapshots
from graphapp.durations import Durations
from graphapp.hubs import all_hubs
from graphapp.limits import stream_limits
from graphapp.publish import publisher


def _histogram(name: str, documentation: str, durations: Durations) -> HistogramMetricFamily:
    counts, total = durations.read()
    bounds = [*map(floatToGoString, durations.bounds), "+Inf"]
    return HistogramMetricFamily(
        name, documentation, buckets=list(zip(bounds, counts, strict=True)), sum_value=total
    )


class GraphappCollector:
    """graphapp's counters of this process, read when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "graphapp_open_streams",
            "Event streams open in this process.",
            value=sum(len(hub.subscribers) for hub in all_hubs()),
        )
        refused = CounterMetricFamily(
            "graphapp_connects_refused",
            "Stream connects refused by graphapp's limits, by reason: per_user "
            "(MAX_CONNECTIONS_PER_USER, 429), per_process (MAX_CONNECTIONS, 503), "
            "draining (shutting down, 503).",
            labels=["reason"],
        )
        with stream_limits.lock:
            by_reason = sorted(stream_limits.refused.items())
        for reason, count in by_reason:
            refused.add_metric([reason], count)
        yield refused
        yield CounterMetricFamily(
            "graphapp_publications",
            "Publications of this process that reached the channel layer.",
            value=publisher.published,
        )
        yield CounterMetricFamily(
            "graphapp_publication_failures",
            "Publications of this process that did not: the database gave no "
            "statistics, or the channel layer refused them.",
            value=publisher.failures,
        )
        yield _histogram(
            "graphapp_publication_lag_seconds",
            "Seconds from the first commit a publication covers to its send to the "
            "channel layer (coalescing window, statistics, send).",
            publisher.lag,
        )
        yield CounterMetricFamily(
            "graphapp_snapshots",
            "Statistics snapshots computed in this process (publications and hubs' looks).",
            value=snapshots.taken,
        )
        yield _histogram(
            "graphapp_snapshot_seconds",
            "Seconds each statistics snapshot took to compute (those the database answered).",
            snapshots.durations,
        )


#: What ``GET /graph/metrics/`` exposes: graphapp's metrics and the process's
#: own (``process_*``: CPU, memory, open files, start time), nothing else.
registry = CollectorRegistry()
registry.register(GraphappCollector())
ProcessCollector(registry=registry)


def exposition(accept: str) -> tuple[bytes, str]:
    """:data:`registry` in the format an ``Accept`` header asks for (OpenMetrics,
    or Prometheus' text format by default), and its content type."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
