r"""Train the small NL -> LTL translator LM on generated, lifted instruction/formula pairs.

Usage: ``python -m planners.nl2ltl_training --out scratch/nl2ltl --paraphrases 10000``
(or ``robodecode train-nl2ltl``; the shipped translator's command is in its ``training.json``)

Pairs come from :func:`envs.symbolic.instructions.generate_pairs` (template lists) and
:func:`planners.nl2ltl_paraphrase.paraphrase_pairs` (composed from phrase tables) for both
domains over train layouts, lifted by :func:`planners.nl2ltl.lift`; a GPT-2 with its own BPE
learns ``task: <lifted text>\nltl: <lifted formula><eos>`` (loss on the formula).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path


def corpus(pairs_per_domain: int, seed: int, paraphrases_per_domain: int = 0,
           split: str = "all") -> list[tuple[str, str]]:
    """Lifted ``(prompt, " formula")`` pairs of both domains.

    ``pairs_per_domain`` come from the template generator, ``paraphrases_per_domain`` from
    :func:`planners.nl2ltl_paraphrase.paraphrase_pairs` (its ``split``).
    """
    from envs.symbolic import BlocksWorld, DroneNav
    from envs.symbolic.instructions import generate_pairs
    from planners.nl2ltl import PROMPT, lift, lift_formula
    from planners.nl2ltl_paraphrase import paraphrase_pairs

    out = []
    for name in ("drone_nav", "blocks_world"):
        pairs = generate_pairs(name, pairs_per_domain, seed=seed) + paraphrase_pairs(
            name, paraphrases_per_domain, seed=seed, split=split)
        for text, ltl, tag in pairs:
            domain = DroneNav(tag) if name == "drone_nav" else BlocksWorld()
            lifted, mapping = lift(text, domain)
            out.append((PROMPT.format(lifted), " " + lift_formula(ltl, mapping)))
    random.Random(seed).shuffle(out)
    return out


@dataclass
class TranslatorConfig:
    """How the NL -> LTL translator is trained.

    Attributes:
        pairs: Template-generator pairs per domain.
        paraphrases: Composed paraphrase pairs per domain (:mod:`planners.nl2ltl_paraphrase`).
        split: Phrase-table split of the paraphrases (``all``, ``train`` or ``dev``).
        steps: Optimizer steps.
        batch_size: Sequences per step.
        n_layer: GPT-2 layers.
        n_embd: GPT-2 width.
        vocab_size: BPE vocabulary size.
        lr: Peak learning rate.
        seed: Data, initialization and batch seed.
        threads: torch CPU threads.
    """

    pairs: int = 6000
    paraphrases: int = 0
    split: str = "all"
    steps: int = 1500
    batch_size: int = 48
    n_layer: int = 3
    n_embd: int = 96
    vocab_size: int = 400
    lr: float = 3e-3
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("pairs", "paraphrases"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.pairs + self.paraphrases < 1:
            raise ValueError("pairs + paraphrases must be >= 1")
        if self.split not in ("all", "train", "dev"):
            raise ValueError(f"split must be all, train or dev, got {self.split!r}")
        for name in ("steps", "batch_size", "n_layer", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd < 4 or self.n_embd % 4:
            raise ValueError(f"n_embd must be a positive multiple of 4 (4 heads), got "
                             f"{self.n_embd}")
        if self.vocab_size < 260:
            raise ValueError(f"vocab_size must be >= 260 (bytes + specials), got "
                             f"{self.vocab_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def train(out: Path, cfg: TranslatorConfig | None = None, log=print) -> dict:
    """Train and save the translator at ``out`` (safetensors); returns a summary."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from planners.lm_training import fit_prompted_lm
    from planners.tokenizer_training import hf_tokenizer, train_bpe

    cfg = cfg or TranslatorConfig()
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    data = corpus(cfg.pairs, cfg.seed, cfg.paraphrases, cfg.split)
    tok = hf_tokenizer(train_bpe([p + f for p, f in data], cfg.vocab_size), "bpe")
    eos = tok.eos_token_id
    seqs, starts = [], []
    for prompt, formula in data:
        p = tok.encode(prompt, add_special_tokens=False)
        seqs.append(p + tok.encode(prompt + formula, add_special_tokens=False)[len(p):] + [eos])
        starts.append(len(p))
    n_positions = 128 if max(map(len, seqs)) <= 128 else 256
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=n_positions,
                                       n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=4,
                                       bos_token_id=eos, eos_token_id=eos, pad_token_id=eos))
    losses = fit_prompted_lm(model, seqs, starts, eos, steps=cfg.steps,
                             batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log=log, t0=t0)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    summary = {**asdict(cfg), "pairs_per_domain": cfg.pairs, "vocab": len(tok),
               "n_positions": n_positions, "longest_sequence": max(map(len, seqs)),
               "final_loss": sum(losses[-50:]) / len(losses[-50:]),
               "parameters": sum(p.numel() for p in model.parameters()),
               "seconds": time.perf_counter() - t0}
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("scratch/nl2ltl"))
    for f in fields(TranslatorConfig):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = vars(ap.parse_args())
    out = args.pop("out")
    print(train(out, TranslatorConfig(**args)))


if __name__ == "__main__":
    main()
