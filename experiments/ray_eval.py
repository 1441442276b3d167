"""Evaluation episodes on Ray actors: the episode source behind ``robodecode eval --ray``.

Usage: robodecode eval --policy expert --episodes 200 --workers 8 --ray [--address auto]

:func:`evaluate <experiments.evaluate.evaluate>` takes its episodes from a *runner*:
``runner(config, out, todo)`` yields one record per finished episode. The default runs them in
this process or in spawned workers; :func:`ray_runner` runs them on ``config.workers`` Ray
actors instead, each holding one env and one policy replica (set up exactly as a local worker:
EGL rendering, ``config.threads`` torch threads). Records come back to this process, which
appends them to the same resumable ``episodes.jsonl`` and writes the same summary.

* Scheduling: an actor gets an episode only once it is up, and its next one when it hands
  the last back, so slow and fast actors share the work and an actor that cannot be placed
  (the cluster is busy) holds none.
* Faults: an actor that dies mid-episode (killed, out of memory, its node lost) is replaced and
  its episode goes back to the queue for the next free actor; an episode that kills
  ``MAX_TRIES`` actors stops the run. An episode is recorded once, when its record arrives, so
  nothing finished is lost or written twice. A killed driver is rerun with ``--resume``.
* Clusters: ``address=None`` starts a local cluster for this command and stops it after;
  ``"auto"`` or ``"host:port"`` joins a running one (``ray start --head`` ...) and leaves it
  running. If this process is already connected (``ray.init`` in a test), that cluster is used.
* GPUs: with ``device="cuda..."`` every actor asks for ``num_gpus = GPUs / actors`` (at most
  1), so several replicas share one GPU; MuJoCo renders on the GPU Ray gave the actor
  (``MUJOCO_EGL_DEVICE_ID``, unless set).
* Videos are written by the actor into its own scratch folder and sent back as bytes, so a
  multi-machine cluster needs no shared filesystem.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.evaluate import EvalConfig

MAX_TRIES = 3  # actors an episode may kill before the run stops


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ValueError: One line saying how to install it.
    """
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'robodecode[dist]' (or pip install "
                         "ray) on this machine and on every node of the cluster") from None
    return ray


def check_address(address: str | None) -> str | None:
    """``None``, ``"auto"``, ``"host:port"`` or ``"ray://host:port"``, else a ``ValueError``."""
    if address is None:
        return None
    text = address.strip()
    host, _, port = text.removeprefix("ray://").rpartition(":")
    if text != "auto" and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"--address must be 'auto' or host:port (e.g. 10.0.0.1:6379), "
                         f"got {address!r}")
    return text


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Connect to Ray for the block: join ``address``, or start a local cluster.

    An existing connection of this process is reused and left open; a connection made here is
    closed on exit (which stops the local cluster it started).

    Yields:
        The ``ray`` module.

    Raises:
        ValueError: Ray is missing, or the address is malformed or unreachable.
    """
    ray = import_ray()
    address = check_address(address)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    try:
        if address is None:
            ray.init(address="local", **kwargs)  # never a stale or foreign cluster
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = "a local Ray cluster" if address is None else f"the Ray cluster at {address}"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot reach {where}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class EpisodeActor:
    """One Ray actor: an env and a policy replica, set up as a local eval worker."""

    def __init__(self, config: dict[str, Any], sys_path: list[str]) -> None:
        """Build the env and the policy (an error is kept for :meth:`ready` to raise).

        Args:
            config: The :class:`~experiments.evaluate.EvalConfig` as a dict.
            sys_path: The driver's ``sys.path``; entries that exist here and are missing are
                appended (``module:factory`` policies from a test folder, for instance).
        """
        sys.path.extend(p for p in sys_path if p not in sys.path and os.path.isdir(p))
        import ray

        gpus = ray.get_gpu_ids()
        if gpus and "MUJOCO_EGL_DEVICE_ID" not in os.environ:  # render on the actor's GPU
            os.environ["MUJOCO_EGL_DEVICE_ID"] = str(gpus[0])
        self.scratch = Path(tempfile.mkdtemp(prefix="robodecode-ray-"))
        self.error: BaseException | None = None
        try:
            from experiments.evaluate import _init_worker

            _init_worker(config, str(self.scratch))
        except Exception as err:  # noqa: BLE001 - raised by ready() as a task error
            self.error = err

    def ready(self) -> int:
        """This actor's pid, once its env and policy are built.

        Raises:
            Exception: Whatever building them raised.
        """
        if self.error is not None:
            raise self.error
        return os.getpid()

    def run(self, index: int) -> tuple[dict[str, Any], bytes | None]:
        """Run episode ``index``: its record and, if it was recorded, the mp4's bytes."""
        from experiments.evaluate import _run_episode

        record = _run_episode(index)
        if "video" not in record:
            return record, None
        video = Path(record["video"])
        data = video.read_bytes()
        video.unlink()
        return record, data


