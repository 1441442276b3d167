"""`robodecode bench ltl` runs end to end (quick mode) and writes JSON with provenance."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from experiments.bench_ltl import family, register
from planners.ltl import LTLf


def test_families_have_the_advertised_sizes():
    assert LTLf(family("sequence", 4)).to_dfa().n_states == 5  # k+1: atoms seen so far
    assert LTLf(family("patrol", 3)).to_dfa().n_states == 8
    assert LTLf(family("mixed", 6)).atoms == {f"p{i}" for i in range(6)}


def test_bench_ltl_quick(tmp_path):
    app, bench = typer.Typer(), typer.Typer()
    app.add_typer(bench, name="bench")
    register(app, bench)
    out = tmp_path / "ltl.json"
    result = CliRunner().invoke(app, ["bench", "ltl", "--quick", "--no-mona", "--repeats", "1",
                                      "--steps", "50", "--max-atoms", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["provenance"]["git_sha"] is not None
    assert {r["family"] for r in data["atoms_sweep"]} == {"sequence", "mixed", "patrol"}
    assert all(r["dfa_step_frozenset_us"] > 0 for r in data["step_times"])
    assert "DFA build vs atoms" in result.output
