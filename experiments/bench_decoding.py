"""Decoding benchmark: passes and ms per token of each decoder on a tiny GPT-2 on this CPU.

Usage: robodecode bench decoding [--out scratch/bench/decoding.json] [--threads 1] [--reps 10]

Every decoder generates one chunk of ``--chunk`` tokens after a cached prefix of ``--prefix``
tokens (encoded once, outside the timing, as a VLA encodes its observation), batch 1, the AR
baseline measured in the same run. Weights are random: the numbers measure the cost of each
decoding algorithm, not its quality.

``robodecode bench generate [--models gpt2-small,tiny] [--threads 1] [--reps 5]`` times our
greedy :func:`decoding.autoregressive` against transformers' ``generate(do_sample=False)`` on
random GPT-2s (prompt prefill included, asserting the same tokens), and ours with every prompt
position's logits computed (no ``logits_to_keep``) to show what that argument saves.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_OUT = Path("scratch/bench/decoding.json")
NOTE = ("Weights are random (GPT-2 init widened to std 0.5 so the model does not just repeat "
        "its last token): Jacobi is expected to gain nothing here (about one accepted token "
        "per pass, each pass wider than an AR pass). Real speedups need trained and "
        "consistency-distilled models (later issues reuse this benchmark). jacobi+ee = "
        "EarlyExit(max_iters=4): approximate tokens ('= AR' says whether they matched). "
        "Diffusion uses the same GPT-2 as its denoiser (cost only); * flow integrates a small "
        "MLP velocity field, so its ms are not comparable with the GPT-2 rows. CPU timings "
        "on a shared machine are noisy.")


def _build_model(layers: int, width: int, vocab: int, seed: int, heads: int = 4,
                 init_range: float = 0.5) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=layers, n_embd=width, n_head=heads, vocab_size=vocab,
                        n_positions=1024, bos_token_id=0, eos_token_id=vocab - 1,
                        initializer_range=init_range)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config).eval()


def _time(fn: Any, reps: int, warmup: int = 2) -> tuple[float, Any]:
    """Median wall ms of ``fn()`` over ``reps`` calls after ``warmup``; also the last result."""
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def _time_interleaved(fns: dict[str, Any], reps: int, warmup: int = 1) -> dict[str, list]:
    """Wall ms of each ``fn()`` over ``reps`` rounds of one call each.

    Interleaving makes drift and other load on a shared CPU hit every variant alike.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - start) * 1000)
    return times


def _decoders(model: Any, prefix: Any, first: Any, chunk: int, vocab: int) -> dict[str, Any]:
    """Name -> zero-argument callable returning a DecodeResult."""
    import torch

    from decoding import EarlyExit, adapter, autoregressive, flow_sample, jacobi, masked_diffusion

    def denoiser(tokens: torch.Tensor) -> torch.Tensor:
        with adapter.restored(prefix) as kv:
            logits, _ = adapter.forward(model, tokens, kv)
        return logits

    gen = torch.Generator().manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(chunk + 1, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, chunk)).eval()

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return mlp(torch.cat([x, t[:, None]], dim=1))

    table = {
        "ar": lambda: autoregressive(model, first, chunk, cache=prefix),
        "jacobi block 8": lambda: jacobi(model, first, chunk, block_size=8, cache=prefix),
        f"jacobi block {chunk}": lambda: jacobi(model, first, chunk, cache=prefix),
        f"jacobi block {chunk} early-exit": lambda: jacobi(
            model, first, chunk, cache=prefix, early_exit=EarlyExit(max_iters=4)),
    }
    for steps in (4, 8, 12):
        table[f"diffusion {steps} steps"] = (lambda s=steps: masked_diffusion(
            denoiser, chunk, steps=s, mask_id=vocab - 1, generator=gen))
    for solver, steps in (("euler", 5), ("euler", 10), ("heun", 5)):
        table[f"flow {solver} {steps} steps*"] = (lambda s=steps, v=solver: flow_sample(
            velocity, (1, chunk), steps=s, solver=v, generator=gen))
    return table


