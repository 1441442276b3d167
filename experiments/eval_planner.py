"""Evaluate plan decoding: LM only, soft grounding, LTL mask, both, SELP and the full pipeline.

Usage: ``robodecode eval-planner --domain drone_nav --tasks 50 --seed 0 --split heldout``

For each generated task every method plans from the same prompt with the same LM and
:func:`planners.check.check_plan` judges the plan: safety rate (valid and the spec holds on the
trace), success (valid and the goals hold), validity, efficiency (shortest satisfying plan
length / plan length, mean over safe plans), tokens/s and mask overhead in µs per token.
Methods (``--methods``): ``lm`` (free greedy decoding), ``soft`` (grounded beam search with
affordance, soft safety, cost and preference functions), ``ltl`` (the LTL mask, greedy),
``soft+ltl`` (grounded beam search with hard safety), ``soft+ltl:cost0`` (the same, cost weight
0), ``selp`` (SELP's ban-and-retry) and ``full`` (NL -> LTL by equivalence voting with the
translator LM, then ``soft+ltl`` with the voted spec; the ground-truth spec is not given). A
mask micro-benchmark at a 50k vocabulary replays reference plans through
:class:`LTLLogitsProcessor` (cached masks) and through SELP's per-token trie mask.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from decoding.threads import DEFAULT_CPU_THREADS
from envs.symbolic import generate_tasks, make_domain
from experiments.provenance import provenance, write_json_atomic
from experiments.stats import mcnemar_counts, wilson_interval
from planners.check import check_plan, shortest_plan
from planners.plan_text import encode, format_plan, format_prompt
from planners.planner import Plan, Planner


def paired(rows: list[dict[str, Any]], a: str, b: str, key: str) -> dict[str, Any]:
    """Discordant counts and exact McNemar p of ``key`` between methods ``a`` and ``b``."""
    va = {r["task"]: bool(r[key]) for r in rows if r["method"] == a}
    vb = {r["task"]: bool(r[key]) for r in rows if r["method"] == b}
    only_a = sum(va[t] and not vb[t] for t in va if t in vb)
    only_b = sum(vb[t] and not va[t] for t in va if t in vb)
    p = mcnemar_counts(only_a, only_b, method="exact")
    return {"only_" + a: only_a, "only_" + b: only_b, "p": p}


def _selp_plan(planner: Planner, task) -> Plan:
    """Plan one task with the SELP-style baseline."""
    from planners.selp import selp_decode

    graph = planner.graph(task.ltl, task.initial_state)
    prompt = format_prompt(task.domain.describe(task.initial_state), task.instruction)
    steps, st = selp_decode(planner.model, encode(planner.tokenizer, prompt), planner.trie,
                            graph, planner.tokenizer.eos_token_id, planner.max_steps,
                            max_length=planner.context_limit())
    stats = {"new_tokens": st["tokens"], "seconds": st["seconds"], "stop": st["stop"],
             "tokens_per_s": st["tokens"] / max(st["seconds"], 1e-9), "retries": st["retries"],
             "mask_us_per_token": 1e6 * st["mask_seconds"] / max(st["tokens"], 1)}
    return Plan(steps, format_plan(steps), False, True, [], stats)


def mask_benchmark(planner: Planner, tasks, vocab: int = 50257, repeats: int = 3
                   ) -> dict[str, float]:
    """µs per token of the cached LTL mask vs SELP's per-token trie mask at ``vocab`` entries.

    Reference (shortest) plans are replayed token by token; each processor call gets a
    ``[1, vocab]`` score row. ``ltl_cold`` includes building masks on first sight, ``ltl_warm``
    is the steady state (a new plan over known states), ``selp`` rebuilds the mask per token.
    """
    import torch

    from planners.constrained import LTLLogitsProcessor
    from planners.selp import trie_mask

    cold, warm, selp = [], [], []
    cpu_warm, cpu_selp = [], []
    scores = torch.zeros(1, vocab)
    for task in tasks:
        p = planner.with_domain(task.domain) if task.domain is not planner.domain else planner
        plan = shortest_plan(task.domain, task.ltl, task.initial_state) or []
        ids = [t for s in plan for t in p.trie.unit_tokens[s]] + [p.tokenizer.eos_token_id]
        graph = p.graph(task.ltl, task.initial_state)
        proc = LTLLogitsProcessor(graph, p.trie, 0, p.tokenizer.eos_token_id, p.max_steps)
        prefixes = [torch.tensor([ids[:k]], dtype=torch.long) for k in range(len(ids))]
        for r in range(repeats + 1):
            t0, c0 = time.perf_counter(), time.thread_time()
            for x in prefixes:
                proc(x, scores)
            if r == 0:
                cold.append((time.perf_counter() - t0) / len(ids))
                proc._walks = {(): proc._walks[()]}  # masks kept, prefixes forgotten
            else:
                warm.append((time.perf_counter() - t0) / len(ids))
                cpu_warm.append((time.thread_time() - c0) / len(ids))
        for _ in range(repeats):
            node = 0
            t0, c0 = time.perf_counter(), time.thread_time()
            for tok in ids:
                mask = trie_mask(p.trie, node, set(), vocab, p.tokenizer.eos_token_id)
                scores + mask
                node = p.trie.children[node].get(tok, 0)
                node = 0 if p.trie.step_at[node] is not None else node
            selp.append((time.perf_counter() - t0) / len(ids))
            cpu_selp.append((time.thread_time() - c0) / len(ids))
    return {"vocab": vocab, "ltl_cold_us": 1e6 * statistics.mean(cold),
            "ltl_warm_us": 1e6 * statistics.median(warm),
            "ltl_warm_cpu_us": 1e6 * statistics.median(cpu_warm),
            "selp_us": 1e6 * statistics.median(selp),
            "selp_cpu_us": 1e6 * statistics.median(cpu_selp)}


METHODS = ("lm", "soft", "ltl", "soft+ltl", "soft+ltl:cost0", "selp", "full")


def groundings(method: str, cost: float = 0.5) -> list:
    """The weighted grounding functions of a grounded method (``soft``, ``soft+ltl...``)."""
    from planners.grounding import Affordance, Cost, GoalProgress, NoRevisit, Safety

    hard = "ltl" in method or method == "full"
    cost = 0.0 if method.endswith(":cost0") else cost
    return [(1.0, Affordance()), (1.0, Safety(hard=hard)), (cost, Cost()),
            (1.0, GoalProgress()), (1.0, NoRevisit())]


def _plan(p: Planner, task, method: str, beam: int, decode: dict, translator) -> tuple:
    """One method's plan for ``task`` and the spec it planned with."""
    from planners.grounded import grounded_plan

    ltl = task.ltl
    if method == "full":
        vote = translator.translate(task.instruction, task.domain)
        ltl = vote.formula
        if ltl is None:  # nothing parsable: plan with the LM alone
            return p.plan(task.instruction, None, task.initial_state, constrained=False), vote
        try:
            return grounded_plan(p, task.instruction, ltl, task.initial_state,
                                 groundings=groundings(method), beam_width=beam), vote
        except ValueError:  # an unsatisfiable voted spec: no plan
            return Plan([], "", False, True, [task.initial_state], {"stop": "unsat"}), vote
    if method == "selp":
        return _selp_plan(p, task), None
    if method in ("lm", "ltl"):
        return p.plan(task.instruction, ltl, task.initial_state, constrained=method == "ltl",
                      **decode), None
    return grounded_plan(p, task.instruction, ltl, task.initial_state,
                         groundings=groundings(method), beam_width=beam), None


