"""``robodecode eval --ray``: the same records and summary as a local run, actor faults, clusters.

One local Ray cluster (2 CPUs, no dashboard) serves the in-process tests; the two-node test
starts its own head and worker node with ``ray start`` and stops exactly those processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fake_reach_env
import pytest

from envs.ids import DEFAULT_ENV_ID
from experiments.evaluate import EPISODES_FILE, EvalConfig, evaluate, load_records

ray = pytest.importorskip("ray")
from experiments.ray_eval import actor_resources, check_address, ray_runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FAKE = f"fake_reach_env:{fake_reach_env.ENV_ID}"
# Per-episode fields that measure time or say where an episode ran; everything else must match.
TIMING = {"episode_s", "pid", "chunk_ms", "ms_per_chunk", "chunk_decode_ms", "video"}
SUMMARY_TIMING = {"ms_per_chunk", "ms_per_chunk_p90", "decode_ms_per_chunk", "hz", "eval_s",
                  "eval_ep_s", "provenance", "per_episode", "videos"}
CRASH_SEED, CRASH_STEP = 203, 2
MARKER = Path(tempfile.gettempdir()) / f"robodecode-ray-fault-{os.getuid()}"


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU Ray cluster for this module's in-process tests."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class _DiesOnce:
    """The expert, but the actor running seed ``CRASH_SEED`` dies at step ``CRASH_STEP``, once.

    The first death leaves ``MARKER`` (holding the dead pid), so the retry runs normally.
    """

    def __init__(self, env):
        from policies.base import ExpertPolicy

        self.expert, self.seed, self.step = ExpertPolicy(env), None, 0

    def reset(self, *, seed=None):
        self.expert.reset(seed=seed)
        self.seed, self.step = seed, 0

    def infer(self, obs):
        self.step += 1
        if self.seed == CRASH_SEED and self.step == CRASH_STEP and not MARKER.exists():
            MARKER.write_text(str(os.getpid()))
            os._exit(3)  # the actor process dies mid-episode, as on a segfault or a kill -9
        return self.expert.infer(obs)


def dies_once(env):
    """Policy factory for ``test_ray_eval:dies_once`` (actors import this module)."""
    return _DiesOnce(env)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / EPISODES_FILE).read_text().splitlines()]


def _outcomes(records) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING}
            for r in sorted(records, key=lambda r: r["episode"])]


def _same_summary(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k not in SUMMARY_TIMING} == \
        {k: v for k, v in b.items() if k not in SUMMARY_TIMING}
    strip = {"ms_per_chunk", "video"}  # timing, and the run's own folder
    assert [{k: v for k, v in e.items() if k not in strip} for e in a["per_episode"]] == \
        [{k: v for k, v in e.items() if k not in strip} for e in b["per_episode"]]


def test_ray_eval_equals_local_eval_on_the_same_seeds(cluster, tmp_path):
    cfg = EvalConfig(policy="expert", env_id=DEFAULT_ENV_ID, episodes=4, seed=7, workers=2,
                     videos=1)
    local = evaluate(cfg, tmp_path / "local", progress=False)
    remote = evaluate(cfg, tmp_path / "ray", progress=False, runner=ray_runner())
    assert _outcomes(_lines(tmp_path / "ray")) == _outcomes(_lines(tmp_path / "local"))
    _same_summary(remote, local)
    assert remote["n_success"] >= 1 and remote["avg_steps"] > 1  # the episodes really ran
    assert os.getpid() not in {r["pid"] for r in _lines(tmp_path / "ray")}  # on actors
    video = tmp_path / "ray" / "videos" / "episode_0000.mp4"  # sent back by the actor
    assert remote["videos"] == [str(video)] and video.stat().st_size > 1000


def test_an_actor_killed_mid_episode_is_replaced_and_its_episode_retried(cluster, tmp_path):
    MARKER.unlink(missing_ok=True)
    cfg = EvalConfig(policy="test_ray_eval:dies_once", env_id=FAKE, episodes=8, seed=200,
                     workers=2)
    try:
        summary = evaluate(cfg, tmp_path / "ray", progress=False, runner=ray_runner())
        dead = int(MARKER.read_text())  # an actor did die, mid-episode
    finally:
        MARKER.unlink(missing_ok=True)
    records = _lines(tmp_path / "ray")
    assert sorted(r["episode"] for r in records) == list(range(8))  # none lost, none twice
    retried = next(r for r in records if r["seed"] == CRASH_SEED)
    assert retried["pid"] != dead and retried["steps"] > CRASH_STEP
    reference = evaluate(EvalConfig(policy="expert", env_id=FAKE, episodes=8, seed=200),
                         tmp_path / "local", progress=False)
    assert [e["success"] for e in summary["per_episode"]] == \
        [e["success"] for e in reference["per_episode"]]
    assert [e["sum_reward"] for e in summary["per_episode"]] == \
        [e["sum_reward"] for e in reference["per_episode"]]


def test_an_episode_error_stops_the_run_and_resume_on_ray_finishes_it(cluster, tmp_path):
    cfg = EvalConfig(policy="fake_reach_env:crashing_expert", env_id=FAKE, episodes=6,
                     seed=100, workers=1)
    os.environ["FAKE_REACH_CRASH_SEED"] = "103"
    try:  # workers=1 runs in this process; the env var is read here
        with pytest.raises(RuntimeError, match="simulated crash"):
            evaluate(cfg, tmp_path, progress=False)
    finally:
        del os.environ["FAKE_REACH_CRASH_SEED"]
    assert sorted(load_records(tmp_path)) == [0, 1, 2]
    summary = evaluate(cfg, tmp_path, resume=True, progress=False, runner=ray_runner())
    assert sorted(r["episode"] for r in _lines(tmp_path)) == list(range(6))
    assert summary["resumed_episodes"] == 3 and summary["pc_success"] == 100.0


def test_actor_resources_and_bad_options():
    cpu = EvalConfig(policy="expert", threads=2)
    assert actor_resources(cpu, {"CPU": 16, "GPU": 1}, 8) == {"num_cpus": 2, "num_gpus": 0}
    gpu = EvalConfig(policy="expert", device="cuda")
    assert actor_resources(gpu, {"CPU": 16, "GPU": 1}, 3) == {"num_cpus": 1, "num_gpus": 0.3333}
    assert actor_resources(gpu, {"CPU": 16, "GPU": 2}, 1)["num_gpus"] == 1.0
    with pytest.raises(ValueError, match="no GPUs"):
        actor_resources(gpu, {"CPU": 16}, 2)
    with pytest.raises(ValueError, match="one actor needs --threads 2"):
        actor_resources(cpu, {"CPU": 1}, 1)
    for bad in ("", "nohost", "host:", "host:99999", "ray://:1"):
        with pytest.raises(ValueError, match="--address must be"):
            check_address(bad)
    assert check_address("auto") == "auto" and check_address("10.0.0.1:6379") == "10.0.0.1:6379"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_node(*args: str, tmp: Path, name: str) -> subprocess.Popen:
    """``ray start --block`` in its own process group (stopped by :func:`_stop`)."""
    ray_bin = Path(sys.executable).with_name("ray")
    log = (tmp / f"{name}.log").open("w")
    return subprocess.Popen([str(ray_bin), "start", "--block", "--disable-usage-stats", *args],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=_cluster_env())


def _cluster_env() -> dict[str, str]:
    """This process's environment, with one auth setting for every node and the driver."""
    return {**os.environ, "RAY_AUTH_MODE": "disabled"}


