"""Spawned worker pools that never outlive the process that started them.

Usage: ``with worker_pool(2, init, (arg,)) as pool: pool.submit(fn, x)``

``robodecode eval`` and ``robodecode collect`` run episodes in ``spawn`` worker processes (each
holds an env, a policy, often hundreds of MiB). A plain ``ProcessPoolExecutor`` leaves them
running when its parent is killed, and on SIGTERM or Ctrl-C the parent either dies at once
(SIGTERM: workers orphaned) or waits for every running episode (Ctrl-C). Here:

* Parent death, however it happens (``kill -9`` included): every worker holds the read end of a
  pipe whose only write end the parent keeps; a daemon thread in the worker blocks on it and
  exits the worker when it reads end-of-file, which the kernel delivers the moment the parent's
  last descriptor closes. Portable (a ``multiprocessing`` pipe), no polling.
* SIGTERM of the parent (while the pool is open, from the main thread, when nobody installed a
  handler): raises :class:`Terminated` (a ``KeyboardInterrupt``) in the parent, so it unwinds
  like Ctrl-C.
* Ctrl-C / SIGTERM / any exception in the parent: the pool is stopped, not drained: pending work
  is cancelled, the workers are terminated and joined, and the exception propagates. Results the
  caller already stored stay stored; workers ignore SIGINT, so a Ctrl-C sent to the whole
  terminal group cannot kill one halfway through writing a file.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

JOIN_TIMEOUT_S = 5.0  # how long a terminated worker may take before it is killed


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the parent of a :func:`worker_pool`; it unwinds like Ctrl-C."""


@contextmanager
def worker_pool(workers: int, initializer: Callable[..., Any],
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A ``spawn`` process pool whose workers die with this process (see the module docstring).

    Args:
        workers: Number of worker processes.
        initializer: Run once in each worker after the parent-death watch starts (must be
            picklable by reference: a module-level function).
        initargs: Arguments of ``initializer``.

    Yields:
        The pool. Leaving the block normally waits for submitted work; leaving it by an
        exception (``KeyboardInterrupt`` and :class:`Terminated` included) or by closing the
        generator that holds it cancels pending work and terminates the workers.
    """
    ctx = multiprocessing.get_context("spawn")
    lifeline, keep = ctx.Pipe(duplex=False)  # workers read; only this process writes
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                               initargs=(lifeline, initializer, initargs))
    try:
        with _sigterm_raises():
            yield pool
    except BaseException:
        stop_pool(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        keep.close()  # any worker still alive now reads EOF and exits
        lifeline.close()


def describe_stop(stop: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped a run and the shell's exit status for it (128 + the signal's number).

    Returns:
        ``("terminated (SIGTERM)", 143)`` for :class:`Terminated`, else
        ``("interrupted", 130)`` (Ctrl-C).
    """
    if isinstance(stop, Terminated):
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    return "interrupted", 128 + signal.SIGINT


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel pending work, terminate the workers (kill after ``JOIN_TIMEOUT_S``) and join them."""
    # shutdown() drops the pool's references to its processes and manager thread: keep them.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(JOIN_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join()
    if manager is not None:  # let it finish now: if it were still closing its wakeup pipe at
        manager.join(JOIN_TIMEOUT_S)  # exit, Python <= 3.11 would print EBADF tracebacks


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while inside (main thread, default handler only)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_worker(lifeline: Connection, initializer: Callable[..., Any],
                  initargs: tuple[Any, ...]) -> None:
    """Worker initializer: watch the parent, leave SIGINT to it, then the caller's setup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_on_eof, args=(lifeline,), name="parent-watch",
                     daemon=True).start()
    initializer(*initargs)


def _exit_on_eof(lifeline: Connection) -> None:
    """Block until the parent's end of ``lifeline`` closes, then end this process at once."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)
