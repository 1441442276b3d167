"""``robodecode bench vla --table speed`` on CPU: eager vs static-cache path, floor, plot."""

import json

from typer.testing import CliRunner

from experiments.cli import build_app

SHIPPED = "experiments/checkpoints/TabletopPickPlace-v0/seed0"


def test_speed_table_runs_every_decoder_and_agrees_with_eager(tmp_path):
    out = tmp_path / "speed.json"
    result = CliRunner().invoke(build_app(), [
        "bench", "vla", "--checkpoints", SHIPPED, "--table", "speed", "--batches", "1,2",
        "--reps", "1", "--n-obs", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    rows = record["rows"]
    assert {r["batch"] for r in rows} == {1, 2}
    assert {r["decoder"] for r in rows} >= {"ar", "cjacobi+ee", "diffusion@2", "flow@2", "oft"}
    for r in rows:
        assert r["fast_path"] == "static-cache" and r["floor_ms"] > 0
        if r["decoder"].startswith(("ar", "jacobi", "cjacobi", "diffusion")):
            assert r["tokens_identical"] == 1.0, r
        else:
            assert r["max_abs_diff"] < 1e-4, r
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert record["provenance"]["device"] == "cpu"


def test_speed_table_refuses_bad_batches(tmp_path):
    result = CliRunner().invoke(build_app(), [
        "bench", "vla", "--checkpoints", SHIPPED, "--table", "speed", "--batches", "1,x",
        "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and "--batches" in result.output
