"""Success-rate statistics: Wilson score intervals and McNemar's paired test.

Usage: ``wilson_interval(81, 263)`` -> ``(0.2553, 0.3662)``; ``mcnemar(a, b).p_value``

Both follow the textbook definitions: the Wilson score interval without continuity correction
(Newcombe 1998, method 3) and McNemar's test conditioned on the discordant pairs, exact
two-sided binomial or its mid-p version (Fagerland, Lydersen & Laake 2013).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Args:
        successes: Number of successes, ``0 <= successes <= n``.
        n: Number of trials, ``n >= 1``.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(low, high)`` as fractions in [0, 1].

    Raises:
        ValueError: If the counts or the confidence level are out of range.
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need n >= 1 and 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # Exact ends: the interval includes 0 (or 1) exactly when nothing (everything) succeeded.
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired binary outcomes.

    Attributes:
        n: Number of pairs.
        only_a: Pairs where A succeeded and B failed.
        only_b: Pairs where B succeeded and A failed.
        p_value: Two-sided p-value (1.0 when there are no discordant pairs).
        method: ``"exact"`` or ``"midp"``.
    """

    n: int
    only_a: int
    only_b: int
    p_value: float
    method: str


def _binom_half_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exact in rational arithmetic then rounded."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def mcnemar_counts(only_a: int, only_b: int, *, method: str = "midp") -> float:
    """Two-sided McNemar p-value from the discordant counts.

    Args:
        only_a: Pairs where only A succeeded.
        only_b: Pairs where only B succeeded.
        method: ``"exact"`` (conditional binomial test) or ``"midp"`` (exact minus half the
            probability of the observed count; less conservative, recommended by Fagerland et
            al. 2013).

    Returns:
        The p-value in [0, 1].
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got only_a={only_a}, only_b={only_b}")
    if method not in ("exact", "midp"):
        raise ValueError(f"method must be 'exact' or 'midp', got {method!r}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    p = 2 * _binom_half_cdf(k, n)
    if method == "midp":
        p -= math.comb(n, k) / 2**n
    return min(1.0, p)


def mcnemar(a: Sequence[bool], b: Sequence[bool], *, method: str = "midp") -> McNemarResult:
    """McNemar's test on two policies' outcomes over the same episodes (same seeds, same order).

    Args:
        a: Success flags of policy A.
        b: Success flags of policy B, paired element-wise with ``a``.
        method: ``"exact"`` or ``"midp"`` (see :func:`mcnemar_counts`).

    Raises:
        ValueError: If the sequences differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"a and b must be non-empty and paired, got lengths {len(a)}, {len(b)}")
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b, strict=True))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b, strict=True))
    return McNemarResult(n=len(a), only_a=only_a, only_b=only_b,
                         p_value=mcnemar_counts(only_a, only_b, method=method), method=method)


def pair_by_seed(a: Mapping[int, bool], b: Mapping[int, bool]) -> tuple[list[bool], list[bool]]:
    """Align two ``{seed: success}`` maps on their shared seeds (sorted).

    Raises:
        ValueError: If the maps share no seed.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("the two runs share no seed; a paired test needs the same seeds")
    return [bool(a[s]) for s in seeds], [bool(b[s]) for s in seeds]
