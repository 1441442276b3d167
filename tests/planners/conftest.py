"""Fixtures for planner tests: the committed LM-shaped tokenizers and tiny LMs built from config."""

import pytest
from tiny_lms import TOKENIZERS, domain_corpus, tiny_gpt2, tiny_llama


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


@pytest.fixture(scope="session")
def gpt2_bpe(bpe_tokenizer):
    """Tiny random GPT-2 over the BPE vocabulary."""
    return tiny_gpt2(len(bpe_tokenizer))


@pytest.fixture(scope="session")
def llama_unigram(unigram_tokenizer):
    """Tiny random Llama over the Unigram vocabulary."""
    return tiny_llama(len(unigram_tokenizer), bos=unigram_tokenizer.bos_token_id,
                      eos=unigram_tokenizer.eos_token_id)


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
    tok.train_from_iterator(domain_corpus(), trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=special))
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                             cls_token="[CLS]", pad_token="[PAD]", mask_token="[MASK]",
                             eos_token="[SEP]")
