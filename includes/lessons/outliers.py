"""Outlier detection from the inside: an isolation path by hand, the isolation-forest score,
planted outliers to measure against, and two classic statistical rules (MLE04).

- :func:`isolate` cuts a sample of points with random axis-parallel splits (a random feature, a
  split value uniform between that feature's minimum and maximum in the current region) and
  keeps the side holding one chosen point, until that point is alone. The number of splits is
  the point's *path length* in one random isolation tree. :func:`mean_path_length` averages it
  over many seeded trees, each grown on a fresh subsample, as an isolation forest does.
- :func:`average_path_length` is the normaliser ``c(n) = 2 H(n-1) - 2 (n-1) / n`` (the average
  path length of an unsuccessful search in a binary search tree of ``n`` keys), with the
  harmonic number ``H(i)`` approximated by ``ln(i) + 0.5772156649`` (Euler's constant);
  :func:`anomaly_score` is ``s(x, n) = 2 ** (-E[h(x)] / c(n))``: close to 1 for points that are
  isolated much faster than average, 0.5 for an average point, lower for points deep inside a
  dense region.
- :func:`planted_data` draws Gaussian clusters of inliers and a known set of outliers scattered
  uniformly over the region but away from every cluster, with the labels kept, so that a
  detector's precision and recall can be measured against the truth.
- :func:`zscore_outliers` and :func:`iqr_outliers` flag a row when any one feature is extreme on
  its own (more than 3 standard deviations from the mean; outside the Tukey fences
  ``Q1 - 1.5 IQR`` and ``Q3 + 1.5 IQR``).

Everything random takes a seed or a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EULER_GAMMA = 0.5772156649


@dataclass
class IsolationPath:
    """One isolation of one point: the splits made, as ``(feature, value)``, and after each
    split the box ``(lower corner, upper corner)`` of the region that still holds the point
    (``boxes[0]`` is the bounding box of the sample, before any split)."""

    splits: list[tuple[int, float]] = field(default_factory=list)
    boxes: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def length(self) -> int:
        """The number of splits it took: the path length h(x)."""
        return len(self.splits)


def isolate(points: np.ndarray, index: int, rng: np.random.Generator, max_depth: int | None = None) -> IsolationPath:
    """Isolate ``points[index]`` from the other rows of ``points`` by random axis-parallel splits.

    Each step picks, uniformly, one of the features that still varies in the current region and
    a split value uniform between its minimum and maximum there, then keeps only the rows on the
    point's side. Stops when the point is alone, when the rest are exact copies of it (no feature
    varies), or after ``max_depth`` splits."""
    points = np.asarray(points, dtype=float)
    target = points[index]
    region = points
    lower, upper = points.min(axis=0), points.max(axis=0)
    path = IsolationPath(boxes=[(lower.copy(), upper.copy())])
    while len(region) > 1 and (max_depth is None or path.length < max_depth):
        low, high = region.min(axis=0), region.max(axis=0)
        varying = np.flatnonzero(high > low)
        if varying.size == 0:
            break
        feature = int(rng.choice(varying))
        value = float(rng.uniform(low[feature], high[feature]))
        if target[feature] < value:
            region = region[region[:, feature] < value]
            upper = upper.copy()
            upper[feature] = value
        else:
            region = region[region[:, feature] >= value]
            lower = lower.copy()
            lower[feature] = value
        path.splits.append((feature, value))
        path.boxes.append((lower, upper))
    return path


def mean_path_length(points: np.ndarray, index: int, n_trees: int = 50, sample_size: int = 256,
                     seed: int = 0) -> float:
    """The average path length of ``points[index]`` over ``n_trees`` random isolations, each on
    a fresh random subsample of ``sample_size - 1`` other rows plus the point itself (seeded)."""
    points = np.asarray(points, dtype=float)
    rng = np.random.default_rng(seed)
    others = np.delete(np.arange(len(points)), index)
    size = min(sample_size - 1, len(others))
    lengths = []
    for _ in range(n_trees):
        rows = np.concatenate([[index], rng.choice(others, size=size, replace=False)])
        lengths.append(isolate(points[rows], 0, rng).length)
    return float(np.mean(lengths))


def harmonic(i: float) -> float:
    """The harmonic number ``H(i) = 1 + 1/2 + ... + 1/i``, approximated by ``ln(i) + 0.5772156649``."""
    return math.log(i) + EULER_GAMMA


def average_path_length(n: int) -> float:
    """``c(n) = 2 H(n-1) - 2 (n-1) / n``, the expected path length of a point in a random
    isolation tree of ``n`` points: the normaliser of the score. ``c(1) = 0``; ``c(2) = 1``
    exactly (two points: one split), where the logarithm approximation of ``H(1)`` would be poor."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n == 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * harmonic(n - 1) - 2.0 * (n - 1) / n