def run_benchmark(*, threads: int, reps: int, chunk: int, prefix_len: int, layers: int,
                  width: int, vocab: int, seed: int) -> dict[str, Any]:
    """Time every decoder; returns the JSON-ready record (rows + settings)."""
    import torch

    from decoding import adapter

    torch.set_num_threads(threads)
    model = _build_model(layers, width, vocab, seed)
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab - 1, (1, prefix_len + 1), generator=gen)
    with torch.no_grad():
        _, prefix = adapter.forward(model, prompt[:, :-1], None)
    first = prompt[:, -1:]
    rows, ar_tokens, ar_ms = [], None, None
    for name, fn in _decoders(model, prefix, first, chunk, vocab).items():
        ms, result = _time(fn, reps)
        if name == "ar":
            ar_tokens, ar_ms = result.tokens, ms
        same = bool(torch.equal(result.tokens, ar_tokens)) if name.startswith("jacobi") else None
        rows.append({"decoder": name, "nfe": result.nfe, "passes_per_token": result.nfe / chunk,
                     "ms_per_chunk": ms, "ms_per_token": ms / chunk,
                     "tokens_per_s": chunk * 1000 / ms, "speedup_vs_ar": ar_ms / ms,
                     "equals_ar_tokens": same, "stats": _small_stats(result.stats)})
    assert adapter.cache_length(prefix) == prefix_len, "a decoder changed the prefix cache"
    settings = {"threads": threads, "reps": reps, "chunk": chunk, "prefix": prefix_len,
                "layers": layers, "width": width, "vocab": vocab, "seed": seed, "batch": 1,
                "dtype": "float32", "timing": "decoder call only, median after 2 warm-ups"}
    return {"settings": settings, "rows": rows, "note": NOTE}


def _small_stats(stats: dict[str, Any]) -> dict[str, Any]:
    keep = ("iters_per_block", "exit_rule_counts", "committed_per_step", "early_commit_step")
    return {k: stats[k] for k in keep if k in stats}


