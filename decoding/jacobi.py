"""Jacobi (fixed-point) parallel decoding with fast-forward acceptance and early exit.

Each model pass feeds the not-yet-cached accepted tokens plus the current guesses of the open
block positions and gets a prediction for every open position at once. The longest prefix of
guesses that equals its prediction is accepted, together with the prediction right after it
(which was conditioned on accepted tokens only): at least one token per pass, so greedy Jacobi
never needs more passes than autoregressive decoding and returns exactly its tokens (CLLM's
fast-forward). The KV of accepted tokens is kept; the rest is cropped before the next pass.

Batch rows converge at different speeds but share one cache: each pass commits the minimum
decided length over the rows, and rows that got further keep their extra tokens as fixed
(``decided``) positions of the next iterate, so no row's work is lost or altered. Every
per-row decision is the row's own: a row is decided when all its block positions are accepted,
when it ends at EOS, or when its own early-exit rule fires (judged on its own tail, pass count
and constraints; its whole iterate is then fixed), and the block ends when every row is
decided. A row of a batch therefore gets exactly the tokens it gets alone (greedy; up to
floating-point differences between batched and single passes). Sampling and ``init="random"``
draw from one generator for the whole batch, so their draws do differ with the batch.

With ``temperature > 0`` guesses are verified with the probabilistic criterion of Speculative
Jacobi Decoding (:func:`decoding.jacobi_step.speculative_verify`), so kept tokens follow the AR
sampling distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from decoding import adapter
from decoding._checks import (
    check_eos,
    check_input_ids,
    check_positive_int,
    check_prefix_tokens,
    check_sampling,
)
from decoding.constraints import (
    as_processor_list,
    process_scores,
    raise_all_masked,
    tokens_allowed,
)
from decoding.jacobi_step import Window, greedy_verify, speculative_verify
from decoding.result import DecodeResult, pad_after_eos

INIT_STRATEGIES = ("repeat", "random", "prompt")
EXIT_RULES = ("converged", "unchanged", "tol", "max_iters")


@dataclass(frozen=True)
class EarlyExit:
    """Relaxed convergence of a Jacobi block: stop before the fixed point, keep the last iterate.

    A row's block is always done when every position is accepted (``"converged"``). With this
    config it is also done when one of the rules below fires for that row after a pass; its
    tokens not yet accepted are then taken from its last iterate (approximate: they were
    predicted from guesses). The "tail" is the row's open positions after those the pass
    accepted. Rules are judged per row, so a row exits as it would alone in any batch.

    Attributes:
        on_unchanged: Stop when no tail token changed in the last iteration (the block is
            unchanged except for the token the pass just corrected).
        tol: Stop when at most ``tol`` tail tokens changed in the last iteration (0: rule off).
        max_iters: Stop after this many passes on the block (``None``: no cap).
    """

    on_unchanged: bool = True
    tol: int = 0
    max_iters: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tol, bool) or not isinstance(self.tol, int) or self.tol < 0:
            raise ValueError(f"tol must be an int >= 0, got {self.tol!r}")
        if self.max_iters is not None:
            check_positive_int(self.max_iters, "max_iters")

    def rule(self, tail_changed: int, iters: int) -> str | None:
        """Name of the first rule that fires, or ``None``."""
        if self.on_unchanged and tail_changed == 0:
            return "unchanged"
        if self.tol > 0 and tail_changed <= self.tol:
            return "tol"
        if self.max_iters is not None and iters >= self.max_iters:
            return "max_iters"
        return None


def init_guesses(strategy: str, history: torch.Tensor, r: int, vocab: int | None,
                 generator: torch.Generator | None) -> Window:
    """First iterate of a block of ``r`` positions.

    ``repeat``: the last known token ``r`` times. ``random``: uniform over the vocabulary.
    ``prompt`` (CEED-VLA): the last ``r`` known tokens (prompt + accepted), cycled if fewer.
    """
    batch = history.shape[0]
    decided = torch.zeros(batch, dtype=torch.long, device=history.device)
    if strategy == "repeat":
        return Window(history[:, -1:].expand(batch, r).clone(), decided)
    if strategy == "prompt":
        src = history[:, -r:]
        idx = torch.arange(r, device=history.device) % src.shape[1]
        return Window(src[:, idx].clone(), decided)
    tokens = torch.randint(0, vocab, (batch, r), generator=generator, device=history.device)
    return Window(tokens, decided, q=torch.full((vocab,), 1.0 / vocab, dtype=torch.float64))


@dataclass
class _Options:
    """The validated knobs of one :func:`jacobi` call."""

    temperature: float
    top_k: int | None
    top_p: float | None
    eos: int | None
    processors: list
    early_exit: EarlyExit | None
    init: str
    vocab: int | None
    generator: torch.Generator | None
    vocab_limit: int = 0  # logits width, known after the first pass


class _Run:
    """State of one Jacobi decode (kept off the public surface; see :func:`jacobi`)."""

    def __init__(self, model: Any, input_ids: torch.Tensor, opts: _Options) -> None:
        self.model, self.opts = model, opts
        self.history = input_ids
        self.start = input_ids.shape[1]
        self.finished = torch.zeros(input_ids.shape[0], dtype=torch.bool,
                                    device=input_ids.device)
        self.nfe = 0
        self.stats: dict[str, Any] = {"iters_per_block": [], "accepted_per_iter": [],
                                      "exit_rule_counts": dict.fromkeys(EXIT_RULES, 0),
                                      "passes_per_row": [0] * input_ids.shape[0]}

    @property
    def committed(self) -> int:
        return self.history.shape[1] - self.start

    def score(self, logits: torch.Tensor, win: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the processors at each open position (context: accepted + earlier guesses)."""
        procs = self.opts.processors
        if not procs:
            return logits, torch.zeros(logits.shape[:2], dtype=torch.bool, device=logits.device)
        cols = [process_scores(procs, torch.cat([self.history, win.tokens[:, :j]], dim=1),
                               logits[:, j]) for j in range(logits.shape[1])]
        return torch.stack([c[0] for c in cols], 1), torch.stack([c[1] for c in cols], 1)

    def verify(self, logits: torch.Tensor, win: Window
               ) -> tuple[Window, torch.Tensor, torch.Tensor]:
        """Accept guesses; return the next iterate, each row's tail changes, and the live rows.

        The next iterate's ``decided`` holds each row's accepted count (``r`` for rows that are
        done); a row's tail is the positions after them, compared with the previous iterate.
        """
        o, r = self.opts, logits.shape[1]
        scores, dead = self.score(logits, win)
        if o.temperature == 0:
            new, ok = greedy_verify(scores, win)
            q = None
        else:
            new, ok, q = speculative_verify(scores, win, o.temperature, o.top_k,
                                            o.top_p, o.generator)
        accepted = torch.where(ok.all(1), r, (~ok).float().argmax(1) + 1).clamp_max(r)
        ended = torch.zeros_like(self.finished)
        pos = torch.arange(r, device=logits.device)[None, :]
        if o.eos is not None:  # a row is done at its first accepted EOS
            is_eos = (new == o.eos) & (pos < accepted[:, None])
            ended = is_eos.any(1)
            accepted = torch.where(ended, is_eos.float().argmax(1) + 1, accepted)
        bad = dead & (pos < accepted[:, None]) & ~self.finished[:, None]
        if bool(bad.any()):
            raise_all_masked(int(bad.nonzero()[0, 0]))
        changed = ((new != win.tokens) & (pos >= accepted[:, None])).sum(1)
        done = self.finished | ended
        return Window(new, torch.where(done, r, accepted), q), changed, ~done

    def early_exits(self, win: Window, changed: torch.Tensor, live: torch.Tensor,
                    iters: int) -> dict[int, str]:
        """Rows whose own early-exit rule fires after this pass, with the rule's name.

        Each live, undecided row is judged alone: on its tail changes, the passes made on the
        block (the same count it would have alone) and whether its own tail passes the
        processors, so no row's exit depends on the other rows of the batch.
        """
        rules, r = self.opts.early_exit, win.tokens.shape[1]
        if rules is None:
            return {}
        rows = (live & (win.decided < r)).nonzero()[:, 0].tolist()
        counts = changed.tolist()
        fired = {row: rule for row in rows if (rule := rules.rule(counts[row], iters))}
        if fired and self.opts.processors:
            ok = self.tail_allowed(win, min(int(win.decided[row]) for row in fired)).tolist()
            fired = {row: rule for row, rule in fired.items() if ok[row]}
        return fired

    def tail_allowed(self, win: Window, start: int) -> torch.Tensor:
        """Bool ``[B]``: whether each row's last-iterate tail passes the processors in context.

        A row's tail is its positions from its ``decided`` count on (``start`` is the smallest);
        rows already past their EOS pass (their later tokens are padding).
        """
        procs, eos, new = self.opts.processors, self.opts.eos, win.tokens
        ok = torch.ones_like(self.finished)
        for j in range(start, new.shape[1]):
            ctx = torch.cat([self.history, new[:, :j]], dim=1)
            ok_j = tokens_allowed(procs, ctx, new[:, j], self.opts.vocab_limit) | self.finished
            ok_j |= win.decided > j
            if eos is not None:
                ok_j |= (new[:, :j] == eos).any(1)
            ok &= ok_j
        return ok

    def count_exits(self, win: Window, open_rows: torch.Tensor, fired: dict[int, str],
                    iters: int) -> None:
        """Count, for each row this pass decided, the rule and the passes it took (in place)."""
        closing = open_rows & (win.decided == win.tokens.shape[1])
        for row in closing.nonzero()[:, 0].tolist():
            self.stats["exit_rule_counts"][fired.get(row, "converged")] += 1
            self.stats["passes_per_row"][row] += iters
        open_rows &= ~closing

    def block(self, kv: Any, pending: torch.Tensor, r: int) -> tuple[Any, torch.Tensor]:
        """Decode one block of ``r`` tokens; returns the cache and the uncached tokens.

        Ends when every row is decided (accepted, ended at EOS or exited by its own rule).
        """
        o = self.opts
        win = init_guesses(o.init, self.history, r, o.vocab, o.generator)
        open_rows, iters = ~self.finished, 0  # rows this block still has to decide
        while True:
            # One pass over [uncached accepted tokens | guesses of all open positions but last].
            base, fed = adapter.cache_length(kv), win.tokens[:, :-1]
            logits, kv = adapter.forward(self.model, torch.cat([pending, fed], 1), kv,
                                         logits_to_keep=r)
            self.nfe, iters = self.nfe + 1, iters + 1
            o.vocab_limit = logits.shape[-1]
            # Verify every row; a row whose own early-exit rule fires keeps its whole iterate.
            new, changed, live = self.verify(logits, win)
            fired = self.early_exits(new, changed, live, iters)
            if fired:
                new.decided[list(fired)] = r
            self.count_exits(new, open_rows, fired, iters)
            # Commit what every row decided; keep the KV only where the fed token still stands.
            m = int(new.decided.min())
            same = (fed == new.tokens[:, :-1]) | ~live[:, None]
            kept = min(m - 1, int(same.long().cumprod(1).sum(1).min()))
            adapter.crop_to(kv, base + pending.shape[1] + kept)
            self.history = torch.cat([self.history, new.tokens[:, :m]], dim=1)
            if o.eos is not None:
                self.finished |= (new.tokens[:, :m] == o.eos).any(1)
            self.stats["accepted_per_iter"].append(m)
            pending = new.tokens[:, kept:m]
            if m == r:
                self.stats["iters_per_block"].append(iters)
                return kv, pending
            win = Window(new.tokens[:, m:], new.decided - m,
                         new.q[:, m:] if new.q is not None else None)
            r -= m


