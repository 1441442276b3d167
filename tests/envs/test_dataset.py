"""Demonstration datasets: v3 layout, replay round trip, resume after crashes, workers, CLI."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_fake_env import QUALIFIED_ID
from typer.testing import CliRunner

from envs import lerobot_dataset
from envs.dataset_reader import ActionChunkDataset
from envs.lerobot_dataset import collect
from envs.lerobot_format import decode_image

HERE = Path(__file__).resolve().parent


def _replay(env_kwargs, seed, actions):
    """Replay ``actions`` from ``reset(seed)`` in a fresh env: (first image, images, success)."""
    env = gym.make(QUALIFIED_ID, **env_kwargs)
    obs, info = env.reset(seed=seed)
    images = [obs["image"]]
    for a in actions:
        obs, _, terminated, truncated, info = env.step(a)
        images.append(obs["image"])
    env.close()
    return images[:-1], bool(info["is_success"]), terminated or truncated


def test_layout_follows_lerobot_v3(tmp_path):
    out = tmp_path / "ds"
    res = collect(QUALIFIED_ID, 3, out, progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == 10 and info["total_episodes"] == 3 == res.episodes
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    feats = info["features"]
    assert feats["observation.images.image"] == {
        "dtype": "image", "shape": [16, 16, 3], "names": ["height", "width", "channel"]}
    assert feats["observation.state"]["shape"] == [3] and feats["action"]["shape"] == [2]
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in feats
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.num_rows == info["total_frames"] == res.frames
    assert set(data.column_names) == set(feats)
    assert data.column("index").to_pylist() == list(range(data.num_rows))
    cell = data.column("observation.images.image")[0].as_py()
    assert cell["bytes"].startswith(b"\x89PNG") and cell["path"] is None
    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in eps] == [0, 1, 2]
    assert eps[0]["dataset_from_index"] == 0
    for a, b in zip(eps, eps[1:], strict=False):
        assert a["dataset_to_index"] == b["dataset_from_index"]
    assert all(e["dataset_to_index"] - e["dataset_from_index"] == e["length"] for e in eps)
    assert [e["seed"] for e in eps] == [0, 1, 2] and all(e["success"] for e in eps)
    tasks = pq.read_table(out / "meta/tasks.parquet").to_pylist()
    assert {t["task"] for t in tasks} == {t for e in eps for t in e["tasks"]}
    stats = json.loads((out / "meta/stats.json").read_text())
    for key in ("action", "observation.state"):
        assert set(stats[key]) >= {"mean", "std", "min", "max", "count", "q01", "q99"}
    actions = np.stack(data.column("action").to_pylist())
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-6)
    assert np.asarray(stats["observation.images.image"]["mean"]).shape == (3, 1, 1)


def test_round_trip_replay_reproduces_success_and_images(tmp_path):
    out = tmp_path / "ds"
    kwargs = {"size": 24}
    collect(QUALIFIED_ID, 3, out, noise=0.3, seed=7, env_kwargs=kwargs, progress=False)
    ds = ActionChunkDataset(out, horizon=1)
    for ep in ds.episode_info():
        rows = range(ep["dataset_from_index"], ep["dataset_to_index"])
        actions = ds.actions[list(rows)]
        images, success, ended = _replay(kwargs, ep["seed"], actions)
        assert ended and success == ep["success"] is True
        for row, image in zip(rows, images, strict=True):
            np.testing.assert_array_equal(ds[row]["image"].numpy(), image)


def test_failed_attempts_are_skipped_or_kept_flagged(tmp_path):
    kwargs = {"speed": 0.015}  # slow dot: targets far away are out of reach in 30 steps
    kept = collect(QUALIFIED_ID, 3, tmp_path / "ok", env_kwargs=kwargs, progress=False)
    eps = ActionChunkDataset(tmp_path / "ok", 1).episode_info()
    assert all(e["success"] for e in eps) and kept.attempts > 3  # some seeds failed
    seeds = [e["seed"] for e in eps]
    assert seeds == sorted(seeds) and len(set(seeds)) == 3

    collect(QUALIFIED_ID, kept.attempts, tmp_path / "all", env_kwargs=kwargs, keep_failed=True,
            progress=False)
    ds = ActionChunkDataset(tmp_path / "all", 1)
    all_eps = ds.episode_info()
    assert [e["seed"] for e in all_eps] == list(range(kept.attempts))
    failed = [e for e in all_eps if not e["success"]]
    assert failed and {e["seed"] for e in all_eps if e["success"]} >= set(seeds)
    ep = failed[0]
    rows = list(range(ep["dataset_from_index"], ep["dataset_to_index"]))
    _, success, _ = _replay(kwargs, ep["seed"], ds.actions[rows])
    assert success is False


def test_resume_after_exception_loses_nothing(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    real = lerobot_dataset._Recorder.record
    calls = []

    def flaky(self, attempt):
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        calls.append(attempt)
        return real(self, attempt)

    monkeypatch.setattr(lerobot_dataset._Recorder, "record", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        collect(QUALIFIED_ID, 4, out, progress=False)
    assert sorted(p.name for p in (out / ".staging").glob("episode_*")) == [
        "episode_000000.parquet", "episode_000001.parquet"]
    assert not (out / "meta/info.json").exists()
    with pytest.raises(ValueError, match="unfinished collect"):
        ActionChunkDataset(out, 1)
    monkeypatch.setattr(lerobot_dataset._Recorder, "record", real)
    res = collect(QUALIFIED_ID, 4, out, progress=False)
    assert res.new_attempts == 2 and res.episodes == 4
    fresh = collect(QUALIFIED_ID, 4, tmp_path / "fresh", progress=False)
    assert fresh.frames == res.frames
    a = pq.read_table(out / "data/chunk-000/file-000.parquet")
    b = pq.read_table(tmp_path / "fresh/data/chunk-000/file-000.parquet")
    assert a.equals(b)


def test_resume_after_kill_mid_run(tmp_path):
    out = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(HERE)!r})
        from envs.lerobot_dataset import collect
        collect({QUALIFIED_ID!r}, 6, {str(out)!r}, env_kwargs={{"step_delay": 0.05}},
                progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while len(list((out / ".staging").glob("episode_*.parquet"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "collect ended early"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    staged = len(list((out / ".staging").glob("episode_*.parquet")))
    assert 2 <= staged < 6 and not (out / "meta/info.json").exists()
    res = collect(QUALIFIED_ID, 6, out, env_kwargs={"step_delay": 0.05}, progress=False)
    assert res.new_attempts == 6 - staged and res.episodes == 6
    assert not list((out / ".staging").glob(".*tmp*"))
    assert ActionChunkDataset(out, 2).episode_indices == list(range(6))


def test_crash_mid_consolidation_leaves_no_temporary_file_behind(tmp_path):
    out = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import os, sys; sys.path.insert(0, {str(HERE)!r})
        from envs.lerobot_dataset import collect
        replace = os.replace
        def crash_on_data(src, dst):  # dies after writing a data file, before renaming it
            if "/data/" in str(dst):
                os._exit(9)
            return replace(src, dst)
        os.replace = crash_on_data
        collect({QUALIFIED_ID!r}, 2, {str(out)!r}, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ}, timeout=120)
    assert proc.returncode == 9
    stale = [p.relative_to(out).as_posix() for p in out.rglob(".*.tmp-*")]
    assert len(stale) == 1 and stale[0].startswith("data/chunk-000/.file-000.parquet.tmp-")
    (out / "meta").mkdir(exist_ok=True)
    (out / "meta/.stats.json.tmp-1").write_text("{")  # another crash's leftover
    res = collect(QUALIFIED_ID, 2, out, progress=False)
    assert res.new_attempts == 0 and res.episodes == 2
    assert not list(out.rglob(".*.tmp-*")), "a temporary file stayed in the dataset"
    assert ActionChunkDataset(out, 2).episode_indices == [0, 1]


def test_two_spawned_workers_write_the_same_dataset(tmp_path):
    collect(QUALIFIED_ID, 4, tmp_path / "one", progress=False)
    collect(QUALIFIED_ID, 4, tmp_path / "two", workers=2, progress=False)
    a = pq.read_table(tmp_path / "one/data/chunk-000/file-000.parquet")
    b = pq.read_table(tmp_path / "two/data/chunk-000/file-000.parquet")
    assert a.equals(b)


def test_video_frames_match_the_png_frames(tmp_path):
    kwargs = {"size": 32}
    collect(QUALIFIED_ID, 2, tmp_path / "png", env_kwargs=kwargs, progress=False)
    collect(QUALIFIED_ID, 2, tmp_path / "mp4", env_kwargs=kwargs, video=True, progress=False)
    assert (tmp_path / "mp4/videos/observation.images.image/chunk-000/file-000.mp4").exists()
    png, mp4 = ActionChunkDataset(tmp_path / "png", 1), ActionChunkDataset(tmp_path / "mp4", 1)
    assert len(png) == len(mp4)
    frames = np.stack([png[i]["image"].numpy() for i in range(len(png))]).astype(float)
    for i in range(len(mp4)):
        err = np.abs(frames - mp4[i]["image"].numpy()).mean(axis=(1, 2, 3))
        assert err.argmin() == i or err[i] == err.min()  # aligned with its own frame
        assert err[i] < 3.0


def test_bad_arguments_and_changed_settings(tmp_path):
    with pytest.raises(ValueError, match="valid ids: .*robodecode/"):
        collect("robodecode/NoSuchTask-v0", 1, tmp_path / "x")
    with pytest.raises(ValueError, match="episodes"):
        collect(QUALIFIED_ID, 0, tmp_path / "x")
    with pytest.raises(ValueError, match="noise"):
        collect(QUALIFIED_ID, 1, tmp_path / "x", noise=-1)
    collect(QUALIFIED_ID, 1, tmp_path / "ds", progress=False)
    with pytest.raises(ValueError, match="noise=0.0"):
        collect(QUALIFIED_ID, 1, tmp_path / "ds", noise=0.2, progress=False)


def test_cli_collect_and_one_line_errors(tmp_path):
    import typer

    from envs.collect_cli import register_collect

    app = typer.Typer()
    register_collect(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    runner = CliRunner()
    bad = runner.invoke(app, ["collect", "--env", "robodecode/Nope-v0", "--out",
                              str(tmp_path / "bad")])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: unknown env id 'robodecode/Nope-v0'")
    assert len(bad.output.strip().splitlines()) == 1
    ok = runner.invoke(app, ["collect", "--env", QUALIFIED_ID, "--episodes", "2", "--out",
                             str(tmp_path / "ok"), "--env-kwargs", '{"size": 8}'])
    assert ok.exit_code == 0, ok.output
    assert "2 episodes" in ok.output
    first = pq.read_table(tmp_path / "ok/data/chunk-000/file-000.parquet").column(
        "observation.images.image")[0].as_py()["bytes"]
    assert decode_image(first).shape == (8, 8, 3)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "footer", "no facts", "spec",
                                    "spec list", "spec huge"])
def test_cli_unreadable_staged_files_are_one_line_naming_the_file(tmp_path, damage):
    import pyarrow as pa
    import typer

    from envs.collect_cli import register_collect

    app = typer.Typer()
    register_collect(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    args = ["collect", "--env", QUALIFIED_ID, "--episodes", "2", "--out", str(tmp_path / "ds")]
    assert CliRunner().invoke(app, args).exit_code == 0
    staged = tmp_path / "ds/.staging/episode_000001.parquet"
    data = staged.read_bytes()
    if damage == "garbage":
        staged.write_bytes(b"not a parquet file")
    elif damage == "truncated":
        staged.write_bytes(data[: len(data) // 2])
    elif damage == "footer":  # the magic bytes survive, the metadata before them does not
        staged.write_bytes(data[:-200] + bytes(192) + data[-8:])
    elif damage == "no facts":  # a valid parquet file, but not one collect staged
        pq.write_table(pa.table({"x": [1]}), staged)
    else:
        staged = tmp_path / "ds/.staging/collect.json"
        if damage == "spec huge":
            with staged.open("wb") as f:
                f.truncate(2 * 2**30)
        else:
            staged.write_text("{oops" if damage == "spec" else "[]")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {staged}"), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_large_datasets_span_several_files_and_stale_files_go(tmp_path, monkeypatch):
    from envs import lerobot_consolidate

    monkeypatch.setattr(lerobot_consolidate, "DATA_FILES_SIZE_IN_MB", 1e-6)  # one episode a file
    collect(QUALIFIED_ID, 3, tmp_path, video=True, env_kwargs={"size": 16}, progress=False)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("data/*/*"))
    assert files == [f"data/chunk-000/file-00{i}.parquet" for i in range(3)]
    assert len(list(tmp_path.glob("videos/observation.images.image/chunk-000/*.mp4"))) == 3
    ds = ActionChunkDataset(tmp_path, horizon=2)
    eps = ds.episode_info()
    assert [e["data/file_index"] for e in eps] == [0, 1, 2]
    assert all(e["videos/observation.images.image/from_timestamp"] == 0.0 for e in eps)
    assert [ds[i]["frame_index"] for i in range(len(ds))] == [
        f for e in eps for f in range(e["length"])]
    ds[len(ds) - 1]["image"]  # decodes the last episode's own mp4

    monkeypatch.undo()
    collect(QUALIFIED_ID, 3, tmp_path, env_kwargs={"size": 16}, progress=False)
    assert [p.name for p in tmp_path.glob("data/*/*")] == ["file-000.parquet"]
    assert not list(tmp_path.glob("videos/*/*/*.mp4"))
    assert len(ActionChunkDataset(tmp_path, horizon=2)) == len(ds)


def test_targets_per_layout_arguments_and_run_identity(tmp_path):
    with pytest.raises(ValueError, match="targets_per_layout must be an int >= 1"):
        collect(QUALIFIED_ID, 2, tmp_path / "x", targets_per_layout=0)
    with pytest.raises(ValueError, match=r"episodes \(3\) must be a multiple"):
        collect(QUALIFIED_ID, 3, tmp_path / "x", targets_per_layout=2)
    with pytest.raises(ValueError, match="needs an env with target_choices"):
        collect(QUALIFIED_ID, 2, tmp_path / "nochoices", targets_per_layout=2, progress=False)
    collect(QUALIFIED_ID, 1, tmp_path / "ds", progress=False)
    with pytest.raises(ValueError, match="targets_per_layout=1, not 2"):
        collect(QUALIFIED_ID, 2, tmp_path / "ds", targets_per_layout=2, progress=False)
    spec_path = tmp_path / "ds" / lerobot_dataset.STAGING_DIR / lerobot_dataset.RUN_SPEC_FILE
    spec = json.loads(spec_path.read_text())
    del spec["targets_per_layout"]  # a run recorded before the setting existed resumes as K=1
    spec_path.write_text(json.dumps(spec))
    assert collect(QUALIFIED_ID, 2, tmp_path / "ds", progress=False).new_attempts == 1


def test_targets_per_layout_keeps_whole_layouts_only(tmp_path, monkeypatch):
    from dataset_fake_env import COLOURS, FakeReachEnv

    # The fake env ignores reset options; giving it target choices tests the bookkeeping.
    monkeypatch.setattr(FakeReachEnv, "target", property(lambda self: {"colour": self.colour}),
                        raising=False)
    monkeypatch.setattr(FakeReachEnv, "target_choices",
                        lambda self: [{"colour": c} for c in COLOURS], raising=False)
    kwargs = {"speed": 0.015}  # some layouts fail (as in the test above)
    result = collect(QUALIFIED_ID, 4, tmp_path, env_kwargs=kwargs, targets_per_layout=2,
                     progress=False)
    eps = ActionChunkDataset(tmp_path, 1).episode_info()
    assert result.attempts > 4 and all(e["success"] for e in eps)
    assert [e["attempt"] // 2 for e in eps] == [e["seed"] for e in eps]
    for a, b in (eps[0:2], eps[2:4]):
        assert a["seed"] == b["seed"] and a["attempt"] + 1 == b["attempt"]
        assert json.loads(a["reset_options"]) != json.loads(b["reset_options"])