def _wait_started(log: Path, timeout_s: float = 40.0) -> None:
    """Wait until a ``ray start`` log says the node is up."""
    deadline = time.time() + timeout_s
    while "Ray runtime started" not in log.read_text():
        assert time.time() < deadline, f"ray start did not come up:\n{log.read_text()[-2000:]}"
        time.sleep(0.2)


def _stop(node: subprocess.Popen) -> None:
    """Stop one ``ray start --block`` and every process of its group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            return
        try:
            node.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def test_two_node_cluster_on_one_host_through_address(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _ray_node("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=0",
                     "--include-dashboard=false", tmp=tmp_path, name="head")
    nodes = [head]
    try:
        _wait_started(tmp_path / "head.log")
        nodes.append(_ray_node(f"--address={address}", "--node-ip-address=127.0.0.1",
                               "--num-cpus=2", "--resources", '{"second_node": 1}',
                               tmp=tmp_path, name="worker"))
        _wait_started(tmp_path / "worker.log")
        env = {**_cluster_env(), "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests" / "policies"), os.environ.get("PYTHONPATH", "")])}
        out = tmp_path / "eval"
        args = [sys.executable, "-m", "experiments.cli", "eval", "--policy", "expert", "--env",
                FAKE, "--episodes", "8", "--seed", "300", "--workers", "2", "--ray",
                "--address", address, "--out", str(out), "--no-progress"]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=90,
                              cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        pids = {r["pid"] for r in _lines(out)}
        # The head has no CPUs: every actor ran on the second node, the driver on the head.
        assert pids and os.getpid() not in pids
        assert sorted(r["episode"] for r in _lines(out)) == list(range(8))
        assert "success 100.0%" in done.stdout
    finally:
        for node in reversed(nodes):
            _stop(node)


def test_compare_runs_every_eval_on_one_ray_session(cluster, tmp_path, monkeypatch):
    import experiments.evaluate
    from experiments import compare_evals
    from experiments.compare import SHIPPED
    from experiments.compare_config import CompareConfig

    seen = []

    def fake_evaluate(ecfg, out, resume, progress, runner=None):
        seen.append((runner, ray.is_initialized()))
        return {"pc_success": 100.0, "episodes": ecfg.episodes, "eval_s": 0.0}

    monkeypatch.setattr(experiments.evaluate, "evaluate", fake_evaluate)
    monkeypatch.setattr(compare_evals, "SCRATCH", tmp_path)
    cfg = CompareConfig(decoders=("ar", "oft"), conditions=("train",), episodes=2, workers=1,
                        jobs=2, ray=True, out=tmp_path / "out")
    compare_evals.run_evals(cfg, {0: SHIPPED / "TabletopPickPlace-v0" / "seed0"},
                            log=lambda m: None, progress=False)
    assert len(seen) == 2 and all(r is not None and up for r, up in seen)
    assert ray.is_initialized()  # the module's cluster was reused, not shut down
    with pytest.raises(ValueError, match="only with ray"):
        CompareConfig(address="auto")


def test_cli_errors_are_one_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import build_app

    base = ["eval", "--policy", "expert", "--episodes", "1", "--out", str(tmp_path)]
    for extra, message in (([], "--address applies only with --ray"),
                           (["--ray"], "--address must be 'auto' or host:port")):
        result = CliRunner().invoke(build_app(), [*base, "--address", "nohost", *extra])
        assert result.exit_code == 2 and message in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = CliRunner().invoke(build_app(), [*base, "--ray"])
    assert result.exit_code == 2 and "pip install 'robodecode[dist]'" in result.output


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_driver_killed_on_a_joined_cluster_is_resumed_and_its_actors_end(cluster, tmp_path,
                                                                           sig):
    out = tmp_path / "eval"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "tests" / "experiments"), str(ROOT / "tests" / "policies")])}
    driver = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "eval", "--policy", "slow_policy:slow_policy",
         "--env", FAKE, "--episodes", "12", "--max-steps", "10", "--workers", "2", "--ray",
         "--address", ray.get_runtime_context().gcs_address, "--out", str(out),
         "--no-progress"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while len(load_records(out)) < 2:
        assert driver.poll() is None and time.time() < deadline, "no episode was recorded"
        time.sleep(0.1)
    driver.send_signal(sig)  # SIGKILL: no cleanup runs in the driver
    stderr = driver.communicate(timeout=30)[1]
    if sig == signal.SIGTERM:  # it stops its actors and says how to go on
        assert driver.returncode == 143 and "rerun with --resume" in stderr, stderr[-2000:]
    before = load_records(out)
    assert 2 <= len(before) < 12
    cfg = EvalConfig(policy="slow_policy:slow_policy", env_id=FAKE, episodes=12, max_steps=10,
                     workers=2)
    summary = evaluate(cfg, out, resume=True, progress=False, runner=ray_runner())
    assert sorted(r["episode"] for r in _lines(out)) == list(range(12))  # none twice
    assert summary["resumed_episodes"] == len(before) and summary["episodes"] == 12
    actors = {r["pid"] for r in before.values()}  # Ray ends the actors of a dead driver
    deadline = time.time() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in actors) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in actors)


def test_scaling_study_measures_both_paths(cluster, tmp_path):
    from experiments.studies.ray_scaling import measure, table

    rows = [measure("expert", 1, path, tmp_path, episodes_per_actor=2, seed=5)
            for path in ("ray", "local")]
    assert all(r["episodes"] == 2 and r["steady_eps"] > 0 and r["end_to_end_eps"] > 0
               for r in rows)
    assert rows[0]["pc_success"] == rows[1]["pc_success"]
    assert "| expert | 1 |" in table(rows) and "| 100% |" in table(rows)
