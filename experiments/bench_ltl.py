"""LTLf engine benchmark: DFA build time vs atoms and formula size, progression step time.

Usage: robodecode bench ltl [--quick] [--no-mona] [--out experiments/results/ltl/bench.json]

Three tables, printed and saved as JSON with provenance (default ``scratch/bench/ltl.json``):

1. DFA build time (progression + Hopcroft) vs number of atoms, for three formula
   families, over every subset of the atoms and over a one-hot alphabet (what a domain
   whose states make one atom true passes); MONA's compile time on the same formula is the
   baseline where MONA is installed (one ``mona`` process per formula, start-up included).
2. DFA build time vs formula size on seeded random formulas, with MONA beside it.
3. Per-step cost: formula progression with and without memoization, ``DFA.step`` (the
   lookup a constrained decoder pays per plan step), the public ``progress()``, and direct
   evaluation by ``LTLf.accepts`` per trace state.

Timings are wall-clock medians on whatever machine runs this; never asserted.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

UNARY = ("!", "X", "WX", "F", "G")
BINARY = ("&", "|", "->", "<->", "U", "R", "W")
TEMPLATES = ("G !{p}", "F({p} & F {q})", "{p} U {q}", "G({p} -> F {q})", "!{p} W {q}", "X {p}")


def random_formula(rng: random.Random, atoms: Sequence[str], depth: int) -> str:
    """A random fully parenthesized formula using every operator, depth at most ``depth``."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(("true", "false")) if rng.random() < 0.08 else rng.choice(atoms)
    if rng.random() < 0.4:
        return f"{rng.choice(UNARY)}({random_formula(rng, atoms, depth - 1)})"
    left, right = random_formula(rng, atoms, depth - 1), random_formula(rng, atoms, depth - 1)
    return f"({left}) {rng.choice(BINARY)} ({right})"