@torch.no_grad()
def jacobi(model: Any, input_ids: torch.Tensor, max_new_tokens: int, *,
           block_size: int | None = None, early_exit: EarlyExit | None = None,
           temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
           eos_token_id: int | None = None, logits_processor: Any = None, cache: Any = None,
           init: str = "repeat", generator: torch.Generator | None = None,
           vocab_size: int | None = None,
           prefix_tokens: torch.Tensor | None = None) -> DecodeResult:
    """Generate ``max_new_tokens`` tokens by Jacobi iteration over blocks of ``block_size``.

    Without ``early_exit`` each block is iterated to its fixed point (at most ``block_size``
    passes), and greedy Jacobi returns exactly the greedy autoregressive tokens with
    ``nfe <= max_new_tokens``. The iteration cap lives only in ``early_exit``.

    With ``prefix_tokens`` (``d`` frozen tokens, e.g. the committed actions of real-time
    chunking) the first ``d`` positions hold those tokens from the start and are never
    updated: they are accepted context, fed with ``input_ids`` in the first pass, and the
    blocks iterate the ``n - d`` positions after them (so greedy Jacobi with a prefix still
    equals greedy AR with the same prefix). They are not counted in ``nfe`` or the stats.

    Args:
        model: Causal LM with the Hugging Face calling convention (see :mod:`decoding.adapter`).
        input_ids: LongTensor ``[B, T]``, ``T >= 1``; the tokens after the prefix ``cache``.
        max_new_tokens: Number of tokens to generate (>= 1).
        block_size: Tokens decoded in parallel per block (default: ``max_new_tokens``).
        early_exit: Relaxed convergence rules (:class:`EarlyExit`); ``None`` = exact.
        temperature: 0 for greedy; > 0 samples with Speculative-Jacobi acceptance.
        top_k: Top-k of the sampling distribution (ignored when greedy).
        top_p: Nucleus mass of the sampling distribution (ignored when greedy).
        eos_token_id: Stop a row after this token; ``None`` never stops early.
        logits_processor: Processor(s) ``(input_ids, scores) -> scores``; at block position
            ``i`` they see the input + accepted tokens + the guesses before ``i``.
        cache: Optional pre-filled prefix cache, cropped back afterwards (never left changed).
        init: First guesses of a block: ``"repeat"`` (last token), ``"random"`` (uniform over
            the vocabulary) or ``"prompt"`` (copy the last known tokens, as CEED-VLA).
        generator: Random generator (sampling and random init).
        vocab_size: Vocabulary for ``init="random"`` (default: from ``model.config``).
        prefix_tokens: Optional frozen first output tokens, LongTensor ``[B, d]`` or ``[d]``
            with ``d <= max_new_tokens``.

    Returns:
        :class:`DecodeResult`; ``stats`` has ``iters_per_block`` (passes per block),
        ``accepted_per_iter`` (tokens committed per pass: the least any row decided) and
        ``exit_rule_counts`` (row-blocks decided by each rule: every row that had not ended
        counts once per block, ``"converged"`` when all its positions were accepted or it
        ended at EOS; for one row, the blocks ended by each rule) and ``passes_per_row`` (the
        passes each row needed: its ``nfe`` decoded alone; the batch's ``nfe`` is at least
        their max).

    Raises:
        ValueError: On malformed arguments or a processor that masks every token.
    """
    input_ids = check_input_ids(input_ids)
    check_positive_int(max_new_tokens, "max_new_tokens")
    block = max_new_tokens if block_size is None else check_positive_int(block_size,
                                                                         "block_size")
    check_sampling(temperature, top_k, top_p)
    if early_exit is not None and not isinstance(early_exit, EarlyExit):
        raise ValueError(f"early_exit must be None or an EarlyExit, got {early_exit!r}")
    if init not in INIT_STRATEGIES:
        raise ValueError(f"init must be one of {INIT_STRATEGIES}, got {init!r}")
    if vocab_size is not None:
        check_positive_int(vocab_size, "vocab_size")
    opts = _Options(temperature=temperature, top_k=top_k, top_p=top_p,
                    eos=check_eos(eos_token_id), processors=as_processor_list(logits_processor),
                    early_exit=early_exit, init=init, generator=generator,
                    vocab=(vocab_size or adapter.vocab_size(model)) if init == "random" else None)
    run = _Run(model, input_ids, opts)
    pending = input_ids
    prefix = check_prefix_tokens(prefix_tokens, input_ids.shape[0], max_new_tokens)
    if prefix is not None:  # frozen positions: accepted before the first pass
        run.history = pending = torch.cat([input_ids, prefix.to(input_ids.device)], dim=1)
        if opts.eos is not None:
            run.finished = (prefix == opts.eos).any(1).to(run.finished.device)
    with adapter.restored(cache) as kv:
        while run.committed < max_new_tokens and not bool(run.finished.all()):
            kv, pending = run.block(kv, pending, min(block, max_new_tokens - run.committed))
    tokens, lengths = pad_after_eos(run.history[:, run.start:run.start + max_new_tokens],
                                    opts.eos)
    if tokens.shape[1] < max_new_tokens:  # every row ended early
        pad = tokens.new_full((tokens.shape[0], max_new_tokens - tokens.shape[1]), opts.eos)
        tokens = torch.cat([tokens, pad], dim=1)
    run.stats["passes"] = run.nfe
    return DecodeResult(tokens=tokens, lengths=lengths, nfe=run.nfe, stats=run.stats)