def evaluate(domain: str, n_tasks: int, seed: int, split: str, model_dir: Path | None = None,
             sample: bool = False, methods=("lm", "soft", "ltl", "soft+ltl", "soft+ltl:cost0",
                                            "selp"),
             beam: int = 4, translator=None, progress: bool = True) -> dict[str, Any]:
    """Run every method on the same tasks; return per-method metrics, rows and markdown."""
    import torch
    from tqdm import tqdm
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    if "full" in methods and translator is None:
        raise ValueError("method 'full' needs a translator (--translator DIR)")
    if model_dir is None:
        base = Planner.from_default(domain)
    else:
        base = Planner(GPT2LMHeadModel.from_pretrained(model_dir).eval(),
                       PreTrainedTokenizerFast.from_pretrained(model_dir), make_domain(domain))
    tasks = generate_tasks(domain, n_tasks, seed=seed, split=split)
    planners: dict[str, Planner] = {}
    rows: list[dict[str, Any]] = []
    decode = {"do_sample": True, "top_k": 0, "temperature": 1.0} if sample else {}
    bar = tqdm(total=len(tasks) * len(methods), desc=f"{domain}/{split}", disable=not progress)
    for i, task in enumerate(tasks):
        key = repr(task.domain)
        if key not in planners:
            planners[key] = base.with_domain(task.domain)
        p = planners[key]
        for method in methods:
            torch.manual_seed(seed * 100003 + i)
            plan, vote = _plan(p, task, method, beam, decode, translator)
            c = check_plan(task.domain, plan.steps, task.ltl, task.initial_state, task.goal_ltl)
            row = {"task": i, "method": method, "template": task.template,
                   "ltl": task.ltl, "plan": plan.steps, "valid": c.valid, "safe": c.safe,
                   "success": c.success, "efficiency": c.efficiency,
                   "optimal_length": c.optimal_length, **{
                       k: plan.stats.get(k) for k in ("new_tokens", "seconds", "stop",
                                                      "mask_us_per_token", "retries")}}
            if vote is not None:
                row.update(translation=vote.formula, votes=vote.votes,
                           translation_correct=vote.matches(task.ltl, task.domain),
                           translate_seconds=vote.seconds)
                row["seconds"] = (row["seconds"] or 0.0) + vote.seconds
            rows.append(row)
            bar.update()
    bar.close()
    metrics = {m: summarize([r for r in rows if r["method"] == m]) for m in methods}
    if "full" in methods:
        full = [r for r in rows if r["method"] == "full"]
        right = [r for r in full if r["translation_correct"]]
        metrics["full"]["translation_accuracy"] = len(right) / max(len(full), 1)
        metrics["full | translation right"] = summarize(right) if right else {"n": 0}
    tests = {f"{key}: {a} vs {b}": paired(rows, a, b, key)
             for a, b in (("ltl", "lm"), ("ltl", "selp"), ("soft+ltl", "ltl"),
                          ("soft", "lm")) if a in methods and b in methods
             for key in ("safe", "success")}
    bench = mask_benchmark(base, tasks[: min(10, len(tasks))])
    result = {"domain": domain, "tasks": n_tasks, "seed": seed, "split": split,
              "decoding": ("sampling (T=1)" if sample else "greedy") +
              f"; grounded methods: beam search over steps, width {beam}",
              "model": str(model_dir or f"planners/default_lm/{domain}"),
              "translator": None if translator is None else {
                  "k": translator.k, "temperature": translator.temperature,
                  "constrained": translator.constrained},
              "metrics": metrics, "paired_tests": tests, "mask_benchmark": bench, "rows": rows}
    result["markdown"] = markdown(result)
    return result


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates with Wilson intervals, efficiency, speed for one method's rows."""
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    for key in ("safe", "success", "valid"):
        k = sum(bool(r[key]) for r in rows)
        ci = wilson_interval(k, n) if n else (0.0, 1.0)
        out[key] = {"rate": k / max(n, 1), "k": k, "ci95": ci}
    effs = [r["efficiency"] for r in rows if r["efficiency"] is not None]
    out["efficiency"] = statistics.mean(effs) if effs else None
    tokens = sum(r["new_tokens"] or 0 for r in rows)
    seconds = sum(r["seconds"] or 0.0 for r in rows)
    out["tokens_per_s"] = tokens / max(seconds, 1e-9)
    masks = [r["mask_us_per_token"] for r in rows if r["mask_us_per_token"] is not None]
    out["mask_us_per_token"] = statistics.mean(masks) if masks else None
    retries = [r["retries"] for r in rows if r["retries"] is not None]
    out["retries_per_plan"] = statistics.mean(retries) if retries else None
    secs = [r["seconds"] or 0.0 for r in rows]
    out["seconds_per_plan"] = statistics.mean(secs) if secs else None
    return out


