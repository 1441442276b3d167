"""Fixtures for planner tests: the committed LM-shaped tokenizers and tiny LMs built from config."""

from pathlib import Path

import pytest

TOKENIZERS = Path(__file__).resolve().parent / "tokenizers"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core CPU run fastest (and fairest) on one thread; restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """Byte-level BPE, 32k vocab (made by planners/tokenizer_training.py)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(TOKENIZERS / "bpe")


@pytest.fixture(scope="session")
def unigram_tokenizer():
    """SentencePiece-style Unigram, 32k vocab (made by planners/tokenizer_training.py)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(TOKENIZERS / "unigram")


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


@pytest.fixture(scope="session")
def gpt2_bpe(bpe_tokenizer):
    """Tiny random GPT-2 over the BPE vocabulary."""
    return tiny_gpt2(len(bpe_tokenizer))


@pytest.fixture(scope="session")
def llama_unigram(unigram_tokenizer):
    """Tiny random Llama over the Unigram vocabulary."""
    return tiny_llama(len(unigram_tokenizer), bos=unigram_tokenizer.bos_token_id,
                      eos=unigram_tokenizer.eos_token_id)


def _domain_corpus() -> list[str]:
    """Prompts and step strings of both symbolic domains (what a planner LM reads)."""
    from envs.symbolic import LAYOUTS, BlocksWorld, DroneNav, generate_tasks

    texts = [" ".join(DroneNav(name).steps()) for name in LAYOUTS]
    texts.append(" ".join(BlocksWorld().steps()))
    for name in ("drone_nav", "blocks_world"):
        for split in ("train", "heldout"):
            for t in generate_tasks(name, 40, seed=0, split=split):
                texts.append(f"{t.domain.describe(t.initial_state)}\ntask: {t.instruction}\nplan:")
    return texts


@pytest.fixture(scope="session")
def wordpiece_tokenizer():
    """A BERT-style WordPiece tokenizer trained in-process: its decode spaces out punctuation."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(_domain_corpus(), trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=special))
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                             cls_token="[CLS]", pad_token="[PAD]", mask_token="[MASK]",
                             eos_token="[SEP]")
