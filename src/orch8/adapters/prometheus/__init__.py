"""Metrics on prometheus-client (the only package that imports it)."""

from orch8.adapters.prometheus.metrics import PrometheusMetrics

__all__ = ["PrometheusMetrics"]
