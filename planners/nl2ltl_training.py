r"""Train the small NL -> LTL translator LM on generated, lifted instruction/formula pairs.

Usage: ``python -m planners.nl2ltl_training --out planners/default_lm/nl2ltl``

Pairs come from :func:`envs.symbolic.instructions.generate_pairs` for both domains (train
layouts, many paraphrases per pattern), lifted by :func:`planners.nl2ltl.lift`; a GPT-2 with
its own BPE learns ``task: <lifted text>\nltl: <lifted formula><eos>`` (loss on the formula).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def corpus(pairs_per_domain: int, seed: int) -> list[tuple[str, str]]:
    """Lifted ``(prompt, " formula")`` pairs of both domains."""
    from envs.symbolic import BlocksWorld, DroneNav
    from envs.symbolic.instructions import generate_pairs
    from planners.nl2ltl import PROMPT, lift, lift_formula

    out = []
    for name in ("drone_nav", "blocks_world"):
        for text, ltl, tag in generate_pairs(name, pairs_per_domain, seed=seed):
            domain = DroneNav(tag) if name == "drone_nav" else BlocksWorld()
            lifted, mapping = lift(text, domain)
            out.append((PROMPT.format(lifted), " " + lift_formula(ltl, mapping)))
    random.Random(seed).shuffle(out)
    return out


def train(out: Path, pairs_per_domain: int = 6000, steps: int = 1500, batch_size: int = 48,
          n_layer: int = 3, n_embd: int = 96, vocab_size: int = 400, lr: float = 3e-3,
          seed: int = 0, log=print) -> dict:
    """Train and save the translator at ``out`` (safetensors); returns a summary."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from planners.lm_training import fit_prompted_lm
    from planners.tokenizer_training import hf_tokenizer, train_bpe

    t0 = time.perf_counter()
    data = corpus(pairs_per_domain, seed)
    tok = hf_tokenizer(train_bpe([p + f for p, f in data], vocab_size), "bpe")
    eos = tok.eos_token_id
    seqs, starts = [], []
    for prompt, formula in data:
        p = tok.encode(prompt, add_special_tokens=False)
        seqs.append(p + tok.encode(prompt + formula, add_special_tokens=False)[len(p):] + [eos])
        starts.append(len(p))
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=n_embd,
                                       n_layer=n_layer, n_head=4, bos_token_id=eos,
                                       eos_token_id=eos, pad_token_id=eos))
    losses = fit_prompted_lm(model, seqs, starts, eos, steps=steps, batch_size=batch_size,
                             lr=lr, seed=seed, log=log, t0=t0)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    summary = {"pairs_per_domain": pairs_per_domain, "steps": steps, "batch_size": batch_size,
               "n_layer": n_layer, "n_embd": n_embd, "vocab": len(tok), "lr": lr, "seed": seed,
               "final_loss": sum(losses[-50:]) / len(losses[-50:]),
               "parameters": sum(p.numel() for p in model.parameters()),
               "seconds": time.perf_counter() - t0}
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("scratch/nl2ltl"))
    ap.add_argument("--pairs", type=int, default=6000, help="pairs per domain")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(train(args.out, args.pairs, args.steps))


if __name__ == "__main__":
    main()
