"""Smoke tests of ``experiments/studies``: each study runs on a tiny setting.

Studies that only re-analyse committed files reproduce the committed numbers exactly.
"""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from experiments.evaluate import EPISODES_FILE
from experiments.studies import (
    ar_noise_paired,
    closed_loop_grid,
    ee_resweep,
    failure_modes,
    finetune_steps,
    prefix_swap_probe,
    rtc_table,
    selection,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
SHIPPED = ROOT / "experiments" / "checkpoints" / "TabletopPickPlace-v0" / "seed0"


def test_every_study_starts_with_its_usage_line():
    for path in sorted((ROOT / "experiments" / "studies").glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc.startswith(f"python -m experiments.studies.{path.stem}"), path.name


def test_ar_noise_paired_reproduces_the_committed_file(tmp_path):
    out = tmp_path / "paired.json"
    result = ar_noise_paired.main(["--out", str(out)])
    assert result == json.loads((RESULTS / "ar-input-noise" / "paired.json").read_text())
    vs = result["vs_reference"]
    assert result["episodes"] == 600 and result["reference"] == "ar (0.8 AR set)"
    assert (vs["ar (0.4 AR set)"]["only_reference"], vs["ar (0.4 AR set)"]["only_other"]) == \
        (101, 46)
    assert vs["ar (0.4 AR set)"]["p_value"] == pytest.approx(4.805e-6, rel=1e-3)
    assert vs["oft (0.4 AR set)"]["p_value"] == pytest.approx(0.3594, rel=1e-3)
    assert result["success"]["ar (0.4 AR set)"] == 78.0


def _fake_run(folder: Path, outcomes: list[bool], passes: float) -> None:
    folder.mkdir(parents=True)
    folder.joinpath(EPISODES_FILE).write_text("".join(
        json.dumps({"episode": i, "seed": 7000 + i, "success": ok, "chunk_nfe": [passes]}) + "\n"
        for i, ok in enumerate(outcomes)))


def test_selection_pools_seeds_and_pairs_episodes(tmp_path):
    for seed in (0, 1):
        _fake_run(tmp_path / f"ref-s{seed}", [True, True, False, False], 32)
        _fake_run(tmp_path / f"new-s{seed}", [True, False, True, True], 2.5)
    out = tmp_path / "sel.json"
    result = selection.main([str(tmp_path), "--variant", "ref=ref-s{seed}", "--variant",
                             "new=new-s{seed}", "--seeds", "0", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    ref, new = result["variants"]
    assert (ref["pc_success"], new["pc_success"], new["per_seed"]) == (50.0, 75.0, [75.0, 75.0])
    assert (ref["episodes"], new["nfe_per_chunk"]) == (4, 2.5)  # env seeds shared by training seeds
    assert result["vs_reference"]["new"]["only_reference"] == 1
    assert result["vs_reference"]["new"]["only_other"] == 2
    with pytest.raises(SystemExit):
        selection.main([str(tmp_path), "--preset", "cjacobi", "--variant", "a=b"])
    with pytest.raises(FileNotFoundError):
        selection.main([str(tmp_path), "--preset", "cjacobi", "--out", str(out)])


def test_failure_modes_replays_a_committed_episode(tmp_path):
    committed = json.loads((RESULTS / "failure-modes" / "ar_failed_seeds_flow2.jsonl")
                           .read_text().splitlines()[0])
    out = tmp_path / "rows.jsonl"
    (row,) = failure_modes.main([str(SHIPPED), "flow@2", str(committed["seed"]),
                                 "--out", str(out)])
    assert json.loads(out.read_text()) == row
    assert row.keys() == committed.keys()
    assert (row["success"], row["target"]) == (committed["success"], committed["target"])


def test_prefix_swap_probe_on_the_shipped_oft_head(tmp_path):
    committed = json.loads((RESULTS / "instruction-grounding" / "probe_shipped_oft.json")
                           .read_text())
    out = tmp_path / "probe.json"
    result = prefix_swap_probe.main([str(SHIPPED / "oft"), "--obs-seeds", "2000-2003",
                                     "--heading-seeds", "100-101", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["swap"].keys() == committed["swap"].keys()
    # the image tokens move the chunk most, the language token least (it acts through FiLM)
    assert max(result["swap"], key=result["swap"].get) == "image grid tokens"
    assert min(result["swap"], key=result["swap"].get) == "language token"
    assert result["target_heading_seeds_100_101"]["steps"] == 16


def test_ee_resweep_on_a_tiny_archive(tmp_path):
    from vla.checkpoint import from_pretrained

    model = from_pretrained(SHIPPED / "ar")
    cfg, n = model.config, 6
    rng = np.random.default_rng(0)
    archive = tmp_path / "archive"
    archive.mkdir()
    np.savez(archive / "chunks_all.npz",
             image=rng.integers(0, 255, (n, cfg.image_size, cfg.image_size, 3), dtype=np.uint8),
             state=rng.normal(size=(n, cfg.state_dim)).astype(np.float32),
             actions=rng.uniform(-0.5, 0.5, (n, cfg.horizon, cfg.action_dim)).astype(np.float32),
             is_pad=np.zeros((n, cfg.horizon), bool), instr_index=np.zeros(n, np.int64),
             episode=np.arange(n))
    archive.joinpath("chunks_meta.json").write_text(json.dumps(
        {"instructions": [model.instructions.instructions[0]]}))
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "seed0").symlink_to(SHIPPED, target_is_directory=True)
    out = tmp_path / "ee.json"
    result = ee_resweep.main([str(archive), str(sets), str(sets), "--seeds", "0", "--items", "2",
                              "--out", str(out)])
    row = json.loads(out.read_text())["seeds"]["0"]
    assert result["items"] == 2 and row["mixed"]["shipped_rule"] == "max2"
    same = {k: v for k, v in row["mixed"].items() if k != "curve"}  # the curve holds timings
    assert row["plain"].items() >= same.items() and row["mixed"]["shipped_rule_nfe"] == 2.0


def test_rtc_table_pairs_runs_by_seed(tmp_path):
    def run(name, outcomes, nfe=2.0):
        folder = tmp_path / name
        folder.mkdir()
        per = [{"seed": 10 + i, "success": ok} for i, ok in enumerate(outcomes)]
        (folder / "eval_info.json").write_text(json.dumps(
            {"per_episode": per, "nfe_per_chunk": nfe, "ms_per_chunk": 5.0}))

    run("ar-l0", [1, 1, 1, 1])
    run("ar-l80", [1, 0, 0, 1], 32.0)
    run("ar-l80-rtc", [1, 1, 1, 0], 17.0)
    run("ar-lmeasured", [0, 0, 1, 1])
    run("ar-lmeasured-rtc", [1, 0, 1, 1])
    runs = rtc_table.load_runs(tmp_path)
    text = rtc_table.table(runs)
    assert "| ar | 80 | 50 (15–85) | 75 (30–95) | 2 / 1, p = " in text and "| 17.00 |" in text
    assert "| ar | 0 | 100 (51–100) | | |" in text
    assert text.index("| ar | 80 |") < text.index("| ar | measured (5) | 50 (15–85) | 75 ")
    rtc_table.plot(runs, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_finetune_steps_continues_a_shipped_model(tmp_path):
    from envs.lerobot_dataset import collect
    from vla.checkpoint import from_pretrained

    collect("robodecode/TabletopRearrange-v0", 2, tmp_path / "demos", progress=False,
            env_kwargs={"step_instructions": True, "image_size": 64})
    out = finetune_steps.finetune(tmp_path / "demos", SHIPPED / "oft", tmp_path / "ft", steps=2,
                                  batch_size=4, progress=False)
    assert out["step"] == 2 and out["train_items"] > 0
    base, tuned = from_pretrained(SHIPPED / "oft"), from_pretrained(tmp_path / "ft")
    assert tuned.config == base.config
    w = "head.act_out.weight"
    assert not np.allclose(base.state_dict()[w].numpy(), tuned.state_dict()[w].numpy())
    assert np.allclose(base.tokenizer.q01.numpy(), tuned.tokenizer.q01.numpy())  # stats kept


def test_closed_loop_grid_runs_conditions_and_pairs_them(tmp_path, capsys):
    conds = ["ltl:train:ltl:expert", "oracle:train:oracle:expert"]
    closed_loop_grid.main(["run", "--root", str(tmp_path), "--tasks", "2", "--no-progress",
                           *[x for c in conds for x in ("--condition", c)]])
    closed_loop_grid.main(["table", "--root", str(tmp_path), "--pair", "ltl,oracle"])
    out = capsys.readouterr().out
    assert "| `ltl` | train | ltl | expert | 2 | 100.0" in out
    assert "| `ltl` | `oracle` | 2 | 0 / 0 | 0 / 0 | 1 | 100.0 / 100.0 | 0 / 0 | 1 | +0.0" in out
    assert closed_loop_grid.paired_difference(9, 0, 100)[0] == 9.0
    with pytest.raises(ValueError, match="NAME:SPLIT"):
        closed_loop_grid.parse_condition(tmp_path, "a:train:ltl")


def test_with_rtc_training_starts_as_the_base_and_then_conditions(tmp_path):
    from vla.checkpoint import from_pretrained

    base = from_pretrained(SHIPPED / "oft")
    model = finetune_steps.with_rtc_training(base, 7).eval()
    assert model.config.rtc_train_max == 7 and model.head.prefix_in is not None
    rng = np.random.default_rng(0)
    obs = {"image": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
           "state": rng.normal(size=base.config.state_dim).astype(np.float32),
           "instruction": base.instructions.instructions[0]}
    np.testing.assert_array_equal(model.predict_chunk(obs)[0], base.predict_chunk(obs)[0])
    prev = base.predict_chunk(obs)[0][:, ::-1].copy()  # a committed plan the base did not make
    import torch

    with torch.no_grad():
        # as if trained: the committed steps now matter (not a constant shift, which every
        # LayerNorm removes: a constant left the chunk equal up to float rounding)
        bias = model.head.prefix_in.bias
        bias.copy_(torch.linspace(-1.0, 1.0, bias.numel()))
    with_prefix, stats = model.predict_chunk(obs, prefix_actions=prev, frozen_steps=3)
    assert stats["decoder_frozen_conditioned"] == 3
    assert not np.allclose(with_prefix[:, 3:], base.predict_chunk(obs)[0][:, 3:])
    with pytest.raises(ValueError, match="oft head only"):
        finetune_steps.with_rtc_training(from_pretrained(SHIPPED / "ar"), 3)
