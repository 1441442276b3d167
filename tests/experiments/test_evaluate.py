import json

import fake_reach_env
import pytest
from typer.testing import CliRunner

from experiments.cli import build_app
from experiments.evaluate import EPISODES_FILE, SUMMARY_FILE, EvalConfig, evaluate, load_records
from experiments.provenance import machine

ENV = f"fake_reach_env:{fake_reach_env.ENV_ID}"


def config(**kwargs):
    return EvalConfig(**{"policy": "expert", "env_id": ENV, "episodes": 6, "seed": 100,
                         **kwargs})


def lines(out):
    return [json.loads(line) for line in (out / EPISODES_FILE).read_text().splitlines()]


def test_expert_summary_has_lerobot_keys_and_ci(tmp_path):
    summary = evaluate(config(), tmp_path, progress=False)
    assert summary["pc_success"] == 100.0 and summary["n_success"] == 6
    assert summary["ci_high"] == 100.0 and 50 < summary["ci_low"] < 70  # Wilson 6/6: 61.0
    assert summary["seeds"] == list(range(100, 106))
    assert [e["seed"] for e in summary["per_episode"]] == summary["seeds"]
    for key in ("avg_sum_reward", "avg_max_reward", "eval_s", "eval_ep_s", "ms_per_chunk", "hz",
                "nfe_per_chunk", "provenance"):
        assert key in summary
    assert summary["k"] == 1 and summary["hz"] == pytest.approx(1000 / summary["ms_per_chunk"])
    assert summary["provenance"]["torch_threads"] == 1
    assert summary["machines"] == {machine(): 6} and "x" in machine()
    assert {line["machine"] for line in lines(tmp_path)} == {machine()}
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["pc_success"] == 100.0
    # k = 1: every step after the first takes its action from a new chunk
    assert summary["avg_switch_jump"] > 0 and summary["avg_step_jump"] is None
    assert all(line["switch_jump"] is not None for line in lines(tmp_path))


def test_resume_after_a_crash_loses_nothing(tmp_path, monkeypatch):
    cfg = config(policy="fake_reach_env:crashing_expert")
    monkeypatch.setenv("FAKE_REACH_CRASH_SEED", "103")
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate(cfg, tmp_path, progress=False)
    assert sorted(load_records(tmp_path)) == [0, 1, 2]
    # A crash mid-write would leave a torn line; resuming must cope with it too.
    with (tmp_path / EPISODES_FILE).open("a") as f:
        f.write('{"episode": 3, "seed": 1')
    monkeypatch.delenv("FAKE_REACH_CRASH_SEED")
    with pytest.raises(ValueError, match="pass --resume"):
        evaluate(cfg, tmp_path, progress=False)
    summary = evaluate(cfg, tmp_path, resume=True, progress=False)
    episodes = [r["episode"] for r in lines(tmp_path)]
    assert sorted(episodes) == list(range(6)) and len(episodes) == 6
    assert summary["episodes"] == 6 and summary["resumed_episodes"] == 3
    assert summary["pc_success"] == 100.0
    fresh = evaluate(cfg, tmp_path / "fresh", progress=False)
    assert [e["sum_reward"] for e in fresh["per_episode"]] == \
        [e["sum_reward"] for e in summary["per_episode"]]


def test_a_dead_worker_stops_the_run_and_resume_finishes_it(tmp_path, monkeypatch):
    cfg = config(policy="fake_reach_env:dying_expert", workers=2)
    monkeypatch.setenv("FAKE_REACH_CRASH_SEED", "104")
    with pytest.raises(RuntimeError, match="worker died"):
        evaluate(cfg, tmp_path, progress=False)
    assert 4 not in load_records(tmp_path)
    monkeypatch.delenv("FAKE_REACH_CRASH_SEED")
    summary = evaluate(cfg, tmp_path, resume=True, progress=False)
    assert sorted(r["episode"] for r in lines(tmp_path)) == list(range(6))
    assert summary["pc_success"] == 100.0


