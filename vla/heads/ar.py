"""The autoregressive head: H x D action-bin tokens, left to right, in the causal-LM convention.

Usage: ``lm = model.head.causal_lm(model)``; ``decoding.jacobi(lm, model.head.bos_ids(B, dev),
n, cache=prefix)``

Training is next-token cross-entropy with input ``[BOS, tokens[:-1]]`` (optionally corrupted by
``ar_input_noise``). Decoding drives :func:`decoding.autoregressive` or :func:`decoding.jacobi`
through :meth:`ARHead.causal_lm`, which follows the Hugging Face calling convention, so the
model-agnostic decoders need nothing VLA-specific. The consistency-distilled student
(``cjacobi``) is an AR head too; only its checkpoint differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from transformers import DynamicCache

from vla.heads.base import DecoderFamily, TokenHead, valid_tokens

if TYPE_CHECKING:
    from vla.heads.base import RunFn
    from vla.model import VLAModel


@dataclass
class CausalLMOutput:
    """What :class:`CausalLM` returns: ``.logits`` (B, T, V) and the cache it extended."""

    logits: torch.Tensor
    cache: DynamicCache | None

    @property
    def past_key_values(self) -> DynamicCache | None:
        """Alias of ``cache`` (the pre-5.2x transformers name)."""
        return self.cache


class CausalLM:
    """The AR head of one model in the Hugging Face causal-LM calling convention.

    ``lm(input_ids=[B, T], cache=prefix)`` embeds the tokens at positions ``cache length ..``,
    attends causally (and to the whole cached prefix), appends their K/V to the cache when
    ``use_cache`` and returns logits over the ``n_bins`` action bins. Token ``n_bins`` is BOS.
    """

    def __init__(self, model: VLAModel, head: ARHead) -> None:
        self.model, self.head = model, head
        self.config = SimpleNamespace(vocab_size=model.config.n_bins)

    def __call__(self, input_ids: torch.Tensor | None = None, cache: DynamicCache | None = None,
                 past_key_values: DynamicCache | None = None, use_cache: bool = True,
                 attention_mask: torch.Tensor | None = None, **_: Any) -> CausalLMOutput:
        """Run new tokens against the cache (see the class docstring)."""
        if input_ids is None:
            raise ValueError("input_ids is required")
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("attention_mask with padding is not supported by the AR head")
        cache = cache if cache is not None else past_key_values
        if cache is None and use_cache:
            cache = DynamicCache()
        h = self.model.backbone.run(self.head.tok_embed(input_ids), cache, append=use_cache,
                                    causal=True)
        return CausalLMOutput(logits=self.head.lm_head(h), cache=cache if use_cache else None)


class ARHead(TokenHead):
    """Autoregressive action tokens (the OpenVLA recipe), decoded by AR or Jacobi iteration."""

    name = "ar"
    families = (
        DecoderFamily("ar", "ar", "AR head, greedy autoregressive decoding", checkpoint="ar",
                      plot_family="AR"),
        DecoderFamily("jacobi", "jacobi", "AR head, greedy Jacobi iterated to its fixed point "
                      "(+ee: relaxed early exit)", early_exit=True, checkpoint="ar",
                      plot_family="AR"),
        DecoderFamily("cjacobi", "jacobi", "consistency-distilled AR head, Jacobi "
                      "(+ee: the early exit chosen at distillation)", early_exit=True,
                      checkpoint="cjacobi", plot_family="AR"),
    )

    def causal_lm(self, model: VLAModel) -> CausalLM:
        """This head as a Hugging Face-convention causal LM (what token decoders drive)."""
        return CausalLM(model, self)

    def bos_ids(self, batch: int, device: torch.device | str) -> torch.Tensor:
        """The head's first input: one BOS id per row, (B, 1)."""
        return torch.full((batch, 1), self.config.bos_id, dtype=torch.long, device=device)

    def loss(self, model: VLAModel, actions: torch.Tensor, valid_steps: torch.Tensor,
             run: RunFn, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Next-token cross-entropy over the chunk's tokens (teacher forcing, noisy inputs)."""
        cfg = self.config
        targets = model.tokenizer.encode(actions)  # (B, H*D)
        inputs = torch.cat([self.bos_ids(actions.shape[0], targets.device), targets[:, :-1]],
                           dim=1)
        if model.training:
            inputs = noisy_inputs(inputs, cfg.ar_input_noise, cfg.n_bins, generator)
        h = run(self.tok_embed(inputs), True)
        return self.token_loss(h, targets, valid_tokens(valid_steps, cfg.action_dim))

    def decode(self, model: VLAModel, cache: DynamicCache, batch: int, decoder: str,
               **kwargs: Any) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """``ar`` (:func:`decoding.autoregressive`) or ``jacobi`` (:func:`decoding.jacobi`).

        ``early_exit="auto"`` picks the setting the distillation sweep chose for this
        checkpoint (``early_exit.json``), else ``EarlyExit()``. With ``prefix=`` (an
        :class:`~vla.heads.base.ActionPrefix`) the committed steps' tokens are frozen: AR
        teacher-forces them and decodes after them, Jacobi holds them fixed and iterates the
        rest; they are not counted in ``nfe``. ``lm=`` drives another causal LM of this head
        over the same cache (the fast path's :class:`~vla.fast.HostCausalLM`); the BOS ids are
        made on its ``device``.
        """
        import decoding

        prefix = kwargs.pop("prefix", None)
        if prefix is not None:
            kwargs["prefix_tokens"] = prefix.tokens(model)
        fn = decoding.autoregressive if decoder == "ar" else decoding.jacobi
        if kwargs.get("early_exit") == "auto":
            kwargs = {**kwargs, "early_exit": decoding.EarlyExit(**(model.chosen_early_exit
                                                                     or {}))}
        lm = kwargs.pop("lm", None) or self.causal_lm(model)
        res = fn(lm, self.bos_ids(batch, getattr(lm, "device", model.device)),
                 self.config.n_action_tokens, cache=cache, **kwargs)
        tokens = res.tokens.to(model.device)
        return self.to_chunk(model, tokens), int(res.nfe), dict(res.stats)


def noisy_inputs(inputs: torch.Tensor, p: float, n_bins: int,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Teacher-forced AR inputs with each token after BOS replaced by a random bin w.p. ``p``.

    The ``ar_input_noise`` regularizer: the head cannot copy its neighbours' tokens and has to
    read the observation. ``p = 0`` returns ``inputs`` unchanged.
    """
    if p <= 0:
        return inputs
    noisy = torch.rand(inputs.shape, generator=generator).to(inputs.device) < p
    noisy[:, 0] = False  # BOS stays
    random_bins = torch.randint(n_bins, inputs.shape, generator=generator).to(inputs.device)
    return torch.where(noisy, random_bins, inputs)
