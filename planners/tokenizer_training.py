"""Train LM-shaped tokenizers offline: byte-level BPE (GPT-2 style) and Unigram (SentencePiece).

Usage: ``python -m planners.tokenizer_training --out tests/planners/tokenizers --mb 10 --kinds bpe``

The text is what is available offline: Python standard-library sources (the first ``mb``
megabytes, files in sorted order) plus a generated planning corpus (prompts and plans of both
symbolic domains), so the vocabularies hold real code/English pieces and the plan vocabulary.
The committed ``tests/planners/tokenizers/{bpe,unigram}/tokenizer.json`` (32,000 tokens each) were
made by the usage line above for BPE (about 2.5 min on the shared CPU) and, for Unigram (whose
trainer is much slower), by ``... --mb 4 --kinds unigram``.
"""

from __future__ import annotations

import argparse
import sysconfig
from collections.abc import Iterator
from pathlib import Path

EOS_BPE = "<|endoftext|>"
UNIGRAM_SPECIAL = ("<unk>", "<s>", "</s>")


def stdlib_text(megabytes: float) -> Iterator[str]:
    """Python standard-library source files, sorted by path, up to ``megabytes`` MB."""
    root = Path(sysconfig.get_paths()["stdlib"])
    budget = int(megabytes * 1e6)
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        budget -= len(text)
        yield text
        if budget <= 0:
            return


def plan_text(n_tasks: int = 2000, seed: int = 0) -> Iterator[str]:
    """Prompts plus shortest satisfying plans of generated tasks of both domains."""
    from envs.symbolic import generate_tasks
    from planners.check import shortest_plan
    from planners.plan_text import format_plan, format_prompt

    for name in ("drone_nav", "blocks_world"):
        for task in generate_tasks(name, n_tasks, seed=seed):
            plan = shortest_plan(task.domain, task.ltl, task.initial_state) or []
            yield format_prompt(task.domain.describe(task.initial_state), task.instruction) \
                + format_plan(plan)


def train_bpe(texts, vocab_size: int):
    """A GPT-2-style byte-level BPE tokenizer with ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_BPE],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def train_unigram(texts, vocab_size: int):
    """A SentencePiece-style Unigram tokenizer (Metaspace, ``<unk> <s> </s>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(UNIGRAM_SPECIAL),
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def hf_tokenizer(tok, kind: str):
    """Wrap a trained tokenizer as ``PreTrainedTokenizerFast`` with its special tokens set."""
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe":
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_BPE,
                                       bos_token=EOS_BPE, pad_token=EOS_BPE)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="</s>")


def main() -> None:
    """Train both tokenizers and save them as ``<out>/{bpe,unigram}/`` HF tokenizer folders."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mb", type=float, default=8.0, help="MB of stdlib source to train on")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--kinds", nargs="+", choices=("bpe", "unigram"), default=["bpe", "unigram"])
    args = ap.parse_args()
    corpus = list(stdlib_text(args.mb)) + list(plan_text())
    for kind, train in (("bpe", train_bpe), ("unigram", train_unigram)):
        if kind not in args.kinds:
            continue
        tok = hf_tokenizer(train(corpus, args.vocab), kind)
        tok.save_pretrained(args.out / kind)
        print(kind, "vocab", len(tok), "->", args.out / kind)


if __name__ == "__main__":
    main()
