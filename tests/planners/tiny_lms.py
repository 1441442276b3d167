"""Helpers the planner tests share (imported by name: ``from tiny_lms import tiny_gpt2``).

They live here, not in ``conftest.py``: every test folder has a ``conftest`` module, and which
one ``import conftest`` finds depends on what pytest collected first.
"""

from pathlib import Path

TOKENIZERS = Path(__file__).resolve().parent / "tokenizers"
"""The committed LM-shaped tokenizers (``bpe/``, ``unigram/``; made by
planners/tokenizer_training.py)."""


def tiny_gpt2(vocab_size: int, seed: int = 0):
    """A 2-layer GPT-2 with random weights."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=256, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(vocab_size: int, seed: int = 0, bos: int = 1, eos: int = 2):
    """A 2-layer Llama with random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      max_position_embeddings=256, bos_token_id=bos, eos_token_id=eos)
    return LlamaForCausalLM(cfg).eval()


def domain_corpus() -> list[str]:
    """Prompts and step strings of both symbolic domains (what a planner LM reads)."""
    from envs.symbolic import LAYOUTS, BlocksWorld, DroneNav, generate_tasks

    texts = [" ".join(DroneNav(name).steps()) for name in LAYOUTS]
    texts.append(" ".join(BlocksWorld().steps()))
    for name in ("drone_nav", "blocks_world"):
        for split in ("train", "heldout"):
            for t in generate_tasks(name, 40, seed=0, split=split):
                texts.append(f"{t.domain.describe(t.initial_state)}\ntask: {t.instruction}\nplan:")
    return texts
