"""The head and decoder registries: a new head is one class plus one ``register_head`` call.

A toy head defined here (an MLP on the mean of the prefix, no action positions) is registered,
trained one step, decoded through ``predict_chunk`` and its decoder spec parsed, then removed:
what a contributor's new head needs is exactly what this file does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from vla import heads
from vla.data import load_chunks
from vla.decoders import DecoderSpec, families, parse_decoder_spec, valid_forms
from vla.heads.base import ActionHead, DecoderFamily, expand_cache
from vla.model import VLAModel


class MeanHead(ActionHead):
    """Regresses the chunk from the mean prefix state; ``mean@N`` scales it by 1/N (a toy)."""

    name = "mean"
    families: ClassVar = (DecoderFamily("mean", "mean", "toy mean-prefix head", steps=1,
                                        checkpoint="mean", plot_family="toy"),)

    def __init__(self, config) -> None:
        super().__init__(config)
        self.out = nn.Linear(config.d_model, config.horizon * config.action_dim)

    def _chunk(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(h.mean(1)).unflatten(-1, (self.config.horizon, -1)).tanh()

    def loss(self, model, actions, valid_steps, run, generator):
        h = run(torch.zeros(actions.shape[0], 1, self.config.d_model,
                            dtype=model.dtype, device=model.device), False)
        err = (self._chunk(h) - model.tokenizer.normalize(actions)).abs().mean()
        return err, {"loss": float(err.detach())}

    def decode(self, model, cache, batch, decoder, **kwargs: Any):
        zeros = torch.zeros(batch, 1, self.config.d_model, dtype=model.dtype, device=model.device)
        h = model.backbone.run(zeros, expand_cache(cache, batch), append=False, causal=False)
        return self._chunk(h) * (1.0 / kwargs.get("steps", 1)), kwargs.get("steps", 1), {}


@pytest.fixture
def mean_head():
    heads.register_head(MeanHead)
    try:
        yield MeanHead
    finally:
        del heads.HEADS["mean"]


def test_a_new_head_plugs_into_config_training_prediction_and_specs(mean_head, make_model,
                                                                     synthetic):
    model = make_model("mean")
    assert isinstance(model.head, MeanHead) and model.head.decoders == ("mean",)
    item = synthetic[0]
    obs = {"image": item["image"].numpy()[None], "state": item["state"].numpy()[None],
           "instruction": [item["instruction"]]}
    data = load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)
    lang = model.instructions.embed(data.instructions)
    batch_obs, actions, pad = data.batch(torch.arange(4), lang, model.config.image_size)
    loss, _ = model.compute_loss(batch_obs, actions, pad)
    loss.backward()
    assert model.head.out.weight.grad is not None
    spec = parse_decoder_spec("mean@2")
    assert (spec.head, spec.checkpoint, spec.plot_family, str(spec)) == (
        "mean", "mean", "toy", "mean@2")
    actions, stats = model.eval().predict_chunk(obs, **spec.predict_kwargs())
    assert actions.shape == (1, 4, 4) and np.isfinite(actions).all() and stats["nfe"] == 2
    assert "mean@N" in valid_forms()


def test_registry_refuses_taken_names_and_unknown_heads(mean_head):
    with pytest.raises(ValueError, match="already registered"):
        heads.register_head(MeanHead)

    class Clash(MeanHead):
        name = "other"
        families: ClassVar = (DecoderFamily("jacobi", "jacobi", "clash"),)

    with pytest.raises(ValueError, match=r"\['jacobi'\] are already registered"):
        heads.register_head(Clash)
    with pytest.raises(ValueError, match="did you mean 'mean'"):
        heads.head_class("meen")


def test_every_family_maps_to_a_decoder_its_head_runs():
    for name, (head, family) in families().items():
        assert family.decoder in heads.HEADS[head](_cfg(head)).decoders, name
        DecoderSpec(name, steps=family.steps)  # every family parses at its default steps


def _cfg(head):
    from vla.config import preset

    return preset("tiny", head=head)


def test_unregistered_head_leaves_no_trace():
    assert "mean" not in heads.HEADS and "mean" not in families()
    with pytest.raises(ValueError, match="head"):
        VLAModel(_cfg("mean"))