def anomaly_score(mean_length: float | np.ndarray, n: int) -> float | np.ndarray:
    """``s(x, n) = 2 ** (-E[h(x)] / c(n))`` for an average path length ``E[h(x)]`` in trees grown
    on ``n`` points."""
    return np.power(2.0, -np.asarray(mean_length, dtype=float) / average_path_length(n))


def planted_data(n_inliers: int = 1000, n_outliers: int = 50, seed: int = 0,
                 centres: tuple[tuple[float, float], ...] = ((-4.0, -3.0), (4.0, -3.0), (0.0, 4.0)),
                 spread: float = 1.0, box: float = 14.0, min_distance: float = 4.0):
    """Inliers from Gaussian clusters (standard deviation ``spread``, equal shares around
    ``centres``) and ``n_outliers`` points uniform in the square ``[-box, box]^2``, redrawn until
    each lies at least ``min_distance`` standard deviations from every centre. Returns
    ``(points, is_outlier)`` in a seeded random order; ``is_outlier`` is a boolean array."""
    rng = np.random.default_rng(seed)
    centres_arr = np.asarray(centres, dtype=float)
    shares = np.full(len(centres_arr), n_inliers // len(centres_arr))
    shares[: n_inliers % len(centres_arr)] += 1
    inliers = np.vstack([rng.normal(c, spread, size=(m, centres_arr.shape[1])) for c, m in zip(centres_arr, shares)])
    outliers = np.empty((0, centres_arr.shape[1]))
    while len(outliers) < n_outliers:
        candidates = rng.uniform(-box, box, size=(n_outliers, centres_arr.shape[1]))
        distance = np.sqrt(((candidates[:, None, :] - centres_arr[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
        outliers = np.vstack([outliers, candidates[distance >= min_distance * spread]])[:n_outliers]
    points = np.vstack([inliers, outliers])
    labels = np.concatenate([np.zeros(len(inliers), dtype=bool), np.ones(n_outliers, dtype=bool)])
    order = rng.permutation(len(points))
    return points[order], labels[order]


def zscore_outliers(values: np.ndarray, threshold: float = 3.0) -> np.ndarray:
    """True for the rows where any column lies more than ``threshold`` standard deviations
    (population standard deviation) from that column's mean."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    std = values.std(axis=0)
    z = np.abs(values - values.mean(axis=0)) / np.where(std > 0, std, np.inf)
    return (z > threshold).any(axis=1)


def iqr_bounds(values: np.ndarray, k: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Tukey's fences per column: ``Q1 - k IQR`` and ``Q3 + k IQR`` (quartiles by linear
    interpolation, NumPy's default)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    q1, q3 = np.percentile(values, [25, 75], axis=0)
    return q1 - k * (q3 - q1), q3 + k * (q3 - q1)


def iqr_outliers(values: np.ndarray, k: float = 1.5) -> np.ndarray:
    """True for the rows where any column falls outside its fences (:func:`iqr_bounds`);
    a value exactly on a fence is not flagged."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    low, high = iqr_bounds(values, k)
    return ((values < low) | (values > high)).any(axis=1)
