"""Tests of ``robodecode compare``: config rules, pooling and paired tests, report files.

The ``--quick`` run end to end is marked slow: it trains, distills and evaluates (~1 minute).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.compare import (
    COMMITTED,
    QUICK_DECODERS,
    CompareConfig,
    env_folder,
)
from experiments.compare_report import (
    check_lines,
    decoder_row,
    headline,
    paired_test,
    plot,
    write_markdown,
)
from experiments.stats import wilson_interval

ROW_KEYS = {"decoder", "pc_success", "ci_low", "ci_high", "heldout_pc_success",
            "latency_aware_pc_success", "nfe_per_chunk", "ms_per_chunk", "hz", "episodes", "k",
            "per_seed"}


def _run(successes: list[bool], *, seed0: int = 0, nfe: float = 32.0, ms: float = 40.0,
         decode_ms: float = 30.0, chunks: int = 10, k: int = 8) -> dict:
    """A synthetic ``eval_info.json`` summary with the fields the report reads."""
    n = len(successes)
    return {"n_success": sum(successes), "episodes": n, "pc_success": 100 * sum(successes) / n,
            "nfe_per_chunk": nfe, "n_chunks": chunks, "ms_per_chunk": ms,
            "decode_ms_per_chunk": decode_ms, "k": k, "avg_delay_steps": 2.0,
            "per_episode": [{"seed": seed0 + i, "success": s} for i, s in enumerate(successes)]}


def _runs(train: dict[int, dict]) -> dict:
    return {"train": train, "heldout": {s: r for s, r in train.items()},
            "latency": {s: r for s, r in train.items()}}


def test_env_folder_drops_the_namespace():
    assert env_folder("robodecode/TabletopPickPlace-v0") == "TabletopPickPlace-v0"
    assert env_folder("envs:robodecode/TabletopPush-v0") == "TabletopPush-v0"


def test_default_output_is_scratch_and_quick_refuses_committed_results(tmp_path):
    assert "scratch" in CompareConfig().out.parts
    assert "quick" in CompareConfig.quick_settings().out.parts
    with pytest.raises(ValueError, match="--quick never writes committed results"):
        CompareConfig.quick_settings(out=COMMITTED / "TabletopPickPlace-v0")
    assert CompareConfig(out=tmp_path).out == tmp_path


@pytest.mark.parametrize("settings,message", [
    ({"decoders": ("ar", "bogus")}, "valid forms"),
    ({"decoders": ("ar", "ar")}, "distinct"),
    ({"episodes": 0}, "episodes"),
    ({"train_seeds": ()}, "train_seeds"),
    ({"k": 0}, "k must be"),
    ({"jobs": 2, "workers": 1}, "thread-safe"),
])
def test_bad_settings_raise_value_errors_naming_them(settings, message):
    with pytest.raises(ValueError, match=message):
        CompareConfig(**settings)


def test_decoder_row_pools_training_seeds_with_a_wilson_interval():
    runs = _runs({0: _run([True] * 7 + [False] * 3, chunks=10, nfe=4.0, ms=10.0),
                  1: _run([True] * 9 + [False], seed0=100, chunks=30, nfe=2.0, ms=20.0)})
    row = decoder_row("cjacobi+ee", runs)
    assert ROW_KEYS <= set(row)
    low, high = wilson_interval(16, 20)
    assert row["pc_success"] == pytest.approx(80.0)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((100 * low, 100 * high))
    assert row["per_seed"] == [70.0, 90.0]
    assert row["episodes"] == 20 and row["k"] == 8
    assert row["nfe_per_chunk"] == pytest.approx((4.0 * 10 + 2.0 * 30) / 40)  # per chunk
    assert row["ms_per_chunk"] == pytest.approx(15.0)
    assert row["hz"] == pytest.approx(8 * 1000 / 15.0)


def test_paired_test_counts_discordant_episodes_on_shared_seeds():
    a = [True, True, False, True, False, True]
    b = [True, False, False, False, True, True]
    runs = {"ar": _runs({0: _run(a)}), "oft": _runs({0: _run(b + [True], nfe=1.0)})}
    test = paired_test("ar", "oft", runs)
    assert test["pairs"] == 6  # the extra oft episode has no partner
    assert (test["only_a"], test["only_b"]) == (2, 1)
    assert 0.0 < test["p_value"] <= 1.0


def test_headline_picks_the_best_parallel_decoder_and_the_floor_ratio():
    ar = _run([True] * 9 + [False], nfe=32.0, ms=40.0, decode_ms=30.0)
    runs = {"ar": _runs({0: ar}),
            "cjacobi+ee": _runs({0: _run([True] * 9 + [False], nfe=4.0, ms=12.0,
                                         decode_ms=5.0)}),
            "flow@10": _runs({0: _run([True] * 5 + [False] * 5, nfe=10.0)}),
            "oft": _runs({0: _run([True] * 8 + [False] * 2, nfe=1.0)})}
    rows = [decoder_row(d, r) for d, r in runs.items()]
    out = headline(rows, runs)
    assert out["best_parallel"] == "oft"
    assert [(t["a"], t["b"]) for t in out["tests"]] == [("ar", "cjacobi+ee"), ("ar", "oft")]
    cj = out["cjacobi_vs_ar"]
    assert cj["nfe_ratio"] == pytest.approx(4 / 32)
    assert cj["ms_ratio_measured"] == pytest.approx(12 / 40)
    assert cj["decode_ms_ratio_measured"] == pytest.approx(5 / 30)
    assert cj["ms_ratio_floor_predicted"] == pytest.approx(4 * 1.6 / 22.7)


def test_markdown_and_plot_are_written(tmp_path):
    runs = {"ar": _runs({0: _run([True, False])}), "oft": _runs({0: _run([True, True])})}
    rows = [decoder_row(d, r) for d, r in runs.items()]
    result = {"env_id": "robodecode/TabletopPickPlace-v0", "rows": rows,
              "headline": headline(rows, runs), "k": 8, "episodes_per_seed": 2,
              "latency": "measured", "seeds": {"train": [0], "describe": "0 + i"},
              "plot": "compare.png", "command": "robodecode compare",
              "provenance": {"cpu": "test", "torch_threads": 1}}
    write_markdown(result, tmp_path / "compare.md")
    assert "CPU test" in (tmp_path / "compare.md").read_text()  # older results: the writer's
    result["machines"] = {"Xeon x16, NVIDIA H100": 3, "machine not recorded": 1}
    write_markdown(result, tmp_path / "compare.md")
    plot(result, tmp_path / "compare.png")
    text = (tmp_path / "compare.md").read_text()
    assert "episodes ran on Xeon x16, NVIDIA H100 (3); machine not recorded (1)" in text
    assert "| decoder | success % (95% CI) |" in text and "| oft |" in text
    assert "McNemar ar vs oft" in text
    assert "requirement" not in text.lower() and "PASS" not in text
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    result["rows"] = [decoder_row(d, runs["ar"]) for d in ("flow@2", "flow@5", "diffusion@4")]
    plot(result, tmp_path / "steps.png")  # with the success-vs-steps panel
    assert (tmp_path / "steps.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_quick_compare_end_to_end(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from experiments import compare

    monkeypatch.chdir(tmp_path)  # scratch/ (demos, checkpoints, runs, results) goes here
    app = typer.Typer()
    bench = typer.Typer()
    app.add_typer(bench, name="bench")
    compare.register(app, bench)
    app.command("noop")(lambda: None)  # a second command keeps `compare` a subcommand
    result = CliRunner().invoke(app, ["compare", "--quick"])
    assert result.exit_code == 0, result.output
    out = Path("scratch/compare/quick/TabletopPickPlace-v0")
    data = json.loads((out / "compare.json").read_text())
    assert data["env_id"] == "robodecode/TabletopPickPlace-v0"
    assert [r["decoder"] for r in data["rows"]] == list(QUICK_DECODERS)
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["episodes"] == 1 and len(row["per_seed"]) == 1 and row["k"] == 8
        (seed0,) = row["per_seed_detail"]
        assert seed0["nfe_per_chunk"] == row["nfe_per_chunk"]
        assert {"heldout_pc_success", "latency_aware_pc_success"} <= set(seed0)
    assert data["shipped"] is None and set(data["models"]) == {"0"}  # scratch: not shipped
    nfe = {r["decoder"]: r["nfe_per_chunk"] for r in data["rows"]}
    assert nfe["ar"] == 32 and nfe["oft"] == 1 and 1 <= nfe["cjacobi+ee"] <= 32
    assert {"provenance", "command", "seeds"} <= set(data)
    assert (out / "compare.md").is_file() and (out / "compare.png").is_file()
    assert "success % (95% CI)" in result.output


def test_conditions_select_the_eval_runs():
    from experiments.compare import eval_plan

    cfg = CompareConfig(decoders=("ar", "oft"), conditions=("train",), episodes=3)
    plan = eval_plan(cfg, {0: Path("set0"), 1: Path("set1")})
    assert {(d, c, s) for d, c, s, _ in plan} == {("ar", "train", 0), ("ar", "train", 1),
                                                  ("oft", "train", 0), ("oft", "train", 1)}
    with pytest.raises(ValueError, match="conditions"):
        CompareConfig(conditions=("heldout", "typo"))
    with pytest.raises(ValueError, match="include 'train'"):
        CompareConfig(conditions=("latency",))


def test_run_evals_shows_one_progress_bar_over_every_episode(tmp_path, monkeypatch, capsys):
    import experiments.evaluate
    from experiments import compare_evals
    from experiments.compare import SHIPPED

    def fake_evaluate(ecfg, out, resume, progress):
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "episodes.jsonl", "a") as f:
            for i in range(ecfg.episodes):
                f.write(json.dumps({"episode": i, "success": True}) + "\n")
        return {"pc_success": 100.0, "episodes": ecfg.episodes, "eval_s": 0.0}

    monkeypatch.setattr(experiments.evaluate, "evaluate", fake_evaluate)
    monkeypatch.setattr(compare_evals, "SCRATCH", tmp_path)
    cfg = CompareConfig(decoders=("ar", "oft"), conditions=("train", "heldout"), episodes=3,
                        out=tmp_path / "out")
    logged = []
    runs = compare_evals.run_evals(cfg, {0: SHIPPED / "TabletopPickPlace-v0" / "seed0"},
                                   log=logged.append)
    assert set(runs["ar"]["heldout"]) == {0} and len(logged) == 4
    err = capsys.readouterr().err
    assert "compare" in err and "12/12" in err  # 2 decoders x 1 seed x 2 conditions x 3


def test_step_curves_group_iterative_decoders():
    from experiments.compare_report import step_curves

    rows = [{"decoder": d, "ms_per_chunk": ms, "pc_success": pc} for d, ms, pc in (
        ("flow@10", 40.0, 80.0), ("flow@2", 16.0, 92.0), ("flow@5:heun", 30.0, 10.0),
        ("diffusion@4", 30.0, 84.0), ("oft", 13.0, 86.0), ("ar", 90.0, 78.0))]
    curves = step_curves(rows)
    assert curves == {"flow": [(2, 16.0, 92.0), (10, 40.0, 80.0)]}  # one diffusion count: none


def test_gpu_timing_merges_only_for_the_same_checkpoints(tmp_path):
    from experiments.compare import GPU_TIMING, merge_gpu_timing

    rows = [{"decoder": "ar"}, {"decoder": "oft"}, {"decoder": "flow@2"}]
    assert merge_gpu_timing(rows, tmp_path, {}) is None and "gpu_eager_ms_per_chunk" not in rows[0]
    timing = {"gpu": "NVIDIA H100 80GB HBM3", "label": "eager GPU",
              "rows": [{"decoder": "ar", "ms_per_chunk": 30.0, "model": "aaa"},
                       {"decoder": "oft", "ms_per_chunk": 4.0, "model": "old"}]}
    (tmp_path / GPU_TIMING).write_text(json.dumps(timing))
    logged = []
    info = merge_gpu_timing(rows, tmp_path, {"ar": "aaa", "oft": "new", "flow@2": "f"},
                            log=logged.append)
    assert [r["gpu_eager_ms_per_chunk"] for r in rows] == [30.0, None, None]
    assert info["stale"] == ["oft"] and "oft" in logged[0]


def test_markdown_adds_the_gpu_column_when_timed(tmp_path):
    from experiments.compare_report import columns, table_rows

    runs = {"ar": _runs({0: _run([True, False])})}
    rows = [decoder_row("ar", runs["ar"])]
    rows[0]["gpu_eager_ms_per_chunk"] = 31.5
    result = {"env_id": "robodecode/TabletopPickPlace-v0", "rows": rows,
              "headline": headline(rows, runs), "k": 8, "episodes_per_seed": 2,
              "latency": "measured", "seeds": {"train": [0], "describe": "0 + i"},
              "plot": "compare.png", "command": "robodecode compare",
              "gpu_timing": {"file": "gpu_eager_timing.json", "gpu": "H100", "label": "eager"},
              "provenance": {"cpu": "test", "torch_threads": 1}}
    assert columns(result)[-1] == "H100 eager ms / chunk"
    assert table_rows(rows)[0][-1] == "31.50"
    write_markdown(result, tmp_path / "compare.md")
    assert "H100 eager ms / chunk" in (tmp_path / "compare.md").read_text()


def test_gpu_timing_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    from experiments.compare import write_gpu_timing

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        write_gpu_timing(CompareConfig(out=tmp_path))


def test_chunk_timing_interleaves_decoders_on_the_same_observations():
    from experiments.compare import SHIPPED, chunk_timing

    rows = chunk_timing(SHIPPED / "TabletopPickPlace-v0" / "seed0", ("ar", "oft"),
                        calls=4, warmup=1, rounds=2)
    assert [r["decoder"] for r in rows] == ["ar", "oft"]
    assert [r["nfe_per_chunk"] for r in rows] == [32.0, 1.0]
    assert all(0 < r["ms_p10"] <= r["ms_per_chunk"] <= r["ms_p90"] for r in rows)
    with pytest.raises(ValueError, match="at least rounds"):
        chunk_timing(SHIPPED / "TabletopPickPlace-v0" / "seed0", ("ar",), calls=2, rounds=3)


def test_plot_labels_of_close_points_do_not_overlap_and_the_axis_fits_the_data():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from experiments.compare_plot import family_colours, place_labels, y_limits

    rows = [{"decoder": d, "ms_per_chunk": ms, "pc_success": pc, "ci_low": pc - 5,
             "ci_high": pc + 5, "latency_aware_pc_success": pc - 20}
            for d, ms, pc in (("cjacobi+ee", 19.7, 89.0), ("diffusion@2", 20.2, 86.0),
                              ("flow@2", 18.0, 87.0), ("jacobi+ee", 20.0, 88.0))]
    low, high = y_limits(rows)
    assert 55 < low < 66 and 94 < high <= 102  # not 0-100: the data and their intervals
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.set_xscale("log")
    ax.set_xlim(15, 25)
    ax.set_ylim(low, high)
    fig.canvas.draw()
    labels = place_labels(ax, [(r["ms_per_chunk"], r["pc_success"], r["decoder"])
                               for r in rows], [])
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, renderer) for a in labels]
    assert [a.get_text() for a in labels] == [r["decoder"] for r in rows]
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(4) for j in range(i + 1, 4))
    plt.close(fig)
    colours = family_colours()
    assert colours["AR"] != colours["flow"] and len(set(colours.values())) == len(colours)


@pytest.mark.parametrize(("cj", "only", "p", "verdict"), [
    (89.1, (12, 19), 0.2, "3.5 points above AR (McNemar p=0.2): no significant difference"),
    (83.0, (20, 10), 0.07, "within 3 points of AR and not significantly below"),
    (82.1, (24, 17), 0.28, "more than 3 points below AR"),
    (84.0, (40, 10), 0.01, "significantly below AR"),
])
def test_check_lines_read_within_3_points_as_non_inferiority(cj, only, p, verdict):
    rows = [{"decoder": "ar", "pc_success": 85.6, "nfe_per_chunk": 32.0},
            {"decoder": "cjacobi+ee", "pc_success": cj, "nfe_per_chunk": 2.6}]
    tests = [{"a": "ar", "b": "cjacobi+ee", "only_a": only[0], "only_b": only[1],
              "p_value": p}]
    lines = check_lines({"rows": rows, "headline": {"tests": tests}})
    assert lines[0] == "AR succeeds in 85.6% of episodes (80% or more: a usable baseline)."
    assert lines[1] == "cjacobi+ee takes 1/12 of AR's passes per chunk (x0.081)."
    assert verdict in lines[2]
    assert not any(word in " ".join(lines) for word in ("PASS", "FAIL", "requirement"))
    assert check_lines({"rows": rows[:1], "headline": {"tests": []}}) == []


def test_rollout_video_tiles_every_decoder_and_marks_the_outcome(tmp_path):
    import av

    from experiments.compare import SHIPPED
    from experiments.compare_videos import tile, write_videos

    frame = np.full((32, 32, 3), 128, np.uint8)
    grid = tile({"a": frame, "b": frame, "c": frame}, {"a": True, "b": False, "c": None},
                title="t", columns=2)
    assert grid.shape[0] > 2 * 32 and grid.shape[1] == 2 * (32 + 6)
    band = grid.shape[0] - 2 * (32 + 14 + 6)  # the title band above the two panel rows
    assert tuple(grid[band + 14, 0]) == (40, 200, 60)  # a: green border (success)
    assert tuple(grid[band + 14, 38]) == (220, 40, 40)  # b: red border (failure)
    cfg = CompareConfig(decoders=("oft", "flow@2"), episodes=1, videos=1, out=tmp_path)
    set0 = SHIPPED / "TabletopPickPlace-v0" / "seed0"
    runs = {"oft": {"train": {0: {"per_episode": [{"seed": 1000, "success": False}]}}},
            "flow@2": {"train": {}}}
    (entry,) = write_videos(cfg, {0: set0}, runs, tmp_path, log=lambda m: None)
    assert entry["seed"] == 1000 and set(entry["success"]) == {"oft", "flow@2"}
    assert entry["matches_eval"]["oft"] == (entry["success"]["oft"] is False)
    assert entry["matches_eval"]["flow@2"] is True  # not evaluated: nothing to contradict
    with av.open(str(tmp_path / entry["file"])) as video:
        assert video.streams.video[0].frames > 10
    with pytest.raises(ValueError, match="videos"):
        CompareConfig(episodes=2, videos=3)


def test_per_seed_detail_keeps_each_seeds_held_out_latency_and_passes():
    runs = {"train": {0: _run([True] * 9 + [False], nfe=2.0, ms=10.0),
                      1: _run([True] * 5 + [False] * 5, seed0=100, nfe=3.3, ms=12.0)},
            "heldout": {0: _run([True] * 6 + [False] * 4, seed0=50),
                        1: _run([True] * 8 + [False] * 2, seed0=150)},
            "latency": {0: _run([True] * 7 + [False] * 3)}}
    row = decoder_row("cjacobi+ee", runs)
    assert row["pools_train_seeds"] == [0, 1]
    s0, s1 = row["per_seed_detail"]
    assert (s0["train_seed"], s0["pc_success"], s0["nfe_per_chunk"]) == (0, 90.0, 2.0)
    assert (s0["heldout_pc_success"], s0["latency_aware_pc_success"]) == (60.0, 70.0)
    assert (s1["heldout_pc_success"], s1["nfe_per_chunk"], s1["ms_per_chunk"]) == (80.0, 3.3, 12.0)
    assert s1["latency_aware_pc_success"] is None and s1["latency_aware_episodes"] == 0
    assert row["heldout_pc_success"] == pytest.approx(70.0)  # pooled 14 / 20
    low, high = wilson_interval(14, 20)
    assert (row["heldout_ci_low"], row["heldout_ci_high"]) == pytest.approx((100 * low,
                                                                             100 * high))


def _pooled_result(runs: dict) -> dict:
    """A two-seed ``compare.json`` object (episodes recorded as ``compare`` writes them)."""
    rows = [decoder_row(d, r) for d, r in runs.items()]
    return {"env_id": "robodecode/TabletopPickPlace-v0", "rows": rows,
            "headline": headline(rows, runs), "k": 8, "episodes_per_seed": 10,
            "latency": "measured", "plot": "compare.png", "command": "robodecode compare",
            "seeds": {"train": [0, 1], "env_first": {"0": 0, "1": 100}, "describe": "i"},
            "checkpoints": {"0": "scratch/ck/seed0", "1": "scratch/ck/seed1"},
            "episodes": {d: {c: {str(s): [[e["seed"], int(e["success"])]
                                          for e in r["per_episode"]] for s, r in by.items()}
                             for c, by in rr.items()} for d, rr in runs.items()},
            "provenance": {"cpu": "test", "torch_threads": 1}}


def test_shipped_section_reports_the_shipped_seed_alone_and_labels_the_pool(tmp_path):
    from experiments.compare_report import shipped_section, vs_baseline

    runs = {"ar": _runs({0: _run([True] * 9 + [False]),
                         1: _run([False] * 10, seed0=100)}),
            "cjacobi+ee": _runs({0: _run([True] * 8 + [False] * 2, nfe=2.0),
                                 1: _run([True] * 2 + [False] * 8, seed0=100, nfe=3.3)})}
    result = _pooled_result(runs)
    assert set(vs_baseline(["ar", "cjacobi+ee"], runs)) == {"train", "heldout", "latency"}
    assert [t["condition"] for t in result["headline"]["vs_ar"]["heldout"]] == ["heldout"]
    shipped = shipped_section(result, 0, "experiments/checkpoints/TabletopPickPlace-v0/seed0")
    by = {r["decoder"]: r for r in shipped["rows"]}
    assert by["ar"]["pc_success"] == 90.0 and by["ar"]["episodes"] == 10  # seed 0 only
    assert by["cjacobi+ee"]["nfe_per_chunk"] == 2.0  # seed 0's own passes, not the pooled 2.65
    assert by["cjacobi+ee"]["heldout"]["pc_success"] == 80.0
    assert by["cjacobi+ee"]["nfe_source"] == "this run"
    result["shipped"] = shipped
    write_markdown(result, tmp_path / "compare.md")
    text = (tmp_path / "compare.md").read_text()
    assert "Pooled over training seed 0 = `scratch/ck/seed0` (same weights as the shipped" in text
    assert "training seed 1 = `scratch/ck/seed1` (not shipped)" in text
    assert "## Shipped set only (training seed 0" in text
    assert "| cjacobi+ee | 80.0 (49.0–94.3) | 80.0 (49.0–94.3) | 2.00 | 80.0 |" in text
    assert "held-out instr. success (95% CI)" in text


def test_shipped_passes_come_from_a_rerun_when_the_pooled_file_predates_them():
    from experiments.compare_report import agreement, shipped_section

    runs = {"cjacobi+ee": _runs({0: _run([True, False, True], nfe=2.0),
                                 1: _run([True, True, True], seed0=100, nfe=3.3)})}
    result = _pooled_result(runs)
    for row in result["rows"]:  # an older compare.json: per-seed detail without passes
        row["per_seed_detail"] = [{"train_seed": s["train_seed"], "pc_success": s["pc_success"]}
                                  for s in row["per_seed_detail"]]
    rerun = _pooled_result({"cjacobi+ee": _runs({0: _run([True, True, True], nfe=2.0)})})
    shipped = shipped_section(result, 0, "shipped/seed0", rerun=rerun,
                              rerun_file="shipped/compare.json")
    row = shipped["rows"][0]
    assert (row["nfe_per_chunk"], row["nfe_source"]) == (2.0, "shipped/compare.json")
    same = agreement(result, rerun, 0)["cjacobi+ee"]["train"]
    assert (same["episodes"], same["same"]) == (3, 2)


def test_shipped_seed_is_found_by_content_hash(tmp_path, monkeypatch):
    import hashlib

    from experiments import compare, compare_shipped

    folder = tmp_path / "TabletopPickPlace-v0" / "seed0" / "ar"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr(compare_shipped, "SHIPPED", tmp_path)
    digest = hashlib.sha1(b"weights").hexdigest()[:12]
    env = "robodecode/TabletopPickPlace-v0"
    assert compare.shipped_seed(env, {"0": {"ar": digest}, "1": {"ar": digest}}) == 0
    assert compare.shipped_seed(env, {"0": {"ar": "retrained"}}) is None
    assert compare.shipped_seed(env, {"1": {"ar": digest}}) is None  # no shipped seed1/


def test_rtc_condition_runs_latency_aware_with_real_time_chunking(tmp_path, monkeypatch):
    from experiments import compare_evals
    from experiments.compare import compare, eval_plan

    cfg = CompareConfig(decoders=("ar",), conditions=("train", "rtc"), episodes=1,
                        latency="80", out=tmp_path / "out", videos=0)
    plan = {c: e for _, c, _, e in eval_plan(cfg, {0: Path("set0")})}
    assert plan["rtc"].rtc and plan["rtc"].latency == 80.0 and not plan["train"].rtc
    assert "rtc" not in CompareConfig().conditions  # not run unless asked for
    monkeypatch.setattr(compare_evals, "SCRATCH", tmp_path / "scratch")
    result = compare(cfg, log=lambda *_: None)
    row = result["rows"][0]
    assert row["rtc_episodes"] == 1 and row["rtc_pc_success"] in (0.0, 100.0)
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "latency-aware + RTC success" in md


def test_a_run_with_more_episodes_starts_from_the_same_run_with_fewer(tmp_path):
    from dataclasses import replace

    from experiments.compare_evals import take_over_episodes
    from experiments.evaluate import EvalConfig, evaluate, load_records

    runs = tmp_path / "runs"
    cfg = EvalConfig(policy="expert", env_id="robodecode/TabletopPickPlace-v0", episodes=3,
                     seed=5, workers=1)
    evaluate(cfg, runs / "expert-train-s5-n3", progress=False)
    first = load_records(runs / "expert-train-s5-n3")
    assert take_over_episodes(replace(cfg, k=4, episodes=5), runs / "expert-train-s5-n5") == (
        0, None)  # other settings: not the same run
    grown = replace(cfg, episodes=5)
    taken = take_over_episodes(grown, runs / "expert-train-s5-n5")
    assert taken == (3, runs / "expert-train-s5-n3")
    summary = evaluate(grown, runs / "expert-train-s5-n5", resume=True, progress=False)
    assert summary["resumed_episodes"] == 3 and summary["episodes"] == 5
    assert [e["seed"] for e in summary["per_episode"]] == [5, 6, 7, 8, 9]
    again = load_records(runs / "expert-train-s5-n5")
    assert all(again[i] == first[i] for i in range(3)) and set(again) == set(range(5))
    # fewer: a prefix of the run with the most; a folder that has episodes is left alone
    assert take_over_episodes(replace(cfg, episodes=4), runs / "expert-train-s5-n4") == (
        4, runs / "expert-train-s5-n5")
    assert set(load_records(runs / "expert-train-s5-n4")) == {0, 1, 2, 3}
    assert take_over_episodes(replace(cfg, episodes=5), runs / "expert-train-s5-n4") == (0, None)


def test_runs_made_from_another_copy_of_the_weights_are_taken_over_and_resumed(tmp_path):
    """Run folders brought back from another machine name a checkpoint path missing here."""
    from dataclasses import replace

    from envs.files import read_json_object, write_json_atomic
    from experiments.compare_evals import adopt_run, take_over_episodes
    from experiments.evaluate import CONFIG_FILE, EvalConfig, evaluate, load_records

    runs = tmp_path / "runs"
    cfg = EvalConfig(policy="expert", env_id="robodecode/TabletopPickPlace-v0", episodes=2,
                     seed=5, workers=1)
    for n in (2, 3):
        evaluate(replace(cfg, episodes=n), runs / f"expert-train-s5-n{n}", progress=False)
        saved = read_json_object(runs / f"expert-train-s5-n{n}" / CONFIG_FILE)
        write_json_atomic(runs / f"expert-train-s5-n{n}" / CONFIG_FILE,
                          {**saved, "policy": "/elsewhere/ckpt/seed0"})
    with pytest.raises(ValueError, match="different policy"):  # evaluate alone refuses it
        evaluate(replace(cfg, episodes=3), runs / "expert-train-s5-n3", resume=True,
                 progress=False)
    adopt_run(replace(cfg, episodes=3), runs / "expert-train-s5-n3")
    assert read_json_object(runs / "expert-train-s5-n3" / CONFIG_FILE)["policy"] == "expert"
    assert evaluate(replace(cfg, episodes=3), runs / "expert-train-s5-n3", resume=True,
                    progress=False)["resumed_episodes"] == 3
    grown = replace(cfg, episodes=4)
    assert take_over_episodes(grown, runs / "expert-train-s5-n4") == (
        3, runs / "expert-train-s5-n3")
    assert read_json_object(runs / "expert-train-s5-n4" / CONFIG_FILE)["policy"] == "expert"
    assert evaluate(grown, runs / "expert-train-s5-n4", resume=True,
                    progress=False)["resumed_episodes"] == 3
    assert set(load_records(runs / "expert-train-s5-n4")) == {0, 1, 2, 3}
    other = runs / "expert-train-s5-n2"  # another setting besides the path: left alone
    saved = read_json_object(other / CONFIG_FILE)
    adopt_run(replace(cfg, k=4), other)
    assert read_json_object(other / CONFIG_FILE) == saved


def test_machines_pool_every_run_and_older_runs_count_as_not_recorded():
    from experiments.compare_rows import machines_of
    from experiments.eval_summary import NOT_RECORDED

    runs = {"ar": {"train": {0: {"machines": {"Xeon x16, NVIDIA H100": 2}, "episodes": 2}},
                   "latency": {0: {"episodes": 3}}},  # summarized before machines were counted
            "oft": {"train": {0: {"machines": {"EPYC x2": 5}, "episodes": 5}}, "latency": {}}}
    assert list(machines_of(runs).items()) == [
        ("EPYC x2", 5), ("Xeon x16, NVIDIA H100", 2), (NOT_RECORDED, 3)]
