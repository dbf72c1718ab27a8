"""The statistics every results table uses, in one place: one significance level, the paired and Welch t-tests
(scipy.stats), the 95% t-interval of per-seed differences, Pearson's r and its seed bootstrap.

Seeds pair runs: a roadmap step and its predecessor, or a run with and without a delta, start from the same seed,
so their per-seed differences remove the seed's share of the noise (a paired test). Where two rows share fewer than
two seeds, rows are compared by Welch's test (unequal variances). Zero variance, which scipy answers with NaN, is
decided here: identical values give p = 1, a constant non-zero difference p = 0.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence

SIGNIFICANCE_LEVEL = 0.05  # the tests' two-sided level, and 1 - the intervals' confidence (95%)
BOOTSTRAP_SAMPLES = 2000

PerSeed = Mapping  # {seed: top-1}


def paired(a: PerSeed, b: PerSeed) -> list[float]:
    """Per-seed differences a - b over the seeds both have, in seed order."""
    return [a[s] - b[s] for s in common_seeds(a, b)]


def common_seeds(*per_seed: PerSeed) -> list:
    return sorted(set.intersection(*(set(p) for p in per_seed)), key=str) if per_seed else []


def paired_p_value(a: PerSeed, b: PerSeed) -> float | None:
    """Two-sided paired t-test (scipy's ttest_rel) of a against b over their common seeds; None with fewer than
    two."""
    seeds = common_seeds(a, b)
    if len(seeds) < 2:
        return None
    diffs = paired(a, b)
    if statistics.pstdev(diffs) == 0:
        return 0.0 if diffs[0] != 0 else 1.0
    from scipy import stats

    return float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test (scipy's ttest_ind, unequal variances); None with fewer than two seeds on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        return 0.0 if statistics.mean(a) != statistics.mean(b) else 1.0
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def is_significant(p: float | None) -> bool | None:
    return None if p is None else p < SIGNIFICANCE_LEVEL


def interval(diffs: Sequence[float]) -> tuple[float, float, float] | None:
    """(mean, low, high): the 95% t-interval of the mean difference (low and high NaN with one seed); None
    without any."""
    if not diffs:
        return None
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
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
