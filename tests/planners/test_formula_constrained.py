"""Grammar- and vocabulary-constrained formula decoding.

The automaton agrees with the parser, and any LM (random weights, random scores, greedy or
sampled, several tokenizers) decodes only parsable formulas over the given atoms, with EOS only
after a complete formula.
"""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ltl_random import formulas
from tiny_lms import tiny_gpt2
from transformers import PreTrainedTokenizerFast

from envs.symbolic import BlocksWorld, DroneNav
from planners.formula_constrained import (
    FormulaConstraint,
    FormulaLogitsProcessor,
    TokenSurfaces,
    continuation_text,
)
from planners.ltl import LTLf, LTLSyntaxError
from planners.ltl_grammar import START, FormulaAutomaton
from planners.nl2ltl import Translator

SHIPPED = Path(__file__).resolve().parents[2] / "planners" / "default_lm" / "nl2ltl"
ATOMS = ("a", "b", "ab", "x1", "holding_x1", "x1_on_x2")
FA = FormulaAutomaton(ATOMS, max_depth=8)
CHARS = "abx1_holdingonXFGURW ()!&|<->t"


def _parses(text: str) -> bool:
    try:
        spec = LTLf(text)
    except LTLSyntaxError:
        return False
    return spec.atoms <= set(ATOMS)


def _depth(text: str) -> int:
    depth = most = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        most = max(most, depth)
    return most


def test_automaton_examples():
    assert FA.is_complete("F(x1_on_x2 & F(holding_x1)) & G(!a)")
    assert FA.is_complete("GFa") and FA.is_complete("aUb") and FA.is_complete("WXa")
    assert FA.is_complete("a W b") and FA.is_complete("a <-> b -> true")
    assert not FA.is_complete("a WX b")  # WX is unary: 'a WX b' does not parse
    assert FA.is_prefix("F(x1_on") and not FA.is_complete("F(x1_on")
    assert not FA.is_prefix("F(x3)") and not FA.is_prefix("F(x1 x2)") and not FA.is_prefix(")")
    assert not FA.is_prefix("F1") and not FA.is_prefix("a\nb") and not FA.is_prefix("Q")
    assert FA.completion("F(x1 & G(!a") == "))" and FA.completion("a <") == "->a"
    assert FA.completion("") == "a" and FA.completion("aW") == "a"
    with pytest.raises(ValueError, match="not a prefix"):
        FA.completion("F(x3")
    with pytest.raises(ValueError, match="atoms must"):
        FormulaAutomaton(["Lab"])


@settings(max_examples=300)
@given(text=formulas(ATOMS, max_leaves=6))
def test_automaton_accepts_what_the_parser_accepts(text):
    assert FA.is_complete(text) == (_depth(text) <= FA.max_depth)


@settings(max_examples=600)
@given(base=formulas(ATOMS, max_leaves=5), edits=st.lists(st.tuples(
    st.integers(0, 60), st.sampled_from(CHARS), st.booleans()), max_size=3))
def test_automaton_agrees_with_the_parser_on_mutated_text(base, edits):
    text = base
    for pos, ch, insert in edits:  # random insertions and deletions
        pos = min(pos, len(text))
        text = text[:pos] + ch + text[pos:] if insert else text[:pos] + text[pos + 1:]
    if _depth(text) > FA.max_depth:
        return
    assert FA.is_complete(text) == _parses(text), text
    for cut in range(len(text) + 1):  # every prefix the automaton keeps can be completed
        head = text[:cut]
        if not FA.is_prefix(head):
            assert not FA.is_prefix(text)
            break
        whole = head + FA.completion(head)
        assert _parses(whole) and len(FA.completion(head)) == FA.finish_length(
            FA.feed(START, head)), whole


@pytest.fixture(scope="module")
def shipped_tokenizer():
    return PreTrainedTokenizerFast.from_pretrained(SHIPPED)


TOKENIZERS = ["shipped_tokenizer", "bpe_tokenizer", "unigram_tokenizer", "wordpiece_tokenizer"]


