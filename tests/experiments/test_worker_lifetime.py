"""Worker processes of ``robodecode eval`` / ``collect`` never outlive their parent.

Each test runs the real CLI in a subprocess with two spawned workers, waits until the workers
have produced something, then kills (SIGKILL), terminates (SIGTERM) or interrupts (SIGINT, as
Ctrl-C does to every process of the terminal's group) the parent and checks that every process
it started is gone within a few seconds and that what was finished is intact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

ROOT = Path(__file__).resolve().parents[2]
TEST_PATHS = [ROOT / "tests" / "experiments", ROOT / "tests" / "policies", ROOT / "tests" / "envs"]
EVAL = ["eval", "--policy", "slow_policy:slow_policy", "--env",
        "fake_reach_env:robodecode_test/FakeReach-v0", "--episodes", "50", "--workers", "2",
        "--no-progress"]
COLLECT = ["collect", "--env", "dataset_fake_env:robodecode_test/DatasetFakeReach-v0",
           "--episodes", "40", "--workers", "2", "--env-kwargs", '{"step_delay": 0.05}']
GONE_WITHIN_S = 5.0


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid`` from ``/proc``, or None if it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text[text.rindex(")") + 2:].split()[:2]
    return state, int(ppid)


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has exited (init reaps it late)


def _descendants(pid: int) -> set[int]:
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == parent:
                found.add(int(entry.name))
                frontier.append(int(entry.name))
    return found


def _as_from_a_shell() -> None:
    """Child set-up: default SIGINT and no blocked signals, as a shell starts a command.

    An ignored or blocked SIGINT is inherited across exec, so test code that changed this
    pytest process's handling (an in-process worker initializer ignores SIGINT) would otherwise
    make the command deaf to Ctrl-C.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], out: Path) -> tuple[subprocess.Popen, Path]:
    paths = [*map(str, TEST_PATHS), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p),
           "MUJOCO_GL": "egl"}
    log = out.parent / f"{out.name}.log"
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", *args, "--out", str(out)],
                                cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                preexec_fn=_as_from_a_shell)
    return proc, log


def _wait_for_workers(proc: subprocess.Popen, log: Path, produced) -> set[int]:
    """Wait until two workers run and ``produced()`` is true; return every descendant pid."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"the run ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no worker output in 60 s:\n{log.read_text()}"
        workers = {p for p in _descendants(proc.pid) if _alive(p)}
        if len(workers) >= 2 and produced():
            return workers
        time.sleep(0.1)


def _assert_gone(pids: set[int], log: Path) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # do not leak them into the rest of the test session
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived their parent: {left}\n{log.read_text()}"


def _records(out: Path) -> list[dict]:
    path = out / "episodes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _staged(out: Path) -> list[Path]:
    return sorted((out / ".staging").glob("episode_*.parquet"))


def _run_and_signal(args, out, produced, how):
    proc, log = _start(args, out)
    try:
        pids = _wait_for_workers(proc, log, produced)
        if how == signal.SIGINT:  # Ctrl-C: the terminal signals the whole foreground group
            os.kill(proc.pid, signal.SIGINT)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:  # a short-lived descendant that already exited
                    pass
        else:
            os.kill(proc.pid, how)
        rc = proc.wait(30)  # seconds; a loaded 2-core CI machine needs more than an idle one
        _assert_gone(pids, log)
        return rc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["kill", "term", "int"])
def test_eval_workers_die_with_the_parent(tmp_path, how):
    out = tmp_path / "eval"
    rc, log = _run_and_signal(EVAL, out, lambda: len(_records(out)) >= 1, how)
    assert rc == {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 143, signal.SIGINT: 130}[how]
    records = _records(out)  # every line parses: nothing torn by the stop
    assert 1 <= len(records) < 50 and len({r["episode"] for r in records}) == len(records)
    if how != signal.SIGKILL:
        text = log.read_text()
        assert "Traceback" not in text, text
        assert "--resume" in text.strip().splitlines()[-1], text


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_collect_workers_die_with_the_parent(tmp_path, how):
    out = tmp_path / "ds"
    rc, log = _run_and_signal(COLLECT, out, lambda: len(_staged(out)) >= 1, how)
    assert rc == {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 143}[how]
    assert not (out / "meta/info.json").exists()
    for path in _staged(out):  # finished attempts stay, readable
        assert pq.read_table(path).num_rows > 0
    if how != signal.SIGKILL:
        text = log.read_text()
        assert "Traceback" not in text, text
        assert "rerun the same command" in text.strip().splitlines()[-1], text