def _print_table(record: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = record["settings"]
    table = Table(title=f"Decoding on a tiny GPT-2 ({s['layers']} layers, d{s['width']}, "
                        f"vocab {s['vocab']}), {s['chunk']}-token chunk after a "
                        f"{s['prefix']}-token cached prefix, CPU, {s['threads']} thread(s)")
    for col in ("decoder", "passes/token", "ms/token", "tokens/s", "speedup vs AR", "= AR"):
        table.add_column(col, justify="left" if col == "decoder" else "right")
    for r in record["rows"]:
        same = {None: "-", True: "yes", False: "NO"}[r["equals_ar_tokens"]]
        table.add_row(r["decoder"], f"{r['passes_per_token']:.3f}", f"{r['ms_per_token']:.3f}",
                      f"{r['tokens_per_s']:.0f}", f"{r['speedup_vs_ar']:.2f}x", same)
    console = Console()
    console.print(table)
    console.print(record["note"])


#: Shapes of ``bench generate``: (layers, width, heads, vocab, init std). GPT-2 small's init
#: std 0.02 makes a random model repeat one token; 0.1 (small) and 0.5 (tiny) vary the tokens.
GENERATE_SHAPES = {"gpt2-small": (12, 768, 12, 50257, 0.1), "tiny": (2, 64, 4, 256, 0.5)}


class _AllLogits:
    """A causal LM that hides its ``logits_to_keep`` support: every position is projected."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, **kwargs: Any) -> Any:
        return self.model(**kwargs)


def _ar_runs(model: Any, prompt: Any, new_tokens: int) -> dict[str, Any]:
    """Variant name -> zero-argument callable returning the new tokens ``[1, new_tokens]``."""
    import torch

    from decoding import autoregressive

    mask = torch.ones_like(prompt)
    return {"ours": lambda: autoregressive(model, prompt, new_tokens).tokens,
            "ours_all_logits": lambda: autoregressive(_AllLogits(model), prompt,
                                                      new_tokens).tokens,
            "generate": lambda: model.generate(prompt, attention_mask=mask, do_sample=False,
                                               max_new_tokens=new_tokens)[:, prompt.shape[1]:]}


def run_vs_generate(*, models: list[str], threads: int, reps: int, prompt_len: int,
                    new_tokens: int, seed: int) -> dict[str, Any]:
    """Time our greedy AR against ``generate``; returns the JSON-ready record."""
    import torch

    torch.set_num_threads(threads)
    rows = []
    for name in models:
        layers, width, heads, vocab, init = GENERATE_SHAPES[name]
        model = _build_model(layers, width, vocab, seed, heads=heads, init_range=init)
        model.generation_config.eos_token_id = None  # never stop early, as ours (eos None)
        model.generation_config.pad_token_id = 0
        prompt = torch.randint(0, vocab, (1, prompt_len),
                               generator=torch.Generator().manual_seed(seed))
        runs = _ar_runs(model, prompt, new_tokens)
        tokens = {k: fn() for k, fn in runs.items()}  # also the first warm-up
        assert torch.equal(tokens["ours"], tokens["generate"]), f"{name}: tokens differ"
        assert torch.equal(tokens["ours"], tokens["ours_all_logits"]), f"{name}: tokens differ"
        times = _time_interleaved(runs, reps)
        ms = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"model": name, "layers": layers, "width": width, "vocab": vocab,
                     "distinct_tokens": len(set(tokens["ours"][0].tolist())),
                     **{f"{k}_ms": v for k, v in ms.items()},
                     **{f"{k}_min_ms": min(v) for k, v in times.items()},
                     "generate_over_ours": ms["generate"] / ms["ours"],
                     "all_logits_over_ours": ms["ours_all_logits"] / ms["ours"]})
    settings = {"threads": threads, "reps": reps, "prompt": prompt_len, "new_tokens": new_tokens,
                "seed": seed, "batch": 1, "dtype": "float32",
                "timing": "whole call incl. prompt prefill; variants interleaved, median (and "
                          "min) of reps after 2 warm-ups"}
    return {"settings": settings, "rows": rows}


def _print_vs_generate(record: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = record["settings"]
    table = Table(title=f"Greedy AR vs transformers generate: {s['prompt']}-token prompt, "
                        f"{s['new_tokens']} new tokens, batch 1, CPU, {s['threads']} thread(s)")
    for col in ("model", "ours ms", "generate ms", "gen/ours", "all-logits ms", "all/ours"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in record["rows"]:
        table.add_row(f"{r['model']} {r['layers']}x{r['width']} V{r['vocab']}",
                      f"{r['ours_ms']:.1f}", f"{r['generate_ms']:.1f}",
                      f"{r['generate_over_ours']:.2f}x", f"{r['ours_all_logits_ms']:.1f}",
                      f"{r['all_logits_over_ours']:.2f}x")
    console = Console()
    console.print(table)
    console.print("Same tokens asserted for all three. gen/ours > 1: ours is faster. all-logits "
                  "= ours without logits_to_keep (every prompt position projected). Median "
                  "ms per call; on a shared CPU compare the *_min_ms fields of the JSON too.")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench decoding``."""

    @bench.command("decoding")
    def bench_decoding(
        out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = DEFAULT_OUT,
        threads: Annotated[int, typer.Option(help="torch threads (fixed, recorded).")] = 1,
        reps: Annotated[int, typer.Option(help="Timed calls per decoder (median).")] = 10,
        chunk: Annotated[int, typer.Option(help="Tokens per chunk.")] = 32,
        prefix: Annotated[int, typer.Option(help="Cached prefix length (observation).")] = 80,
        layers: Annotated[int, typer.Option(help="GPT-2 layers.")] = 4,
        width: Annotated[int, typer.Option(help="GPT-2 width (n_embd).")] = 128,
        vocab: Annotated[int, typer.Option(help="Vocabulary (last id = diffusion mask).")] = 256,
        seed: Annotated[int, typer.Option(help="Seed of the random weights and prompt.")] = 0,
    ) -> None:
        """Passes and ms per token of every decoder on a tiny random GPT-2 on this CPU.

        The AR baseline is measured in the same run; prints a table and writes JSON with
        provenance (default scratch/bench/decoding.json).
        """
        from experiments.provenance import provenance, write_json_atomic

        record = run_benchmark(threads=threads, reps=reps, chunk=chunk, prefix_len=prefix,
                               layers=layers, width=width, vocab=vocab, seed=seed)
        _print_table(record)
        path = write_json_atomic(out, {"provenance": provenance(device="cpu"), **record})
        typer.echo(f"wrote {path}")

    @bench.command("generate")
    def bench_generate(
        out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = Path(
            "scratch/bench/ar_vs_generate.json"),
        models: Annotated[str, typer.Option(help="Comma-separated: gpt2-small, tiny.")] = (
            "gpt2-small,tiny"),
        threads: Annotated[int, typer.Option(help="torch threads (fixed, recorded).")] = 1,
        reps: Annotated[int, typer.Option(help="Timed calls per variant (median).")] = 5,
        prompt: Annotated[int, typer.Option(help="Prompt tokens (prefilled in the call).")] = 80,
        new: Annotated[int, typer.Option(help="Tokens to generate.")] = 32,
        seed: Annotated[int, typer.Option(help="Seed of the random weights and prompt.")] = 0,
    ) -> None:
        """Our greedy autoregressive vs transformers generate on random GPT-2s on this CPU.

        Asserts both produce the same tokens; prints a table and writes JSON with provenance.
        """
        from experiments.provenance import provenance, write_json_atomic

        names = [m.strip() for m in models.split(",") if m.strip()]
        unknown = [m for m in names if m not in GENERATE_SHAPES]
        if unknown or not names:
            raise typer.BadParameter(f"unknown model(s) {unknown}; known: "
                                     f"{', '.join(GENERATE_SHAPES)}", param_hint="--models")
        record = run_vs_generate(models=names, threads=threads, reps=reps, prompt_len=prompt,
                                 new_tokens=new, seed=seed)
        _print_vs_generate(record)
        path = write_json_atomic(out, {"provenance": provenance(device="cpu"), **record})
        typer.echo(f"wrote {path}")