def _decode_under(tok, model, atoms, prompt, sample, max_tokens, seed):
    surfaces = TokenSurfaces.build(tok)
    constraint = FormulaConstraint(surfaces, atoms, tok.eos_token_id)
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
    proc = FormulaLogitsProcessor(constraint, ids.shape[1], max_tokens)
    torch.manual_seed(seed)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=sample, top_k=0,
                         num_return_sequences=4 if sample else 1, max_new_tokens=max_tokens,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
                         logits_processor=[proc])
    return out[:, ids.shape[1]:], constraint, proc, ids[0].tolist()


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_lm_samples_always_parse_with_domain_atoms(tok_name, seed, request):
    tok = request.getfixturevalue(tok_name)
    model = tiny_gpt2(len(tok), seed=seed)
    model.generation_config.eos_token_id = tok.eos_token_id
    domain = DroneNav("museum") if seed % 2 else BlocksWorld()
    for sample, max_tokens in ((False, 24), (True, 16 + 8 * seed)):
        gen, _, _, prompt = _decode_under(tok, model, domain.atoms, "task: go\nltl:", sample,
                                          max_tokens, seed)
        eos = tok.eos_token_id
        for row in gen.tolist():
            assert eos in row, "the budget must force a complete formula"
            text = continuation_text(tok, prompt, row[: row.index(eos)]).strip()
            spec = LTLf(text)
            assert spec.atoms <= domain.atoms, text


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_eos_only_after_a_complete_formula(tok_name, request):
    tok = request.getfixturevalue(tok_name)
    model = tiny_gpt2(len(tok), seed=5)
    gen, constraint, proc, prompt = _decode_under(tok, model, ATOMS, "ltl:", True, 30, 5)
    eos = tok.eos_token_id
    for row in gen.tolist():
        end = row.index(eos)
        for k in range(end + 1):
            text = continuation_text(tok, prompt, row[:k])
            state = proc.walk(tuple(row[:k]))
            allowed = constraint.allowed_ids(state, 30 - k)
            assert (eos in allowed) == FA.is_complete(text.strip()), text
            assert row[k] in allowed


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), budget=st.integers(4, 20))
def test_random_scores_always_end_in_a_formula_within_the_budget(bpe_tokenizer, seed, budget):
    constraint = _bpe_constraint(bpe_tokenizer)
    proc = FormulaLogitsProcessor(constraint, 0, budget)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(1, 0, dtype=torch.long)
    eos = bpe_tokenizer.eos_token_id
    for _ in range(budget):
        scores = proc(ids, torch.randn(1, len(bpe_tokenizer), generator=gen) * 5)
        tok = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen)
        ids = torch.cat([ids, tok], dim=1)
        if tok.item() == eos:
            break
    assert ids[0, -1].item() == eos
    assert _parses(bpe_tokenizer.decode(ids[0, :-1].tolist()).strip())


_CONSTRAINTS: dict = {}


def _bpe_constraint(tok):
    if "bpe" not in _CONSTRAINTS:
        _CONSTRAINTS["bpe"] = FormulaConstraint(TokenSurfaces.build(tok), ATOMS, tok.eos_token_id)
    return _CONSTRAINTS["bpe"]


def test_budget_and_conflict_errors(bpe_tokenizer):
    constraint = _bpe_constraint(bpe_tokenizer)
    with pytest.raises(ValueError, match="max_tokens must be"):
        FormulaLogitsProcessor(constraint, 0, 1)
    proc = FormulaLogitsProcessor(constraint, 0, 8)
    from planners.constrained import ConstraintConflictError

    with pytest.raises(ConstraintConflictError, match="banned every token"):
        proc(torch.zeros(1, 0, dtype=torch.long),
             torch.full((1, len(bpe_tokenizer)), float("-inf")))


def test_untrained_translator_votes_lose_no_sample():
    tr = Translator.load(SHIPPED)
    torch.manual_seed(0)
    untrained = Translator(tiny_gpt2(len(tr.tokenizer), seed=7), tr.tokenizer, k=6)
    untrained.model.generation_config.eos_token_id = tr.tokenizer.eos_token_id
    d = DroneNav("museum")
    v = untrained.translate("visit the studio, never the archive.", d)
    assert v.dropped == 0 and sum(c for _, c in v.votes) == 6
    assert all(LTLf(s).atoms <= d.atoms for s in v.samples)
    free = Translator(untrained.model, tr.tokenizer, k=6, constrained=False)
    assert free.translate("visit the studio, never the archive.", d).dropped > 0
