"""`robodecode bench decoding` runs end to end on a tiny setting and writes JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from experiments.cli import build_app


def test_bench_decoding_smoke(tmp_path):
    out = tmp_path / "decoding.json"
    result = CliRunner().invoke(build_app(), [
        "bench", "decoding", "--out", str(out), "--reps", "1", "--chunk", "6", "--prefix", "4",
        "--layers", "1", "--width", "16", "--vocab", "32"])
    assert result.exit_code == 0, result.output
    assert "expected to gain nothing" in result.output
    record = json.loads(out.read_text())
    assert record["provenance"]["torch_threads"] == 1
    rows = {r["decoder"]: r for r in record["rows"]}
    assert rows["ar"]["nfe"] == 6 and rows["ar"]["speedup_vs_ar"] == 1.0
    assert rows["jacobi block 6"]["equals_ar_tokens"] is True
    assert rows["jacobi block 6"]["nfe"] <= 6 and rows["diffusion 4 steps"]["nfe"] <= 4
    assert rows["flow heun 5 steps*"]["nfe"] == 10


def test_bench_generate_smoke(tmp_path):
    out = tmp_path / "gen.json"
    app = build_app()
    result = CliRunner().invoke(app, ["bench", "generate", "--out", str(out), "--models", "tiny",
                                      "--reps", "1", "--prompt", "5", "--new", "4"])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    (row,) = record["rows"]  # the run asserts equal tokens of ours and generate
    assert row["model"] == "tiny" and row["ours_ms"] > 0 and row["generate_ms"] > 0
    assert record["settings"]["new_tokens"] == 4
    bad = CliRunner().invoke(app, ["bench", "generate", "--models", "gpt5", "--out", str(out)])
    assert bad.exit_code != 0 and "gpt2-small" in bad.output