def markdown(result: dict[str, Any]) -> str:
    """A markdown table of the metrics."""
    lines = [f"### {result['domain']}: {result['tasks']} tasks, split {result['split']}, seed "
             f"{result['seed']}, {result['decoding']}",
             "", "| method | safe % (95% CI) | success % (95% CI) | valid % | efficiency | "
             "s/plan | tokens/s | mask µs/token | retries/plan |",
             "|---|---|---|---|---|---|---|---|---|"]

    def pct(d):
        lo, hi = d["ci95"]
        return f"{100 * d['rate']:.1f} ({100 * lo:.0f}-{100 * hi:.0f})"

    for m, s in result["metrics"].items():
        if not s["n"]:
            continue
        eff = "-" if s["efficiency"] is None else f"{s['efficiency']:.3f}"
        mask = "-" if s["mask_us_per_token"] is None else f"{s['mask_us_per_token']:.1f}"
        ret = "-" if s["retries_per_plan"] is None else f"{s['retries_per_plan']:.2f}"
        lines.append(f"| {m} | {pct(s['safe'])} | {pct(s['success'])} | "
                     f"{100 * s['valid']['rate']:.1f} | {eff} | {s['seconds_per_plan']:.2f} | "
                     f"{s['tokens_per_s']:.0f} | "
                     f"{mask} | {ret} |")
    full = result["metrics"].get("full")
    if full:
        right = result["metrics"]["full | translation right"]
        how = result.get("translator") or {}
        lines += ["", f"Full pipeline: the vote's spec was equivalent to the ground truth on "
                  f"{100 * full['translation_accuracy']:.0f}% of tasks ({right['n']}); "
                  f"translator k={how.get('k')}, "
                  f"{'grammar-constrained' if how.get('constrained') else 'free'} samples."]
    tests = result.get("paired_tests", {})
    if tests:
        lines += ["", "Paired exact McNemar tests (same tasks): " + "; ".join(
            f"{name} p={t['p']:.2g}" for name, t in tests.items()) + "."]
    b = result["mask_benchmark"]
    lines += ["", f"Mask overhead at a {b['vocab']}-token vocabulary, µs/token wall (thread CPU), "
              f"replayed reference plans: LTL cached masks {b['ltl_warm_us']:.1f} "
              f"({b['ltl_warm_cpu_us']:.1f}), first sight incl. building masks "
              f"{b['ltl_cold_us']:.1f}; SELP per-token trie mask {b['selp_us']:.1f} "
              f"({b['selp_cpu_us']:.1f}). The selp row's mask column also counts its automaton "
              "checks; its tokens/s pays for re-encoding the prompt at every token."]
    return "\n".join(lines)


