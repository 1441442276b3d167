"""experiments/studies/libero_pro_table.py on small hand-made comparisons (no simulation)."""

import json

import pytest

from experiments.stats import mcnemar_counts, wilson_interval
from experiments.studies import libero_pro_table as table


def _compare(path, env_id, outcomes, nfe=None):
    """A compare.json as robodecode compare writes it: episodes[decoder]["train"][seed]."""
    data = {"env_id": env_id,
            "rows": [{"decoder": d, "nfe_per_chunk": (nfe or {}).get(d)} for d in outcomes],
            "episodes": {d: {"train": {"0": [[s, int(ok)] for s, ok in enumerate(runs)]},
                             "heldout": {}} for d, runs in outcomes.items()}}
    path.write_text(json.dumps(data))
    return path


def test_perturbation_names():
    assert table.perturbation_of("robodecode/LIBERO-PRO-Object-Swap-v0") == "swap"
    assert table.perturbation_of("robodecode/LIBERO-PRO-Spatial-Language-v0") == "language"
    assert table.perturbation_of("robodecode/LIBERO-Object-v0") == "none"


def test_cells_pair_on_shared_seeds_and_count_discordant_episodes(tmp_path):
    # unperturbed: 10 episodes; swap: the first 6 only (the table pairs on seeds 0-5)
    base = _compare(tmp_path / "a.json", "robodecode/LIBERO-Object-v0",
                    {"ar": [1, 1, 1, 1, 1, 0, 1, 1, 1, 1], "oft": [1, 0, 1, 0, 1, 0] + [1] * 4},
                    nfe={"ar": 56.0, "oft": 1.0})
    swap = _compare(tmp_path / "b.json", "robodecode/LIBERO-PRO-Object-Swap-v0",
                    {"ar": [0, 0, 1, 0, 0, 1], "oft": [1, 0, 1, 0, 1, 0]})
    suite, outcomes, rows = table.load([base, swap])
    assert suite == "Object"
    cells = table.summarize(outcomes)
    ar = cells["ar"]
    assert ar["none"]["successes"] == 5 and ar["none"]["episodes"] == 6  # seeds 0-5 only
    assert ar["swap"]["successes"] == 2
    assert ar["swap"]["only_base"] == 4 and ar["swap"]["only_perturbed"] == 1
    assert ar["swap"]["delta"] == pytest.approx(-50.0)
    assert ar["swap"]["p"] == pytest.approx(mcnemar_counts(4, 1))
    assert ar["swap"]["ci"] == pytest.approx([100 * x for x in wilson_interval(2, 6)])
    assert cells["oft"]["swap"]["delta"] == 0.0 and cells["oft"]["swap"]["p"] == 1.0
    text = table.markdown(suite, cells, rows)
    assert "| ar | 83 (44–97) | 33 (10–70) -50, p=" in text
    assert text.splitlines()[2].startswith("| decoder | LIBERO-Object | swap |")
    assert "| 56.00 |" in text


def test_cli_writes_table_json_and_plot(tmp_path):
    base = _compare(tmp_path / "a.json", "robodecode/LIBERO-Object-v0", {"ar": [1, 0, 1]})
    task = _compare(tmp_path / "b.json", "robodecode/LIBERO-PRO-Object-Task-v0", {"ar": [0, 0, 1]})
    out, fig = tmp_path / "t.md", tmp_path / "t.png"
    table.main([str(base), str(task), "--out", str(out), "--plot", str(fig), "--published"])
    assert "| ar | 67" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["cells"]["ar"]["task"]["successes"] == 1
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_refused(tmp_path):
    swap = _compare(tmp_path / "b.json", "robodecode/LIBERO-PRO-Object-Swap-v0", {"ar": [1]})
    with pytest.raises(ValueError, match="unperturbed suite"):
        table.load([swap])
    other = _compare(tmp_path / "c.json", "robodecode/LIBERO-Spatial-v0", {"ar": [1]})
    with pytest.raises(ValueError, match="different suites"):
        table.load([swap, other])
    with pytest.raises(ValueError, match="two comparisons of perturbation 'swap'"):
        table.load([swap, swap])


def test_labels_compare_checkpoints_on_one_env_with_per_task_counts(tmp_path):
    env = "robodecode/LIBERO-Object-v0"
    early = _compare(tmp_path / "a.json", env, {"ar": [1] * 10 + [0] * 10, "oft": [1] * 20})
    late = _compare(tmp_path / "b.json", env, {"ar": [1] * 20, "oft": [1] * 20})
    out = tmp_path / "t.md"
    table.main([str(early), str(late), "--labels", "earlier", "recipe", "--out", str(out),
                "--per-task"])
    text = out.read_text()
    assert text.splitlines()[2].startswith("| decoder | earlier | recipe |")
    assert "| ar | 50 (30–70) | 100 (84–100) +50, p=" in text
    assert "recipe, per task:" in text and "earlier, per task:" in text
    # seeds 10-19 are tasks 0-9 again: the earlier AR failed them all once
    assert "| AlphabetSoup | 1/2 | 2/2 |" in text and "| **all** | 10/20 | 20/20 |" in text
    with pytest.raises(ValueError, match="one distinct label per comparison"):
        table.load([early, late], ["same", "same"])
    with pytest.raises(ValueError, match="no LIBERO suite"):
        table.task_table("Kitchen", {"ar": {0: True}})
