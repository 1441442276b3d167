"""The VLA model: one backbone, four action heads, training and consistency distillation.

Encoders, normalization and the action tokenizer live here too.
"""
