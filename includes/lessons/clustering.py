"""K-means written out step by step, so that every iteration can be looked at (MLE01).

- :func:`kmeans_by_hand` is Lloyd's algorithm as the slides state it: step 1 picks ``k`` random
  centroids (``k`` distinct data points, seeded, or a given start), then repeats step 2 (assign
  every point to its nearest centroid) and step 3 (move every centroid to the mean of its points)
  until the assignment no longer changes. It keeps the whole history: the centroids, the
  assignment and the within-cluster sum of squares (WCSS) of every iteration.
- :func:`assign` and :func:`wcss` are steps 2 and the cost on their own, for checking another
  implementation (Spark's ``trainingCost``) against the definition.
- :func:`sorted_centres` orders centres row by row so that two runs that found the same
  clusters under different cluster numbers compare equal.

The cost reported for iteration ``t`` is the WCSS of the centroids of iteration ``t`` with each
point assigned to its nearest one. Neither step can increase it (step 2 picks the nearest
centroid, step 3 the mean, which minimises the sum of squares of its points), so the sequence
never increases: a check on the implementation as much as a property of the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class KMeansRun:
    """The history of one k-means run: entry ``t`` of each list belongs to iteration ``t``
    (iteration 0 is the start). ``converged`` is False if ``max_iter`` stopped the run first."""

    centroids: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    converged: bool = False

    @property
    def iterations(self) -> int:
        """The number of centroid moves (step 3) the run made."""
        return len(self.centroids) - 1

    @property
    def final_centroids(self) -> np.ndarray:
        return self.centroids[-1]

    @property
    def final_labels(self) -> np.ndarray:
        return self.labels[-1]

    @property
    def final_cost(self) -> float:
        return self.costs[-1]


def squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The ``(n, k)`` matrix of squared Euclidean distances from each point to each centroid."""
    diff = points[:, None, :] - centroids[None, :, :]
    return np.einsum("nkd,nkd->nk", diff, diff)


def assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Step 2: the index of the nearest centroid for every point (the lowest index on a tie)."""
    return np.argmin(squared_distances(points, centroids), axis=1)


def wcss(points: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> float:
    """Within-cluster sum of squares: the squared distance of every point to the centroid it is
    assigned to, summed over all points."""
    diff = points - centroids[np.asarray(labels)]
    return float(np.sum(diff * diff))


def move_centroids(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Step 3: every centroid moves to the mean of its points; a centroid that lost all its
    points stays where it was."""
    moved = centroids.astype(float).copy()
    for j in range(len(centroids)):
        members = points[labels == j]
        if len(members):
            moved[j] = members.mean(axis=0)
    return moved


def random_start(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Step 1: ``k`` distinct data points drawn at random (seeded) as the first centroids."""
    if not 1 <= k <= len(points):
        raise ValueError(f"k must be between 1 and the number of points ({len(points)}), got {k}")
    rng = np.random.default_rng(seed)
    return points[rng.choice(len(points), size=k, replace=False)].astype(float)


def kmeans_by_hand(points: np.ndarray, k: int | None = None, seed: int = 0,
                   init: np.ndarray | None = None, max_iter: int = 100) -> KMeansRun:
    """Lloyd's k-means on ``points`` (``n x d``), from ``init`` if given, else from
    :func:`random_start` with ``k`` and ``seed``. Stops when an iteration leaves the assignment
    unchanged (then the centroids cannot move either) or after ``max_iter`` moves."""
    points = np.asarray(points, dtype=float)
    if init is None:
        if k is None:
            raise ValueError("give k (with a seed) or init")
        centroids = random_start(points, k, seed)
    else:
        centroids = np.asarray(init, dtype=float).copy()
    run = KMeansRun()
    labels = assign(points, centroids)
    run.centroids.append(centroids)
    run.labels.append(labels)
    run.costs.append(wcss(points, centroids, labels))
    for _ in range(max_iter):
        centroids = move_centroids(points, labels, centroids)
        new_labels = assign(points, centroids)
        run.centroids.append(centroids)
        run.labels.append(new_labels)
        run.costs.append(wcss(points, centroids, new_labels))
        if np.array_equal(new_labels, labels):
            run.converged = True
            break
        labels = new_labels
    return run


def sorted_centres(centres: np.ndarray, decimals: int = 2) -> np.ndarray:
    """Centres rounded to ``decimals`` and sorted row by row (first coordinate, then the next),
    so that the same clusters found under different numbering compare equal."""
    rounded = np.round(np.asarray(centres, dtype=float), decimals)
    order = np.lexsort(rounded.T[::-1])
    return rounded[order]