def family(name: str, k: int) -> str:
    """Formula of a named family over atoms ``p0..p{k-1}``.

    ``sequence`` visits the atoms in order (k+1 states); ``mixed`` conjoins typical
    robot-spec templates (avoid, ordered visit, until, response, weak until, next);
    ``patrol`` visits every atom in any order, the worst case (2**k states).
    """
    p = [f"p{i}" for i in range(k)]
    if name == "sequence":
        text = p[-1]
        for atom in reversed(p[:-1]):
            text = f"{atom} & F({text})"
        return f"F({text})"
    if name == "patrol":
        return " & ".join(f"F {a}" for a in p)
    if name == "mixed":
        clauses, i, t = [], 0, 0
        while i < k:
            template = TEMPLATES[t % len(TEMPLATES)]
            two = "{q}" in template and i + 1 < k
            q = p[i + 1] if two else p[i]
            clauses.append(template.format(p=p[i], q=q))
            i, t = i + (2 if two else 1), t + 1
        return " & ".join(f"({c})" for c in clauses)
    raise ValueError(f"family must be sequence, mixed or patrol, got {name!r}")


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(first-call ms, median ms over ``repeats`` calls, last result); DFA cache cleared."""
    from planners.ltl import clear_dfa_cache

    times, out = [], None
    for _ in range(repeats):
        clear_dfa_cache()
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times[0], statistics.median(times), out


def _mona_ms(text: str, timeout: float = 30.0) -> float | None:
    """Wall ms of one ``mona -q -u -w`` run on the formula (None: no mona or timed out)."""
    import tempfile

    from planners.ltl import LTLf
    from planners.ltl_mona import ltlf_to_mona, mona_path

    exe = mona_path()
    if exe is None:
        return None
    spec = LTLf(text)
    with tempfile.TemporaryDirectory(prefix="bench-ltl-") as tmp:
        path = Path(tmp) / "f.mona"
        path.write_text(ltlf_to_mona(spec.node, sorted(spec.atoms)))
        start = time.perf_counter()
        try:
            subprocess.run([exe, "-q", "-u", "-w", str(path)], capture_output=True,
                           timeout=timeout, check=True)
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            return None
        return (time.perf_counter() - start) * 1e3


def atoms_sweep(ks: Sequence[int], repeats: int, use_mona: bool) -> list[dict]:
    """DFA build time vs number of atoms for each family and alphabet."""
    from planners.ltl import LTLf

    rows = []
    for name in ("sequence", "mixed", "patrol"):
        for k in ks:
            spec = LTLf(family(name, k))
            one_hot = [set()] + [{f"p{i}"} for i in range(k)]
            for alphabet_name, alphabet in (("all-subsets", None), ("one-hot", one_hot)):
                if alphabet is None and (k > 12 or (name == "patrol" and k > 8)):
                    continue  # 2**k letters x 2**k states: minutes, not a useful row
                first, med, dfa = _timed(lambda a=alphabet, s=spec: s.to_dfa(a), repeats)
                mona = _mona_ms(spec.text) if use_mona and alphabet is None else None
                rows.append({"family": name, "atoms": k, "alphabet": alphabet_name,
                             "letters": len(dfa.letters), "states": dfa.n_states,
                             "columns": dfa.n_columns, "build_ms_first": round(first, 3),
                             "build_ms_median": round(med, 3),
                             "mona_ms": None if mona is None else round(mona, 2)})
    return rows


def size_sweep(depths: Sequence[int], per_depth: int, use_mona: bool, seed: int = 0
               ) -> list[dict]:
    """DFA build time vs formula size on seeded random formulas over 4 atoms (16 letters)."""
    from planners.ltl import LTLf
    from planners.ltl_syntax import Node

    def size(node: Node) -> int:
        return 1 + sum(size(a) for a in node.args)

    rng = random.Random(seed)
    atoms = ("a", "b", "c", "d")
    letters = [frozenset(a for i, a in enumerate(atoms) if m >> i & 1) for m in range(16)]
    rows = []
    for depth in depths:
        sizes, ms, states, mona = [], [], [], []
        for _ in range(per_depth):
            spec = LTLf(random_formula(rng, atoms, depth))
            _, med, dfa = _timed(lambda s=spec: s.to_dfa(letters), 1)
            sizes.append(size(spec.node))
            ms.append(med)
            states.append(dfa.n_states)
            if use_mona:
                mona.append(_mona_ms(spec.text))
        ok = [m for m in mona if m is not None]
        rows.append({"depth": depth, "formulas": per_depth,
                     "size_median": statistics.median(sizes), "size_max": max(sizes),
                     "states_median": statistics.median(states), "states_max": max(states),
                     "build_ms_median": round(statistics.median(ms), 3),
                     "build_ms_max": round(max(ms), 3),
                     "mona_ms_median": round(statistics.median(ok), 2) if ok else None,
                     "mona_failed": len(mona) - len(ok)})
    return rows


def step_times(steps: int, seed: int = 0) -> list[dict]:
    """Per-step costs on a random walk over a one-hot alphabet (6 atoms)."""
    from planners import ltl_progress as lp
    from planners.ltl import LTLf, progress

    rng = random.Random(seed)
    rows = []
    for name in ("design-example", "mixed", "sequence"):
        text = ("G(!p5) & F(p0 & F(p1)) & G(p2 -> F p3)" if name == "design-example"
                else family(name, 6))
        spec = LTLf(text)
        letters = [frozenset()] + [frozenset({f"p{i}"}) for i in range(6)]
        walk = [rng.choice(letters) for _ in range(steps)]
        dfa = spec.to_dfa(letters)
        prog = lp.Progressor(sorted(spec.atoms))
        masks = [prog.letter_mask(x) for x in walk]
        root = lp.initial_state(lp.nnf(spec.node))

        def run_progression(memo: bool, p=prog, m=masks, r=root) -> float:
            state, start = r, time.perf_counter_ns()
            for x in m:
                if not memo:
                    p._memo.clear(), p._term_memo.clear(), p._join_memo.clear()
                state = p.step(state[0], x)
                if state[0] == lp.DNF_FALSE or state[0] == lp.DNF_TRUE:
                    state = r  # restart the walk at a sink so every step does work
            return (time.perf_counter_ns() - start) / 1e3 / len(m)

        cold = run_progression(False)
        warm = run_progression(True)
        start, s = time.perf_counter_ns(), dfa.initial
        for x in walk:
            s = dfa.step(s, x)
        dfa_us = (time.perf_counter_ns() - start) / 1e3 / steps
        as_sets = [set(x) for x in walk]
        start, s = time.perf_counter_ns(), dfa.initial
        for x in as_sets:
            s = dfa.step(s, x)
        dfa_set_us = (time.perf_counter_ns() - start) / 1e3 / steps
        n_api = max(1, steps // 20)
        start = time.perf_counter_ns()
        for x in walk[:n_api]:
            progress(spec, x)
        api_us = (time.perf_counter_ns() - start) / 1e3 / n_api
        start = time.perf_counter_ns()
        spec.accepts(walk)
        eval_us = (time.perf_counter_ns() - start) / 1e3 / steps
        rows.append({"formula": name, "text": text, "steps": steps, "states": dfa.n_states,
                     "progress_no_memo_us": round(cold, 2), "progress_memo_us": round(warm, 2),
                     "dfa_step_frozenset_us": round(dfa_us, 3),
                     "dfa_step_set_us": round(dfa_set_us, 3),
                     "progress_api_us": round(api_us, 1),
                     "accepts_us_per_state": round(eval_us, 3)})
    return rows


def _print_table(title: str, rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, overflow="fold")
    for row in rows:
        table.add_row(*("–" if v is None else str(v) for v in row.values()))
    Console(width=200).print(table)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench ltl``."""

    @bench.command("ltl")
    def bench_ltl(
        out: Annotated[Path | None, typer.Option(
            help="JSON output (default: scratch/bench/ltl.json).")] = None,
        quick: Annotated[bool, typer.Option(help="Smaller sweeps (seconds, for smoke tests).")
                         ] = False,
        mona: Annotated[bool, typer.Option(help="Time MONA on the same formulas as a baseline.")
                        ] = True,
        repeats: Annotated[int, typer.Option(help="Builds per row (median reported).")] = 3,
        steps: Annotated[int, typer.Option(help="Random-walk length for per-step timings.")
                         ] = 5000,
        max_atoms: Annotated[int, typer.Option(help="Largest atom count in the atoms sweep.")
                             ] = 12,
    ) -> None:
        """Time the LTLf engine: DFA build vs atoms and formula size, per-step progression."""
        from experiments.provenance import provenance, write_json_atomic
        from planners.ltl_mona import mona_path

        if repeats < 1 or steps < 1:
            raise typer.BadParameter("--repeats and --steps must be positive")
        use_mona = mona and mona_path() is not None
        if mona and not use_mona:
            typer.echo("mona not installed: MONA baseline columns left empty")
        ks = [k for k in ((2, 4, 6, 8) if quick else (2, 4, 6, 8, 10, 12)) if k <= max_atoms]
        if not ks:
            raise typer.BadParameter("--max-atoms must be at least 2")
        depths = (2, 3, 4) if quick else (2, 3, 4, 5, 6)
        result = {
            "provenance": provenance(benchmark="ltl", quick=quick, repeats=repeats),
            "atoms_sweep": atoms_sweep(ks, repeats, use_mona),
            "size_sweep": size_sweep(depths, 5 if quick else 30, use_mona),
            "step_times": step_times(min(steps, 500) if quick else steps),
            "notes": ("build_ms_first is the first build of the formula; later builds reuse "
                      "negation-normal-form/DNF caches on interned nodes. mona_ms is one "
                      "`mona -q -u -w` process (start-up included) over all 2**k valuations. "
                      "Reported elsewhere, not measured here: pure-Python LTLf progression "
                      "~1-2.5 us/step (reference/anchors.md)."),
        }
        _print_table("DFA build vs atoms", result["atoms_sweep"])
        _print_table("DFA build vs formula size (random formulas, 4 atoms)", result["size_sweep"])
        _print_table("Per-step cost (us)", [{k: v for k, v in r.items() if k != "text"}
                                            for r in result["step_times"]])
        path = write_json_atomic(out or Path("scratch") / "bench" / "ltl.json", result)
        typer.echo(f"wrote {path}")