def ray_runner(address: str | None = None) -> Callable[..., Iterator[dict[str, Any]]]:
    """An episode runner for :func:`~experiments.evaluate.evaluate` that uses Ray.

    Args:
        address: ``None`` (a local cluster for the run), ``"auto"`` or ``"host:port"``.

    Raises:
        ValueError: Ray is missing or ``address`` is malformed (checked now, before any run).
    """
    import_ray()
    return partial(ray_episodes, address=check_address(address))


def ray_episodes(config: EvalConfig, out: Path, todo: list[int], *,
                 address: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of episodes ``todo`` as Ray actors finish them (any order).

    Args:
        config: What to evaluate; ``config.workers`` actors are started (at most one per
            episode), each with ``config.threads`` CPUs.
        out: The run's folder (videos are written to ``out/videos``).
        todo: Episode indices to run.
        address: See :func:`ray_session`.

    Raises:
        ValueError: The cluster cannot host one actor (no GPU for ``device=cuda``, too few
            CPUs), or cannot be reached.
        RuntimeError: An actor failed to start, or an episode killed ``MAX_TRIES`` actors.
        Exception: An exception raised inside an episode, as a local run raises it.
    """
    if not todo:
        return
    from envs.workers import Terminated

    with ray_session(address) as ray, _sigterm_raises() as sigterm:
        try:
            yield from _schedule(ray, config, Path(out), todo)
        except KeyboardInterrupt:  # Ray turns an exception raised in ray.wait into this
            if sigterm:
                raise Terminated("SIGTERM") from None
            raise


@contextmanager
def _sigterm_raises() -> Iterator[list[int]]:
    """SIGTERM raises :class:`envs.workers.Terminated` inside (main thread only), as for a pool.

    Ray's driver handler would end the process with a stack dump instead of unwinding: here
    the actors are stopped and the CLI says to rerun with ``--resume``.

    Yields:
        A list that holds the signal's number once SIGTERM came.
    """
    import signal
    import threading

    from envs.workers import Terminated

    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum: int, frame: Any) -> None:
        got.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def actor_resources(config: EvalConfig, cluster: dict[str, float], actors: int
                    ) -> dict[str, float]:
    """``num_cpus``/``num_gpus`` of one actor on a cluster with ``cluster`` resources.

    Raises:
        ValueError: One actor does not fit the cluster.
    """
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    if cpus < config.threads:
        raise ValueError(f"the Ray cluster has {cpus:g} CPUs; one actor needs --threads "
                         f"{config.threads}")
    if not config.device.startswith("cuda"):
        return {"num_cpus": config.threads, "num_gpus": 0}
    if gpus <= 0:
        raise ValueError(f"--device {config.device}: the Ray cluster has no GPUs")
    share = min(1.0, math.floor(gpus / actors * 1e4) / 1e4)  # Ray's GPU grain is 1e-4
    return {"num_cpus": config.threads, "num_gpus": share}


def _schedule(ray: Any, config: EvalConfig, out: Path, todo: list[int]
              ) -> Iterator[dict[str, Any]]:
    """Feed episodes to actors as they become free; replace actors that die."""
    from ray.exceptions import RayActorError, RayTaskError

    queue, tries = deque(todo), dict.fromkeys(todo, 0)
    size = min(config.workers, len(todo))
    resources = actor_resources(config, ray.cluster_resources(), size)
    remote = ray.remote(EpisodeActor).options(max_restarts=0, **resources)
    args = (asdict(config), list(sys.path))
    actors: list[Any] = []
    starting: dict[Any, Any] = {}  # ready() ref -> actor
    running: dict[Any, tuple[Any, int]] = {}  # run() ref -> (actor, episode)

    def start() -> None:
        actor = remote.remote(*args)
        actors.append(actor)
        starting[actor.ready.remote()] = actor

    def feed(actor: Any) -> None:
        if queue:
            index = queue.popleft()
            running[actor.run.remote(index)] = (actor, index)
        else:  # nothing left for it: free its resources now
            ray.kill(actor, no_restart=True)

    for _ in range(size):
        start()
    try:
        while running or (starting and queue):
            [ref], _ = ray.wait([*running, *starting], num_returns=1)
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    ray.get(ref)
                except RayTaskError as err:
                    raise RuntimeError(f"a Ray eval actor could not start: "
                                       f"{_first_line(err.cause)}") from None
                except RayActorError:
                    start()  # it died before it was up: try another
                    continue
                feed(actor)
                continue
            actor, index = running.pop(ref)
            try:
                record, video = ray.get(ref)
            except RayTaskError as err:  # the episode raised: stop as a local run does
                raise err.as_instanceof_cause() from None
            except RayActorError as err:
                tries[index] += 1
                if tries[index] >= MAX_TRIES:
                    raise RuntimeError(
                        f"episode {index} killed {MAX_TRIES} Ray actors (last: "
                        f"{_first_line(err)}); finished episodes are saved in {out}, rerun "
                        "with --resume") from None
                queue.appendleft(index)  # retried by the next free actor
                start()
                continue
            if video is not None:
                record["video"] = str(_write_bytes(out / "videos" / Path(record["video"]).name,
                                                   video))
            yield record
            feed(actor)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


def _first_line(err: BaseException | None) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(err).__name__


def _write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a temp file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
