import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.stats import mcnemar, mcnemar_counts, pair_by_seed, wilson_interval


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II,
# method 3 (Wilson score interval without continuity correction).
@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_known_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_edges_and_symmetry():
    assert wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(3, 10)
    assert wilson_interval(7, 10) == pytest.approx((1 - high, 1 - low))
    assert wilson_interval(5, 10, confidence=0.99)[0] < wilson_interval(5, 10)[0]


@pytest.mark.parametrize(("k", "n", "conf"), [(-1, 5, 0.95), (6, 5, 0.95), (0, 0, 0.95),
                                              (1, 5, 1.0)])
def test_wilson_rejects_bad_input(k, n, conf):
    with pytest.raises(ValueError):
        wilson_interval(k, n, conf)


@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_scipy(kn):
    stats = pytest.importorskip("scipy.stats")
    k, n = kn
    ref = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_mcnemar_known_values():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: 1 vs 7 discordant pairs,
    # exact conditional p = 0.070, mid-p = 0.039.
    assert mcnemar_counts(1, 7, method="exact") == pytest.approx(18 / 256)
    assert mcnemar_counts(1, 7, method="midp") == pytest.approx(10 / 256)
    assert mcnemar_counts(7, 1, method="exact") == mcnemar_counts(1, 7, method="exact")
    assert mcnemar_counts(0, 0) == 1.0
    assert mcnemar_counts(5, 5, method="exact") == 1.0
    assert mcnemar_counts(0, 10, method="exact") == pytest.approx(2 / 1024)


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    stats = pytest.importorskip("scipy.stats")
    if b + c == 0:
        return
    ref = stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_counts(b, c, method="exact") == pytest.approx(ref, rel=1e-9)
    assert 0 <= mcnemar_counts(b, c) <= mcnemar_counts(b, c, method="exact")


def test_mcnemar_on_paired_outcomes():
    a = [True] * 7 + [False] * 1 + [True] * 10 + [False] * 2
    b = [False] * 7 + [True] * 1 + [True] * 10 + [False] * 2
    result = mcnemar(a, b, method="exact")
    assert (result.n, result.only_a, result.only_b) == (20, 7, 1)
    assert result.p_value == pytest.approx(18 / 256)
    with pytest.raises(ValueError, match="paired"):
        mcnemar([True], [True, False])
    with pytest.raises(ValueError, match="method"):
        mcnemar([True], [False], method="chi2")


def test_pair_by_seed():
    a, b = pair_by_seed({3: True, 1: False, 2: True}, {2: False, 3: True, 9: True})
    assert (a, b) == ([True, True], [False, True])
    with pytest.raises(ValueError, match="share no seed"):
        pair_by_seed({1: True}, {2: True})


def test_atomic_json_files_are_readable_like_any_other_file(tmp_path):
    import os

    from experiments.provenance import write_json_atomic

    mask = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644 and path.read_text().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left
