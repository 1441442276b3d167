"""Mask overhead at a 50k vocabulary: cached LTL masks beside SELP's per-token trie mask."""

import pytest


@pytest.mark.slow
def test_mask_overhead_benchmark(bpe_tokenizer, gpt2_bpe):
    from envs.symbolic import generate_tasks
    from experiments.eval_planner import mask_benchmark
    from planners.planner import Planner

    tasks = generate_tasks("drone_nav", 5, seed=0)
    planner = Planner(gpt2_bpe, bpe_tokenizer, tasks[0].domain)
    b = mask_benchmark(planner, tasks, vocab=50257)
    print(f"\nmask µs/token at V=50257, wall (thread CPU): LTL warm {b['ltl_warm_us']:.1f} "
          f"({b['ltl_warm_cpu_us']:.1f}), cold {b['ltl_cold_us']:.1f}; SELP per-token trie "
          f"mask {b['selp_us']:.1f} ({b['selp_cpu_us']:.1f})")
    assert b["ltl_warm_us"] > 0 and b["selp_us"] > 0  # timings are reported, never asserted
