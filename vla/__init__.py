"""The VLA model: encoders, normalization, action tokenizer, backbone, four action heads,
training and consistency distillation.
"""
