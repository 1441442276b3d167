"""Counters and latency percentiles of a policy server, served as JSON on ``GET /metrics``.

Usage: ``metrics.served(latency_s)``; ``metrics.batch(size)``; ``json.dumps(metrics.snapshot())``

Latency is server-side: from the moment a message is received to the moment its reply is
ready (checks, queueing for a batch, inference, packing), over the most recent
:data:`LATENCY_WINDOW` answered requests. The batch-size histogram counts batches (a batch of
8 adds one to ``"8"``); requests that failed the server's checks never reach a batch.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import numpy as np

LATENCY_WINDOW = 4096
"""Answered requests whose latencies the percentiles are computed over (the most recent)."""


class ServerMetrics:
    """Thread-safe counters of one server (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.requests = 0
        self.bad_requests = 0
        self.server_errors = 0
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self._batches: collections.Counter[int] = collections.Counter()

    @property
    def errors(self) -> int:
        """Requests answered with an error text (bad requests and server errors)."""
        return self.bad_requests + self.server_errors

    def served(self, latency_s: float) -> None:
        """Count one answered request and its latency."""
        with self._lock:
            self.requests += 1
            self._latencies.append(latency_s)

    def failed(self, bad_request: bool) -> None:
        """Count one request answered with an error (the client's or the policy's)."""
        with self._lock:
            if bad_request:
                self.bad_requests += 1
            else:
                self.server_errors += 1

    def batch(self, size: int) -> None:
        """Count one batch of ``size`` requests run by the policy."""
        with self._lock:
            self._batches[size] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything as plain JSON types: counts, latency percentiles (ms), batch sizes."""
        with self._lock:
            latencies = np.asarray(self._latencies, dtype=np.float64) * 1e3
            batches = dict(sorted(self._batches.items()))
            counts = {"requests": self.requests, "errors": self.errors,
                      "bad_requests": self.bad_requests, "server_errors": self.server_errors}
        pct = {f"p{q}": float(np.percentile(latencies, q)) if latencies.size else None
               for q in (50, 90, 99)}
        batched = sum(size * n for size, n in batches.items())
        return {**counts, "uptime_s": time.monotonic() - self._started,
                "latency_ms": {**pct, "window": int(latencies.size)},
                "batches": sum(batches.values()),
                "mean_batch_size": batched / sum(batches.values()) if batches else None,
                "batch_size_histogram": {str(size): n for size, n in batches.items()}}