def write_results(result: dict[str, Any], out: Path, threads: int) -> list[Path]:
    """Write ``<domain>_<split>_seed<seed>[_sampled].json`` (with provenance) and ``.md``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['domain']}_{result['split']}_seed{result['seed']}"
    if result["decoding"].startswith("sampling"):
        stem += "_sampled"
    js, md = out / f"{stem}.json", out / f"{stem}.md"
    write_json_atomic(js, {**result, "provenance": provenance(threads=threads)})
    md.write_text(result["markdown"] + "\n\nCPU timings are noisy (shared 2-core machine, "
                  f"{threads} torch thread(s)).\n")
    return [js, md]


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode eval-planner`` and ``robodecode eval-nl2ltl``."""

    @app.command("eval-planner")
    def eval_planner(
        domain: Annotated[str, typer.Option(help="drone_nav or blocks_world")] = "drone_nav",
        tasks: Annotated[int, typer.Option(help="Number of generated tasks N")] = 50,
        seed: Annotated[int, typer.Option(help="Task seed S")] = 0,
        split: Annotated[str, typer.Option(help="train or heldout")] = "train",
        model: Annotated[Path | None, typer.Option(
            help="LM folder (default: the shipped planners/default_lm/<domain>)")] = None,
        sample: Annotated[bool, typer.Option(help="Sample (T=1) instead of greedy")] = False,
        out: Annotated[Path | None, typer.Option(
            help="Output folder (default scratch/planner_eval; committed results: "
                 "experiments/results/planner-ltl)")] = None,
        threads: Annotated[int, typer.Option(help="torch CPU threads")] = DEFAULT_CPU_THREADS,
        methods: Annotated[str, typer.Option(
            help=f"Comma-separated methods of {', '.join(METHODS)}")] =
            "lm,soft,ltl,soft+ltl,soft+ltl:cost0,selp",
        beam: Annotated[int, typer.Option(help="Beam width of the grounded methods")] = 4,
        translator: Annotated[Path | None, typer.Option(
            help="NL -> LTL LM folder for method 'full' (e.g. planners/default_lm/nl2ltl)")
        ] = None,
        constrained_translation: Annotated[bool, typer.Option(
            help="Decode the translator's samples under the formula grammar")] = True,
    ) -> None:
        """Compare LM-only, grounded, LTL-constrained, SELP and full-pipeline plan decoding."""
        import torch

        torch.set_num_threads(threads)
        names = tuple(m.strip() for m in methods.split(",") if m.strip())
        tr = None
        if translator is not None:
            from planners.nl2ltl import Translator

            tr = Translator.load(translator, constrained=constrained_translation)
        result = evaluate(domain, tasks, seed, split, model_dir=model, sample=sample,
                          methods=names, beam=beam, translator=tr)
        paths = write_results(result, out or Path("scratch") / "planner_eval", threads=threads)
        typer.echo(result["markdown"])
        typer.echo(f"wrote {', '.join(str(p) for p in paths)}")

    from experiments.eval_nl2ltl import register as register_nl2ltl

    register_nl2ltl(app)
