"""``robodecode bench envs`` on tiny settings: the fields it reports and its bad-input errors."""

from typer.testing import CliRunner

from experiments.bench_envs import bench_env
from experiments.cli import build_app


def test_bench_env_reports_speed_and_expert_success():
    row = bench_env("robodecode/TabletopReach-v0", episodes=2, steps=20, render_episodes=1)
    assert row["expert_successes"] == 2 and row["expert_episodes"] == 2
    assert row["steps_per_s_no_render"] > row["steps_per_s_render"] > 0
    assert row["ms_per_frame"] > 0 and row["expert_episodes_per_s_render"] > 0


def test_bench_envs_rejects_unknown_ids_and_bad_counts(tmp_path):
    runner = CliRunner()
    res = runner.invoke(build_app(), ["bench", "envs", "--env", "robodecode/Nope-v0",
                                      "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 2 and "unknown ids" in res.output
    res = runner.invoke(build_app(), ["bench", "envs", "--steps", "0"])
    assert res.exit_code == 2 and "--steps" in res.output
