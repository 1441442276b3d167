"""Micro-batching: requests of many client threads answered by one batched call.

Usage: ``batcher = MicroBatcher(policy_batch_fn, BatchConfig(window_ms=2, max_batch=64))``;
then, from any thread, ``outcome, queued_s = batcher.submit(obs)``.

One worker thread owns the model. A request waits in a queue until a batch is dispatched,
which happens as soon as one of these holds:

- ``max_batch`` requests are queued;
- every request that could still arrive is already queued (``capacity()``, e.g. the number of
  open connections, since each connection has at most one request in flight): a lone client
  never waits for the window;
- ``window_ms`` has passed since the oldest queued request arrived or the previous batch
  ended, whichever is later, and every request that had been received by then
  (:meth:`MicroBatcher.announce`: its message is in, still being decoded and checked) is
  queued or refused. Counting from the previous batch's end gives the clients it just
  answered a window to come back, so two groups of clients do not settle into taking turns
  with half batches; the wait for announced requests keeps a burst from being cut in two by
  the time its messages take to check (it is bounded by one message's checks).

The batch function maps a list of items to a list of outcomes of the same length: a result,
or the exception that item raised. Each item gets its own outcome; the batch function decides
what shares a forward pass (:meth:`policies.vla_policy.VLAPolicy.infer_batch` groups
compatible observations and runs the rest apart). :func:`infer_each` is the batch function of
a policy without ``infer_batch``: one ``infer`` per item.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 64
"""Default largest batch (the server's default connection limit)."""

BATCH_WINDOW_MS = 2.0
"""Default time the oldest queued request may wait for others to join its batch."""


@dataclass(frozen=True)
class BatchConfig:
    """How requests of concurrent clients are batched.

    Attributes:
        window_ms: Longest time (ms) the oldest queued request waits for others to join its
            batch; 0 dispatches whatever is queued at once.
        max_batch: Most requests in one batch; 1 serves every request alone, in the thread
            that received it, under one lock (the server before batching).
    """

    window_ms: float = BATCH_WINDOW_MS
    max_batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        if not (isinstance(self.window_ms, int | float) and 0 <= self.window_ms <= 1000):
            raise ValueError(f"window_ms must be a number in [0, 1000], got {self.window_ms!r}")
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or \
                not 1 <= self.max_batch <= 4096:
            raise ValueError(f"max_batch must be an int in [1, 4096], got {self.max_batch!r}")

    @property
    def batched(self) -> bool:
        """Whether requests can share a batch (``max_batch > 1``)."""
        return self.max_batch > 1


DEFAULT_BATCHING = BatchConfig()
"""What the policy server does unless told otherwise (2 ms window, batches of up to 64)."""

SERIAL = BatchConfig(window_ms=0.0, max_batch=1)
"""One request at a time (no batching)."""


def infer_each(policy: Any, observations: Sequence[Any]) -> list[Any]:
    """Outcomes of ``policy.infer`` on each observation alone (a result or its exception)."""
    outcomes: list[Any] = []
    for obs in observations:
        try:
            outcomes.append(policy.infer(obs))
        except Exception as err:  # noqa: BLE001 - the item's outcome, raised to its caller
            outcomes.append(err)
    return outcomes


class _Pending:
    """One submitted item: when it arrived, when its batch started, and its outcome."""

    __slots__ = ("item", "arrived", "started", "outcome", "done")

    def __init__(self, item: Any) -> None:
        self.item, self.arrived, self.started = item, time.monotonic(), 0.0
        self.outcome: Any = None
        self.done = threading.Event()


class MicroBatcher:
    """A queue in front of one worker thread that runs items in batches (see the module).

    Args:
        run: The batch function: list of items -> list of outcomes (result or exception), one
            per item, in order. An exception it raises becomes every item's outcome.
        config: Window and largest batch.
        capacity: How many items could be queued at most right now (e.g. open connections);
            the batch is dispatched when that many are queued. ``None``: only ``max_batch``.

    Raises:
        ValueError: If ``config`` serves one request at a time (no worker is needed then).
    """

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], config: BatchConfig,
                 capacity: Callable[[], int] | None = None) -> None:
        if not config.batched:
            raise ValueError("a MicroBatcher needs max_batch > 1")
        self.config, self._run, self._capacity = config, run, capacity
        self._queue: collections.deque[_Pending] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self._tickets = 0  # announcements so far
        self._idle_since = time.monotonic()  # when the last batch ended
        self._arriving: set[int] = set()  # announced, not yet submitted or withdrawn
        self._worker = threading.Thread(target=self._work, name="policy-batcher", daemon=True)
        self._worker.start()

    def announce(self) -> int:
        """Say that an item is on its way (received, being checked); returns its ticket.

        Pass the ticket to :meth:`submit`, or to :meth:`withdraw` if the item never comes.
        """
        with self._ready:
            self._tickets += 1
            self._arriving.add(self._tickets)
            return self._tickets

    def withdraw(self, ticket: int) -> None:
        """An announced item will not be submitted (a no-op once it was)."""
        with self._ready:
            if ticket in self._arriving:
                self._arriving.discard(ticket)
                self._ready.notify()

    def submit(self, item: Any, ticket: int | None = None) -> tuple[Any, float]:
        """Queue ``item`` (announced as ``ticket``, if it was) and wait for its outcome.

        Returns:
            ``(outcome, queued_s)``: the result or the exception the batch function gave for
            it (returned, not raised), and the seconds it waited before its batch started.
        """
        pending = _Pending(item)
        with self._ready:
            self._arriving.discard(ticket)
            if self._closed:
                return RuntimeError("the server is shutting down"), 0.0
            self._queue.append(pending)
            self._ready.notify()
        pending.done.wait()
        return pending.outcome, max(0.0, pending.started - pending.arrived)

    def close(self) -> None:
        """Stop the worker after its current batch; queued items get a ``RuntimeError``."""
        with self._ready:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._ready.notify_all()
        for pending in left:
            pending.outcome = RuntimeError("the server is shutting down")
            pending.done.set()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout=30)

    def _target(self) -> int:
        """Batch size worth waiting for: ``max_batch``, or fewer if fewer can arrive."""
        limit = self.config.max_batch
        if self._capacity is not None:
            limit = min(limit, max(1, self._capacity()))
        return limit

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for a batch to be due (see the module docstring); ``None`` once closed."""
        window = self.config.window_ms / 1e3
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            cutoff = None  # tickets announced before the window ran out are waited for
            while not self._closed:
                opened = max(self._queue[0].arrived, self._idle_since)
                left = opened + window - time.monotonic()
                if len(self._queue) >= self._target():
                    break
                if left <= 0:
                    cutoff = self._tickets + 1 if cutoff is None else cutoff
                    if not any(t < cutoff for t in self._arriving):
                        break
                self._ready.wait(left if left > 0 else None)
            if self._closed:
                return None
            n = min(len(self._queue), self.config.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            started = time.monotonic()
            for pending in batch:
                pending.started = started
            try:
                outcomes = list(self._run([p.item for p in batch]))
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"the batch function returned {len(outcomes)} outcomes "
                                       f"for {len(batch)} items")
            except Exception as err:  # noqa: BLE001 - reported to every item's caller
                outcomes = [err] * len(batch)
            with self._ready:
                self._idle_since = time.monotonic()
            for pending, outcome in zip(batch, outcomes, strict=True):
                pending.outcome = outcome
                pending.done.set()
