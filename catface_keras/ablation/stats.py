"""Mean, spread and paired 95 % t-intervals over seeds (NumPy only)."""

import math

import numpy as np

# Two-sided 95 % quantiles of Student's t, t_{0.975, df}, df = 1..30.
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
    2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
    2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
    2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)


def t_quantile_975(df):
    """t_{0.975} with `df` degrees of freedom (table to 30, then a Cornish-Fisher expansion)."""
    if df < 1:
        raise ValueError(f"`df` must be >= 1. Received: df={df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def summarize(values):
    """`{"mean", "std", "n"}` of finite values (std with ddof=1; NaN when undefined)."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], "float64")
    n = len(values)
    return {
        "mean": float(values.mean()) if n else math.nan,
        "std": float(values.std(ddof=1)) if n > 1 else math.nan,
        "n": n,
    }


def paired_interval(values, reference):
    """Mean paired difference `values - reference` (same seeds) and its 95 % t-interval.

    Args:
        values, reference: dicts seed -> metric; only seeds in both count.

    Returns:
        `{"diff", "low", "high", "n"}`, and with two seeds or more `std`, the
        differences' spread; the interval is NaN with fewer than two seeds, and
        [0, 0] when every difference is 0.
    """
    seeds = sorted(set(values) & set(reference))
    diffs = np.asarray([values[s] - reference[s] for s in seeds], "float64")
    diffs = diffs[np.isfinite(diffs)]
    n = len(diffs)
    if n == 0:
        return {"diff": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = float(diffs.mean())
    if n < 2:
        return {"diff": mean, "low": math.nan, "high": math.nan, "n": n}
    std = float(diffs.std(ddof=1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"diff": mean, "low": mean - half, "high": mean + half, "n": n, "std": std}


def seeds_for_width(std, width=0.02, max_seeds=10_000):
    """Seeds whose paired 95 % t-interval, with differences of spread `std`, is at most
    `width` wide: the smallest n >= 2 with 2 t_{0.975, n-1} std / sqrt(n) <= width.

    Returns:
        The count, or None when `std` is not finite or more than `max_seeds` are needed.
    """
    if not math.isfinite(std) or width <= 0:
        return None
    for n in range(2, max_seeds + 1):
        if 2 * t_quantile_975(n - 1) * std / math.sqrt(n) <= width:
            return n
    return None


def pairs_for_width(rate, width=0.02, z=1.959964):
    """Genuine pairs whose normal 95 % interval of a TAR near `rate` is at most `width`
    wide: the smallest n with 2 z sqrt(rate (1 - rate) / n) <= width. Counts the binomial
    spread of the genuine pairs alone (the threshold, from the impostors, adds its own).
    """
    if not 0.0 <= rate <= 1.0 or width <= 0:
        raise ValueError(f"`rate` must be in [0, 1] and `width` > 0. Received: rate={rate}, "
                         f"width={width}")
    return max(1, math.ceil((2 * z / width) ** 2 * rate * (1 - rate)))
