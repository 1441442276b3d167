"""Train the small default planner LM of a domain: own BPE tokenizer + GPT-2 from config.

Usage: ``robodecode train-planner-lm --domain drone_nav --out planners/default_lm/drone_nav``

The corpus is (prompt -> plan) text from generated train-split tasks. Most plans are shortest
satisfying plans; a share is deliberately imperfect, as real LM plans are: the shortest plan for
the goals alone (ignoring the constraints, so it may enter forbidden rooms or pick blocks out of
order), or a satisfying plan with one step dropped (usually no longer executable). The trained
LM therefore sometimes breaks specifications when decoding freely, which is what constrained
decoding is measured against.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class PlannerLMConfig:
    """Settings of ``train-planner-lm``.

    Attributes:
        domain: Registered domain name.
        tasks: Number of training tasks (one example each).
        imperfect: Fraction of imperfect plans (goals-only or a dropped step).
        vocab_size: BPE vocabulary size of the domain tokenizer.
        n_layer: GPT-2 layers.
        n_embd: GPT-2 width.
        n_head: Attention heads.
        steps: Optimizer steps.
        batch_size: Sequences per step.
        lr: Peak learning rate (cosine decay, 50-step warm-up).
        seed: Seed of tasks, corpus sampling and initialization.
        threads: torch CPU threads.
    """

    domain: str = "drone_nav"
    tasks: int = 6000
    imperfect: float = 0.3
    vocab_size: int = 1024
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        for name in ("tasks", "vocab_size", "n_layer", "n_embd", "n_head", "steps",
                     "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.imperfect <= 1.0:
            raise ValueError(f"imperfect must be in [0, 1], got {self.imperfect}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


def build_corpus(domain: str, tasks: int, imperfect: float, seed: int) -> list[tuple[str, str]]:
    """``(prompt, plan_text)`` pairs from train-split tasks (see the module docstring)."""
    from envs.symbolic import generate_tasks
    from planners.check import shortest_plan
    from planners.plan_text import format_plan, format_prompt

    rng = random.Random(seed)
    out = []
    for task in generate_tasks(domain, tasks, seed=seed, split="train"):
        plan = shortest_plan(task.domain, task.ltl, task.initial_state)
        r = rng.random()
        if r < imperfect * 0.75:
            plan = shortest_plan(task.domain, task.goal_ltl, task.initial_state) or plan
        elif r < imperfect and len(plan) > 1:
            plan = plan[:(i := rng.randrange(len(plan)))] + plan[i + 1:]
        prompt = format_prompt(task.domain.describe(task.initial_state), task.instruction)
        out.append((prompt, format_plan(plan)))
    return out


def fit_prompted_lm(model, seqs: list[list[int]], starts: list[int], pad_id: int, *,
                    steps: int, batch_size: int, lr: float, seed: int, log=print,
                    t0: float | None = None) -> list[float]:
    """Train a causal LM on token sequences, with loss only after each prompt.

    AdamW (weight decay 0.01), 50 warm-up steps then cosine decay, gradient clipping at 1,
    batches of ``batch_size`` sequences drawn with a generator seeded by ``seed`` and cut to
    their longest labelled position. Shared by the planner LMs and the NL -> LTL translator.

    Args:
        model: A Hugging Face causal LM (trained in place, left in eval mode).
        seqs: Token ids of each example (prompt, answer, EOS).
        starts: Where each example's answer starts (the loss covers the answer and its EOS).
        pad_id: Id that pads the sequences (never a label).
        steps: Optimizer steps.
        batch_size: Examples per step.
        lr: Peak learning rate.
        seed: Seed of the batch sampler.
        log: Progress printer (every 100 steps).
        t0: ``time.perf_counter()`` at the start of the job, for the logged seconds.

    Returns:
        The loss of every step.
    """
    import torch

    t0 = time.perf_counter() if t0 is None else t0
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, st) in enumerate(zip(seqs, starts, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, st: len(s)] = torch.tensor(s[st:])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step
                                                                             / steps))
        idx = torch.randint(len(seqs), (batch_size,), generator=gen)
        cut = int((labels[idx] != -100).nonzero()[:, 1].max()) + 1
        loss = model(input_ids=ids[idx, :cut], labels=labels[idx, :cut]).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} "
                f"({time.perf_counter() - t0:.0f}s)")
    model.eval()
    return losses


def train_planner_lm(cfg: PlannerLMConfig, out: Path, log=print) -> dict:
    """Train tokenizer and GPT-2 on the corpus and save an HF folder (safetensors) at ``out``.

    Returns:
        A summary dict (also written to ``out/training.json``).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from planners.tokenizer_training import hf_tokenizer, train_bpe

    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    corpus = build_corpus(cfg.domain, cfg.tasks, cfg.imperfect, cfg.seed)
    tok = hf_tokenizer(train_bpe([p + q for p, q in corpus], cfg.vocab_size), "bpe")
    eos = tok.eos_token_id
    seqs, starts = [], []
    for prompt, plan in corpus:
        p_ids = tok.encode(prompt, add_special_tokens=False)
        seqs.append(p_ids + tok.encode(prompt + plan, add_special_tokens=False)[len(p_ids):]
                    + [eos])
        starts.append(len(p_ids))
    max_len = max(len(s) for s in seqs)
    log(f"corpus: {len(seqs)} examples, vocab {len(tok)}, max length {max_len}, "
        f"{time.perf_counter() - t0:.1f}s")
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tok), n_positions=max(64, 1 << (max_len - 1).bit_length()),
        n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head, bos_token_id=eos,
        eos_token_id=eos, pad_token_id=eos))
    losses = fit_prompted_lm(model, seqs, starts, eos, steps=cfg.steps,
                             batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log=log, t0=t0)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    summary = {"config": asdict(cfg), "final_loss": sum(losses[-50:]) / len(losses[-50:]),
               "parameters": sum(p.numel() for p in model.parameters()),
               "seconds": time.perf_counter() - t0, "examples": len(seqs)}
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
