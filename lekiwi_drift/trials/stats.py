"""Statistics for success tallies: Wilson score intervals and Fisher's exact test, in plain Python.

SciPy is not a dependency of the project, and both are a few lines: the Wilson interval is closed form,
and Fisher's test sums hypergeometric probabilities over every 2x2 table with the observed margins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for a binomial proportion. Unlike the normal (Wald) interval it stays inside
    [0, 1] and is honest at 0/n and n/n, which is where small robot trials live."""
    if n <= 0:
        return Interval(0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not in 0..{n}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp the rounding error at the ends (0/n gives exactly 0 in exact arithmetic).
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p-value for the table [[a, b], [c, d]] (rows: groups; columns: success,
    failure). Two-sided as in R and SciPy: the sum of the probabilities of every table with the same
    margins that is no more likely than the observed one (with a small relative tolerance, so tables
    tied in exact arithmetic are not lost to floating-point noise)."""
    if min(a, b, c, d) < 0:
        raise ValueError("table entries must be non-negative")
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2
    lo, hi = max(0, col1 - row2), min(row1, col1)
    if hi == lo:
        return 1.0
    log_denom = _log_comb(n, col1)

    def prob(x: int) -> float:
        return math.exp(_log_comb(row1, x) + _log_comb(row2, col1 - x) - log_denom)

    observed = prob(a)
    limit = observed * (1.0 + 1e-7)
    total = sum(p for p in (prob(x) for x in range(lo, hi + 1)) if p <= limit)
    return min(1.0, total)


def compare(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Fisher p-value for two policies' tallies (successes out of n each)."""
    return fisher_exact(successes_a, n_a - successes_a, successes_b, n_b - successes_b)
