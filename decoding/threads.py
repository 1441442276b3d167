"""Torch CPU threads: one default for every command and the Python API, applied per call.

Usage: ``with cpu_threads(DEFAULT_CPU_THREADS): model(...)``

Small models decode with many tiny kernels; on a small or shared CPU every extra torch thread
spins and waits. On this project's 2-core machine a 64x128 @ 128x128 matmul took 25 us with one
thread and 1,215 us with two while another process kept the second core busy. So inference
defaults to one thread, and the setting is *scoped*: :func:`cpu_threads` sets it for the
duration of a call and restores the caller's value afterwards (``torch.set_num_threads`` costs
well under a microsecond), so importing or constructing anything never flips a global flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DEFAULT_CPU_THREADS = 1
"""Torch threads for CPU inference and the CLI's ``--threads`` default (raise it on a large,
idle machine; per-worker in parallel evaluation)."""


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the previous count.

    Args:
        n: Threads to use; ``None`` leaves torch's current setting alone.

    Raises:
        ValueError: If ``n`` is not a positive int.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive int or None, got {n!r}")
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)