def test_ms_per_chunk_excludes_the_warm_up_call(tmp_path):
    summary = evaluate(config(policy="fake_reach_env:slow_first_call", episodes=1), tmp_path,
                       progress=False)
    assert max(lines(tmp_path)[0]["chunk_ms"]) < 300 and summary["ms_per_chunk"] < 300


def test_noisy_expert_is_reproducible_per_seed(tmp_path):
    runs = [evaluate(config(episodes=3, expert_noise=noise), tmp_path / str(i), progress=False)
            for i, noise in enumerate((0.5, 0.5, 0.0))]
    rewards = [[e["sum_reward"] for e in run["per_episode"]] for run in runs]
    assert rewards[0] == rewards[1] != rewards[2]


def test_resume_refuses_a_different_run(tmp_path):
    evaluate(config(episodes=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match="different seed"):
        evaluate(config(episodes=2, seed=5), tmp_path, resume=True, progress=False)
    more = evaluate(config(episodes=4), tmp_path, resume=True, progress=False)
    assert more["episodes"] == 4 and more["resumed_episodes"] == 2


def test_nan_policy_fails_every_episode_and_the_run_completes(tmp_path):
    summary = evaluate(config(policy="fake_reach_env:nan_policy", episodes=3), tmp_path,
                       progress=False)
    assert summary["pc_success"] == 0.0 and summary["failures"] == {"policy output": 3}
    assert all("non-finite" in e["failure"] for e in summary["per_episode"])


def test_latency_aware_eval_records_delays(tmp_path):
    summary = evaluate(config(policy="random", k=2, latency="250", episodes=2, max_steps=12),
                       tmp_path, progress=False)
    assert summary["latency"] == 250.0 and summary["avg_delay_steps"] > 2
    assert summary["k"] == 2 and summary["pc_success"] == 0.0


def test_spawned_workers_match_one_process(tmp_path):
    one = evaluate(config(episodes=4), tmp_path / "one", progress=False)
    two = evaluate(config(episodes=4, workers=2, videos=1), tmp_path / "two", progress=False)
    key = [(e["seed"], e["success"], e["steps"], e["sum_reward"]) for e in one["per_episode"]]
    assert key == [(e["seed"], e["success"], e["steps"], e["sum_reward"])
                   for e in two["per_episode"]]
    assert two["videos"] == [str(tmp_path / "two" / "videos" / "episode_0000.mp4")]
    assert (tmp_path / "two" / "videos" / "episode_0000.mp4").stat().st_size > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--policy", "expert", "--env", "robodecode/NoSuchTask-v0"], "valid ids: robodecode/"),
    (["--policy", "nowhere/ckpt", "--env", ENV], "no such checkpoint path"),
    (["--policy", "{tmp}", "--decoder", "beam@4", "--env", ENV], "valid forms: ar, jacobi"),
    (["--policy", "{tmp}", "--decoder", "ar", "--env", ENV], "model folders found: none"),
    (["--policy", "expert", "--env", ENV, "--latency", "soon"], "latency must be"),
    (["--policy", "expert", "--env", ENV, "--split", "test"], "split must be"),
    (["--policy", "expert", "--env", ENV, "--rtc"], "rtc needs a latency"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(build_app(), ["eval", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1, result.output


def test_cli_runs_and_prints_the_summary(tmp_path):
    result = CliRunner().invoke(build_app(), [
        "eval", "--policy", "expert", "--env", ENV, "--episodes", "2", "--out",
        str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "success 100.0% [" in result.output and "k 1" in result.output


def test_resume_accepts_the_same_weights_under_another_path(tmp_path):
    from dataclasses import asdict

    from experiments.evaluate import CONFIG_FILE, _prepare_out

    def model_set(name: str, weights: bytes):
        folder = tmp_path / name / "oft"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(weights)
        return folder.parent

    old, copy, other = model_set("old", b"w1"), model_set("copy", b"w1"), model_set("x", b"w2")
    run = tmp_path / "run"
    run.mkdir()

    def saved_by(policy):
        saved = asdict(EvalConfig(policy=str(policy), decoder="oft"))
        (run / CONFIG_FILE).write_text(json.dumps(saved))

    saved_by(old)
    _prepare_out(EvalConfig(policy=str(copy), decoder="oft"), run, resume=True)  # same weights
    saved_by(old)
    with pytest.raises(ValueError, match="different policy"):  # other weights
        _prepare_out(EvalConfig(policy=str(other), decoder="oft"), run, resume=True)
    (old / "oft" / "model.safetensors").write_bytes(b"changed")  # the old path moved on
    with pytest.raises(ValueError, match="different policy"):
        _prepare_out(EvalConfig(policy=str(copy), decoder="oft"), run, resume=True)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "big", "huge"])
def test_cli_unreadable_saved_config_is_one_line_naming_it(tmp_path, content):
    import time

    out = tmp_path / "run"
    evaluate(config(episodes=1), out, progress=False)
    saved = out / "config.json"
    if content in ("big", "huge"):  # sparse: no disk used, but reading it would take GiBs
        with saved.open("wb") as f:
            f.truncate(100 * 2**20 if content == "big" else 2 * 2**30)
    else:
        saved.write_text(content)
    tic = time.perf_counter()
    result = CliRunner().invoke(build_app(), [
        "eval", "--policy", "expert", "--env", ENV, "--episodes", "2", "--seed", "100",
        "--out", str(out), "--resume", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert str(saved) in result.output and result.output.count("\n") == 1, result.output
    assert time.perf_counter() - tic < 10


def test_rtc_eval_runs_the_shipped_set_and_records_frozen_steps(tmp_path):
    shipped = "experiments/checkpoints/TabletopPickPlace-v0/seed0"
    cfg = EvalConfig(policy=shipped, decoder="ar", episodes=1, seed=1000, k=4, latency="80",
                     rtc=True, max_steps=24)
    summary = evaluate(cfg, tmp_path, progress=False)
    episode = lines(tmp_path)[0]
    assert episode["rtc"] and max(episode["chunk_frozen_steps"]) == 4  # ceil(80 ms / 20 ms)
    assert summary["nfe_per_chunk"] < 32  # AR does not decode the frozen steps


def test_resume_accepts_a_run_saved_before_rtc_existed(tmp_path):
    evaluate(config(episodes=2), tmp_path, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("rtc")
    (tmp_path / "config.json").write_text(json.dumps(saved))
    summary = evaluate(config(episodes=3), tmp_path, resume=True, progress=False)
    assert summary["episodes"] == 3 and [e["seed"] for e in lines(tmp_path)] == [100, 101, 102]


def test_fast_eval_gives_the_eager_episodes(tmp_path):
    """``eval --fast`` (static cache on CPU) replays the eager run's episodes exactly."""
    shipped = "experiments/checkpoints/TabletopPickPlace-v0/seed0"
    runs = {}
    for fast in (False, True):
        result = CliRunner().invoke(build_app(), [
            "eval", "--policy", shipped, "--decoder", "cjacobi+ee", "--episodes", "1",
            "--seed", "1000", "--max-steps", "24", "--no-progress",
            *(["--fast"] if fast else []), "--out", str(tmp_path / str(fast))])
        assert result.exit_code == 0, result.output
        runs[fast] = lines(tmp_path / str(fast))[0]
        saved = json.loads((tmp_path / str(fast) / "config.json").read_text())
        assert saved["fast"] is fast
    drop = ("ms", "time", "wall", "_s", "pid")
    same = {k: v for k, v in runs[True].items() if not any(d in k for d in drop)}
    assert same == {k: v for k, v in runs[False].items() if not any(d in k for d in drop)}
