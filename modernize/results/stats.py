"""The statistics every results table uses, in one place: one significance level, the paired and Welch t-tests
(scipy.stats), the 95% t-interval of per-seed differences, Pearson's r and its seed bootstrap.

Seeds pair runs: a roadmap step and its predecessor, or a run with and without a delta, start from the same seed,
so their per-seed differences remove the seed's share of the noise (a paired test). Where two rows share fewer than
MIN_SEEDS seeds, rows are compared by Welch's test (unequal variances).

No test, and no interval, is reported from fewer than MIN_SEEDS seeds, or from differences (or values) without any
variance: two seeds that happen to differ by the same +4.69 are not evidence of anything, yet a t-test over them
gives p = 0 and an interval of zero width. Every table (the roadmap, fidelity, the kernel trend, the ablation,
compare) takes its tests from here, so the rule holds in all of them: their cells stay empty.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence

SIGNIFICANCE_LEVEL = 0.05  # the tests' two-sided level, and 1 - the intervals' confidence (95%)
MIN_SEEDS = 3  # the fewest seeds (per side, or paired) a test or an interval is reported from
NO_SPREAD = 1e-6  # top-1 points: a standard deviation at most this is none
BOOTSTRAP_SAMPLES = 2000

PerSeed = Mapping  # {seed: top-1}


def paired(a: PerSeed, b: PerSeed) -> list[float]:
    """Per-seed differences a - b over the seeds both have, in seed order."""
    return [a[s] - b[s] for s in common_seeds(a, b)]


def common_seeds(*per_seed: PerSeed) -> list:
    return sorted(set.intersection(*(set(p) for p in per_seed)), key=str) if per_seed else []


def paired_p_value(a: PerSeed, b: PerSeed) -> float | None:
    """Two-sided paired t-test (scipy's ttest_rel) of a against b over their common seeds; None with fewer than
    MIN_SEEDS of them or per-seed differences without variance."""
    seeds = common_seeds(a, b)
    if not testable(paired(a, b)):
        return None
    from scipy import stats

    return float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test (scipy's ttest_ind, unequal variances); None with fewer than MIN_SEEDS seeds on a side
    or where neither side varies."""
    if len(a) < MIN_SEEDS or len(b) < MIN_SEEDS or not (testable(a) or testable(b)):
        return None
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def testable(values: Sequence[float]) -> bool:
    """Enough values (MIN_SEEDS) with some variance to test or to bound their mean. A spread below NO_SPREAD top-1
    points is float rounding (80.7 - 80.3 and 80.9 - 80.5 differ in the 15th digit), not variance."""
    return len(values) >= MIN_SEEDS and statistics.pstdev(values) > NO_SPREAD


def is_significant(p: float | None) -> bool | None:
    return None if p is None else p < SIGNIFICANCE_LEVEL


def interval(diffs: Sequence[float]) -> tuple[float, float, float] | None:
    """(mean, low, high): the 95% t-interval of the mean difference (low and high NaN where the differences are not
    testable: fewer than MIN_SEEDS, or no variance); None without any."""
    if not diffs:
        return None
    mean = statistics.mean(diffs)
    if not testable(diffs):
        return mean, math.nan, math.nan
    from scipy import stats

    half = stats.t.ppf(1 - SIGNIFICANCE_LEVEL / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < 3 or statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return None
    return statistics.correlation(x, y)


def bootstrap_interval(statistic: Callable[[list], float | None], seeds: Sequence, *, samples: int = BOOTSTRAP_SAMPLES,
                       seed: int = 0) -> tuple[float | None, float | None]:
    """The percentile interval (at the significance level) of `statistic` over resamplings of `seeds` with
    replacement; (None, None) where no resampling gives a value."""
    rng = random.Random(seed)
    values = []
    for _ in range(samples):
        value = statistic([rng.choice(seeds) for _ in seeds])
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    values.sort()
    return (values[int(SIGNIFICANCE_LEVEL / 2 * (len(values) - 1))],
            values[int((1 - SIGNIFICANCE_LEVEL / 2) * (len(values) - 1))])
