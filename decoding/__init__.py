"""Model-agnostic decoding algorithms: autoregressive, Jacobi, masked diffusion, flow sampling.

Depends on torch (and, for the causal-LM adapter, the installed transformers version) only;
imports nothing else of robodecode.

Example:
    >>> from decoding import autoregressive, jacobi, EarlyExit
    >>> r = jacobi(model, input_ids, 32, block_size=8, early_exit=EarlyExit(max_iters=4))
    >>> r.tokens, r.nfe
"""

from decoding.autoregressive import autoregressive
from decoding.constraints import apply_processors
from decoding.flow import flow_sample
from decoding.inpainting import Inpainting, soft_mask
from decoding.jacobi import EarlyExit, jacobi
from decoding.masked_diffusion import masked_diffusion
from decoding.result import DecodeResult

__all__ = [
    "DecodeResult",
    "EarlyExit",
    "Inpainting",
    "apply_processors",
    "autoregressive",
    "flow_sample",
    "jacobi",
    "masked_diffusion",
    "soft_mask",
]
