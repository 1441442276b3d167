"""One Jacobi iteration's verification: which guesses are accepted, and the next iterate.

Both functions take the processed scores of the ``r`` open block positions and the current
iterate, and return ``(new_tokens, ok)``: the next iterate (accepted tokens, the corrected
token, then the next guesses) and, per position, whether the guess there passed. Positions
before ``decided`` were fixed by an earlier pass and always pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from decoding.sampling import draw, sampling_probs


@dataclass
class Window:
    """The open positions of a Jacobi block.

    Attributes:
        tokens: LongTensor ``[B, r]``, the current iterate (guesses) of the ``r`` positions.
        decided: LongTensor ``[B]``: leading positions of each row already final (accepted or
            corrected in an earlier pass while a slower row held the shared commit back; all
            ``r`` for a row that is done or whose own early-exit rule fired).
        q: Sampling only: the distribution each guess was drawn from. ``None`` means a point
            mass at the guess (deterministic init); a 1-D tensor ``[vocab]`` is the same
            distribution at every position (random init); else ``[B, r, V]``.
    """

    tokens: torch.Tensor
    decided: torch.Tensor
    q: torch.Tensor | None = None


def greedy_verify(scores: torch.Tensor, win: Window) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy fixed-point check: a guess passes when it equals the argmax at its position.

    Args:
        scores: Processed scores ``[B, r, V]``; position ``j`` is conditioned on the accepted
            prefix and the guesses before ``j``.
        win: The current window.

    Returns:
        ``(new_tokens [B, r], ok [B, r])``.
    """
    pos = torch.arange(win.tokens.shape[1], device=scores.device)[None, :]
    fixed = pos < win.decided[:, None]
    pred = scores.argmax(dim=-1)
    new = torch.where(fixed, win.tokens, pred)
    return new, fixed | (win.tokens == pred)


def speculative_verify(scores: torch.Tensor, win: Window, temperature: float,
                       top_k: int | None, top_p: float | None,
                       generator: torch.Generator | None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Speculative Jacobi Decoding acceptance, so kept tokens follow AR sampling exactly.

    A guess ``x`` drawn from ``q`` passes with probability ``min(1, p(x) / q(x))`` where ``p``
    is the target (AR sampling) distribution at that position. The first failing position is
    replaced by a draw from ``normalize(max(0, p - q))``; positions after it get fresh guesses
    drawn from their current ``p`` (which becomes their ``q`` next time). This is speculative
    sampling with the previous iterate as the draft, which is valid because each guess was
    drawn independently given the context its ``q`` was computed from.

    Args:
        scores: Processed scores ``[B, r, V]``.
        win: The current window.
        temperature: > 0.
        top_k: Optional top-k of the target distribution.
        top_p: Optional nucleus mass of the target distribution.
        generator: Random generator.

    Returns:
        ``(new_tokens [B, r], ok [B, r], p [B, r, V])``; ``p`` is the ``q`` of the new guesses.
    """
    batch, r, vocab = scores.shape
    p = sampling_probs(scores, temperature, top_k, top_p)
    x = win.tokens
    if win.q is None:
        q = F.one_hot(x, vocab).to(p.dtype)
    elif win.q.dim() == 1:
        q = F.pad(win.q.to(p.dtype), (0, vocab - win.q.numel())).expand(batch, r, vocab)
    else:
        q = win.q.to(p.dtype)
    px = p.gather(-1, x[..., None])[..., 0]
    qx = q.gather(-1, x[..., None])[..., 0].clamp_min(torch.finfo(p.dtype).tiny)
    u = torch.rand(batch, r, dtype=p.dtype, device=p.device, generator=generator)
    pos = torch.arange(r, device=p.device)[None, :]
    fixed = pos < win.decided[:, None]
    ok = fixed | (u < px / qx)
    first_fail = torch.where(ok.all(dim=1), r, (~ok).float().argmax(dim=1))
    residual = (p - q).clamp_min(0)
    mass = residual.sum(dim=-1, keepdim=True)
    residual = torch.where(mass > 0, residual / mass.clamp_min(torch.finfo(p.dtype).tiny), p)
    corrected = draw(residual, generator)
    fresh = draw(p, generator)
    at_fail = pos == first_fail[:, None]
    after = pos > first_fail[:, None]
    new = torch.where(at_fail, corrected, torch.where(after, fresh, x))
    return new, ok, p
