"""Model-agnostic decoding algorithms: autoregressive, Jacobi, masked diffusion, flow sampling.

Depends on torch only; imports nothing else of robodecode.
"""
