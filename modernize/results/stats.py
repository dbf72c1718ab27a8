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
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class Change:
    """One row's top-1 change against another's, as every table reports it (change_between)."""

    change: float | None  # the mean per-seed difference over the common seeds (else the difference of the means)
    low: float | None  # its 95% t-interval; None where it is not testable
    high: float | None
    p: float | None  # two-sided: paired over the common seeds, else Welch's; None where not testable
    significant: bool | None
    n: int  # the common seeds (0: unpaired)

    def as_dict(self) -> dict:
        return asdict(self)


NO_CHANGE = Change(change=None, low=None, high=None, p=None, significant=None, n=0)


def change_between(a: PerSeed, b: PerSeed) -> Change:
    """a's change against b (per-seed top-1s): paired by seed where they share MIN_SEEDS seeds (a step and its
    predecessor, a run with and without a delta, start from the same seed); else, where each has MIN_SEEDS seeds of
    its own, the difference of the means with Welch's test; else the mean difference over the seeds they share (or of
    the means), untested. NO_CHANGE where either has no seed. The one comparison every table makes (the roadmap,
    fidelity, the kernel trend, the ablation, compare), so one rule holds in all of them: no test and no interval
    from fewer than MIN_SEEDS seeds or without variance."""
    if not a or not b:
        return NO_CHANGE
    diffs = paired(a, b)
    if len(diffs) < MIN_SEEDS and len(a) >= MIN_SEEDS and len(b) >= MIN_SEEDS:
        p = welch_p_value(list(a.values()), list(b.values()))
        return Change(change=statistics.mean(a.values()) - statistics.mean(b.values()), low=None, high=None, p=p,
                      significant=is_significant(p), n=0)
    if not diffs:
        return Change(change=statistics.mean(a.values()) - statistics.mean(b.values()), low=None, high=None, p=None,
                      significant=None, n=0)
    mean, low, high = interval(diffs)
    p = paired_p_value(a, b)
    return Change(change=mean, low=None if math.isnan(low) else low, high=None if math.isnan(high) else high, p=p,
                  significant=is_significant(p), n=len(diffs))


def paper_change(paper_a: float | None, paper_b: float | None) -> float | None:
    """The paper's change, rounded to its own precision (its numbers have one decimal: 80.6 - 79.9 is 0.7, not
    0.6999999999999886), so that a flat step is exactly 0."""
    return None if paper_a is None or paper_b is None else round(paper_a - paper_b, 2)


def agrees(ours: float | None, paper: float | None) -> bool | None:
    """Whether our change has the paper's direction: None where either is missing or the paper's is flat (0); a
    change of exactly zero has no direction, so it agrees with none."""
    if ours is None or paper is None or paper == 0:
        return None
    return ours != 0 and math.copysign(1, ours) == math.copysign(1, paper)


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
