"""Edge: the edge server's counters and latency histogram, rendered in Prometheus text format.

A tiny thread-safe registry (no client library needed): counters of accepted, signed, sent,
committed, failed and rejected updates (rejections labelled by reason) and a histogram of HTTP
request latency per route. ``GET /metrics`` serves :meth:`EdgeMetrics.render`.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

__all__ = ["EdgeMetrics", "LATENCY_BUCKETS_S"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PREFIX = "fednode_edge"
_COUNTERS = {
    "updates_accepted_total": "Updates acknowledged to devices (on disk).",
    "updates_signed_total": "Update transactions signed and stored.",
    "updates_submitted_total": "Update transactions the node accepted into its pool.",
    "updates_committed_total": "Updates on chain at the configured confirmation depth.",
    "updates_failed_total": "Updates the chain refused for good.",
}


class EdgeMetrics:
    """Counters and a request-latency histogram of one edge server.

    Example:
      >>> metrics = EdgeMetrics()
      >>> metrics.count("updates_accepted_total")
      >>> metrics.observe_request("/v1/updates", 202, 0.02)
      >>> "fednode_edge_updates_accepted_total 1" in metrics.render()
      True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._rejected: dict[str, int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)

    def count(self, name: str, amount: int = 1) -> None:
        """Adds to one of the named counters."""
        with self._lock:
            self._counters[name] += amount

    def count_rejected(self, reason: str) -> None:
        """Counts one refused request by its reason code."""
        with self._lock:
            self._rejected[reason] += 1

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Records one request's latency under its route template and status class."""
        key = (route, f"{status // 100}xx")
        with self._lock:
            counts = self._buckets.setdefault(key, [0] * (len(LATENCY_BUCKETS_S) + 1))
            counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self._sums[key] += seconds

    def value(self, name: str) -> int:
        """The current value of a named counter."""
        with self._lock:
            return self._counters[name]

    def render(self) -> str:
        """All metrics in the Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = self._render_counters() + self._render_rejected() + self._render_latency()
        return "\n".join(lines) + "\n"

    def _render_counters(self) -> list[str]:
        lines = []
        for name, help_text in _COUNTERS.items():
            lines += [f"# HELP {_PREFIX}_{name} {help_text}", f"# TYPE {_PREFIX}_{name} counter"]
            lines.append(f"{_PREFIX}_{name} {self._counters[name]}")
        return lines

    def _render_rejected(self) -> list[str]:
        name = f"{_PREFIX}_requests_rejected_total"
        lines = [f"# HELP {name} Requests refused, by reason.", f"# TYPE {name} counter"]
        lines += [f'{name}{{reason="{r}"}} {n}' for r, n in sorted(self._rejected.items())]
        return lines

    def _render_latency(self) -> list[str]:
        name = f"{_PREFIX}_request_duration_seconds"
        lines = [f"# HELP {name} HTTP request latency.", f"# TYPE {name} histogram"]
        for (route, status), counts in sorted(self._buckets.items()):
            labels = f'route="{route}",status="{status}"'
            running = 0
            for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
            lines.append(f"{name}_sum{{{labels}}} {self._sums[(route, status)]:.6f}")
            lines.append(f"{name}_count{{{labels}}} {running}")
        return lines
