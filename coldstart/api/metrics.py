"""Prometheus metrics: request counts and latency by route, uploads by status.

Each app gets its own registry (tests start several apps in one process). Requests
are measured by a plain ASGI middleware, labelled with the route *template*
(`/v1/uploads/{upload_id}`), never the raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.store import Store

__all__ = ["Metrics", "MetricsMiddleware"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _UploadsCollector:
    """Reads upload counts by status from the store at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self):
        gauge = GaugeMetricFamily("coldstart_uploads", "Uploads by status", labels=["status"])
        with self.store.connect() as conn:
            rows = conn.execute(
                select(t.uploads.c.status, func.count()).group_by(t.uploads.c.status)
            ).all()
        for status, n in rows:
            gauge.add_metric([status], n)
        yield gauge


class Metrics:
    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "coldstart_requests",
            "HTTP requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "coldstart_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.reloads = Counter(
            "coldstart_model_reloads", "Model/index reloads", ["result"], registry=self.registry
        )
        self.registry.register(_UploadsCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(label, method, str(status["code"])).inc()
            self.metrics.latency.labels(label, method).observe(time.perf_counter() - started)
