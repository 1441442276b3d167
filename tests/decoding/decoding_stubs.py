"""Tiny models for the decoding tests: random GPT-2s in float64 and stub causal LMs."""

from __future__ import annotations

from types import SimpleNamespace

import torch


def make_gpt2(seed: int, vocab: int = 64, n_layer: int = 2, init_range: float = 0.5):
    """A random tiny GPT-2 in float64, eval mode.

    GPT-2's default init (std 0.02) makes a random model repeat its last token forever, which
    would make Jacobi trivially exact; a wider init gives varied, context-dependent outputs.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=n_layer, n_embd=32, n_head=2, vocab_size=vocab, n_positions=128,
                        bos_token_id=0, eos_token_id=vocab - 1, initializer_range=init_range)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config).double().eval()


class LengthCache:
    """Minimal cache for stub models: only a length, with ``crop(-n)`` like DynamicCache."""

    def __init__(self) -> None:
        self.length = 0

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, n: int) -> None:
        assert n <= 0
        self.length += n


class RuleLM:
    """Stub causal LM whose next token is a rule of (row, absolute position, previous token).

    ``rule(row, pos, prev) -> token`` gives the greedy next token after the token ``prev`` at
    position ``pos``. Counts its calls. Like a transformers model it takes ``logits_to_keep``
    (recorded in ``kept``) unless built with ``takes_keep=False``.
    """

    def __init__(self, vocab: int, rule, takes_keep: bool = True) -> None:
        self.vocab, self.rule, self.calls, self.takes_keep = vocab, rule, 0, takes_keep
        self.config = SimpleNamespace(vocab_size=vocab)
        self.kept: list[int] = []

    def _supports_logits_to_keep(self) -> bool:
        return self.takes_keep

    def __call__(self, input_ids, cache=None, use_cache=True, past_key_values=None,
                 **kwargs):
        assert set(kwargs) <= ({"logits_to_keep"} if self.takes_keep else set()), kwargs
        keep = kwargs.get("logits_to_keep", 0)
        self.kept.append(keep)
        self.calls += 1
        cache = cache if cache is not None else (past_key_values or LengthCache())
        start = cache.get_seq_length()
        batch, t = input_ids.shape
        logits = torch.zeros(batch, t, self.vocab, dtype=torch.float64)
        for b in range(batch):
            for j in range(t):
                logits[b, j, self.rule(b, start + j, int(input_ids[b, j]))] = 5.0
        cache.length = start + t
        logits = logits[:, -keep:] if keep else logits
        return SimpleNamespace(logits=logits, cache=cache, past_key_values=cache)
