import json

import pytest

from envs.symbolic import DroneNav, generate_tasks
from experiments.eval_planner import summarize
from planners.check import ProductGraph, check_plan, spec_dfa
from planners.lm_training import PlannerLMConfig, build_corpus
from planners.plan_text import StepTrie, encode, format_prompt, parse_plan
from planners.selp import selp_decode


def test_tokenizers_have_real_lm_shapes(bpe_tokenizer, unigram_tokenizer):
    for tok, model_type in ((bpe_tokenizer, "BPE"), (unigram_tokenizer, "Unigram")):
        spec = json.loads(tok.backend_tokenizer.to_str())
        assert spec["model"]["type"] == model_type
        assert 32000 <= len(tok) <= 50000 and tok.eos_token_id is not None
    assert bpe_tokenizer.backend_tokenizer.pre_tokenizer.__class__.__name__ == "ByteLevel"


def test_corpus_mixes_optimal_and_imperfect_plans():
    corpus = build_corpus("drone_nav", 60, imperfect=0.5, seed=0)
    tasks = generate_tasks("drone_nav", 60, seed=0)
    verdicts = []
    for (prompt, plan), task in zip(corpus, tasks, strict=True):
        assert prompt == format_prompt(task.domain.describe(task.initial_state), task.instruction)
        c = check_plan(task.domain, parse_plan(plan), task.ltl, task.initial_state)
        verdicts.append(c.safe)
    assert 0.3 < sum(verdicts) / len(verdicts) < 0.95  # some plans break the spec on purpose
    assert all(p for _, p in build_corpus("blocks_world", 5, imperfect=0.0, seed=1))


def test_config_validation():
    with pytest.raises(ValueError, match="imperfect"):
        PlannerLMConfig(imperfect=1.5)
    with pytest.raises(ValueError, match="n_embd"):
        PlannerLMConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="steps"):
        PlannerLMConfig(steps=0)


def test_wilson_and_summary():
    assert summarize([])["safe"]["ci95"] == (0.0, 1.0)
    rows = [{"safe": True, "success": True, "valid": True, "efficiency": 0.5, "new_tokens": 10,
             "seconds": 1.0, "mask_us_per_token": 20.0, "retries": None},
            {"safe": False, "success": True, "valid": True, "efficiency": None,
             "new_tokens": 10, "seconds": 1.0, "mask_us_per_token": 40.0, "retries": None}]
    s = summarize(rows)
    assert s["safe"]["rate"] == 0.5 and s["success"]["k"] == 2 and s["efficiency"] == 0.5
    assert s["tokens_per_s"] == 10 and s["mask_us_per_token"] == 30.0


def test_selp_baseline_bans_and_retries(bpe_tokenizer, gpt2_bpe):
    d, ltl = DroneNav("office"), "F(cafe) & G(!reception)"
    graph = ProductGraph(d, spec_dfa(d, ltl), "lobby")
    trie = StepTrie.build(bpe_tokenizer, d.steps())
    ids = encode(bpe_tokenizer, format_prompt(d.describe("lobby"), "go to the cafe"))
    steps, stats = selp_decode(gpt2_bpe, ids, trie, graph, bpe_tokenizer.eos_token_id,
                               max_steps=6, max_forwards=300)
    run = d.execute("lobby", steps)
    assert run.valid and "fly_to(reception)" not in steps and len(steps) <= 6
    assert stats["forwards"] <= 300 and stats["tokens"] >= stats["forwards"] - 1
    assert stats["stop"] in ("eos", "budget", "dead_end")


def test_exact_mcnemar_and_pairing():
    from experiments.eval_planner import paired

    rows = [{"task": t, "method": m, "safe": m == "constrained" or t == 0}
            for t in range(4) for m in ("constrained", "unconstrained")]
    assert paired(rows, "constrained", "unconstrained", "safe") == \
        {"only_constrained": 3, "only_unconstrained": 0, "p": pytest.approx(0.25)}


def test_train_nl2ltl_cli_writes_a_translator_that_loads(tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import build_app
    from planners.nl2ltl import Translator

    res = CliRunner().invoke(build_app(), ["train-nl2ltl", "--out", str(tmp_path / "t"),
                                           "--pairs", "20", "--steps", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{"):])["parameters"] > 0
    Translator.load(tmp_path / "t")
