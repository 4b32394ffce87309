"""Random forests from the inside: the bias-variance decomposition measured, bootstrap coverage,
and the number of features a Spark forest considers per split (ML08, ML08L).

- :func:`bias_variance` draws many training sets from a known curve plus noise, fits a model to
  each and measures, on a fixed grid of inputs, the squared bias, the variance and the noise of
  the model's predictions, together with the expected squared error on fresh labels, so that
  ``error = variance + bias^2 + noise`` can be checked with real numbers rather than believed.
- :func:`tree_model` and :func:`bagged_trees` are the models it compares: one regression tree of
  a given depth, and the average of trees fitted to bootstrap samples (bagging).
- :func:`bootstrap_indices`, :func:`left_out_fraction` and :func:`coverage_table`: a bootstrap
  sample leaves out about ``(1 - 1/N)^N`` of the rows, which tends to ``1/e``.
- :func:`features_per_split` is Spark's rule for ``featureSubsetStrategy`` (``"auto"`` included).

Everything is seeded through a ``numpy.random.Generator``, so the tables print the same on
every run.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def true_curve(x: np.ndarray) -> np.ndarray:
    """The known function behind the simulated data: one period of a sine on [0, 1]."""
    return np.sin(2 * np.pi * x)


def bootstrap_indices(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` row numbers drawn uniformly with replacement from ``0 .. n-1``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return rng.integers(0, n, size=n)


def left_out_fraction(n: int, rng: np.random.Generator) -> float:
    """The fraction of ``n`` rows that one bootstrap sample of size ``n`` does not contain."""
    return 1.0 - np.unique(bootstrap_indices(n, rng)).size / n


def coverage_table(sizes: Iterable[int], repeats: int = 200, seed: int = 42):
    """For each training-set size ``N``: the probability ``(1 - 1/N)^N`` that a row is left out
    of a bootstrap sample, and the left-out fraction measured over ``repeats`` samples (mean),
    rounded to 4 places; ``1/e`` is the limit."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        measured = np.mean([left_out_fraction(n, rng) for _ in range(repeats)])
        rows.append((n, round((1 - 1 / n) ** n, 4), round(float(measured), 4)))
    return pd.DataFrame(rows, columns=["N", "(1 - 1/N)^N", "left out, measured"])


def tree_model(depth: int) -> FitPredict:
    """A regression tree of ``max_depth=depth`` (scikit-learn) as a fit-and-predict function."""
    from sklearn.tree import DecisionTreeRegressor

    def fit_predict(x_train, y_train, x_test, rng):
        tree = DecisionTreeRegressor(max_depth=depth, random_state=int(rng.integers(2**31)))
        return tree.fit(x_train.reshape(-1, 1), y_train).predict(x_test.reshape(-1, 1))

    return fit_predict


def bagged_trees(depth: int, n_trees: int) -> FitPredict:
    """The mean prediction of ``n_trees`` trees of ``max_depth=depth``, each fitted to its own
    bootstrap sample of the training set (bagging)."""
    single = tree_model(depth)

    def fit_predict(x_train, y_train, x_test, rng):
        total = np.zeros(len(x_test))
        for _ in range(n_trees):
            rows = bootstrap_indices(len(x_train), rng)
            total += single(x_train[rows], y_train[rows], x_test, rng)
        return total / n_trees

    return fit_predict


def bias_variance(fit_predict: FitPredict, n_sets: int = 100, n_train: int = 50, noise_sd: float = 0.3,
                  n_test: int = 100, seed: int = 42) -> dict[str, float]:
    """Measure the decomposition of a model's expected squared error.

    ``n_sets`` training sets of ``n_train`` points (``x`` uniform on [0, 1], ``y`` =
    :func:`true_curve` + Gaussian noise of standard deviation ``noise_sd``) are drawn; the model
    is fitted to each and predicts the ``n_test`` grid points. Averaged over the grid:

    - ``bias2``: squared distance between the mean prediction and the true curve;
    - ``variance``: spread of the predictions around their mean, across training sets;
    - ``noise``: the variance of the noise, ``noise_sd ** 2`` (no model can remove it);
    - ``error``: the measured mean squared error against fresh noisy labels at the grid points,
      which matches ``bias2 + variance + noise`` up to sampling error.
    """
    rng = np.random.default_rng(seed)
    x_test = (np.arange(n_test) + 0.5) / n_test
    truth = true_curve(x_test)
    predictions = np.empty((n_sets, n_test))
    squared_errors = np.empty((n_sets, n_test))
    for i in range(n_sets):
        x_train = rng.uniform(0.0, 1.0, n_train)
        y_train = true_curve(x_train) + rng.normal(0.0, noise_sd, n_train)
        predictions[i] = fit_predict(x_train, y_train, x_test, rng)
        y_new = truth + rng.normal(0.0, noise_sd, n_test)
        squared_errors[i] = (y_new - predictions[i]) ** 2
    mean_prediction = predictions.mean(axis=0)
    return {
        "bias2": float(np.mean((mean_prediction - truth) ** 2)),
        "variance": float(np.mean(predictions.var(axis=0))),
        "noise": noise_sd ** 2,
        "error": float(squared_errors.mean()),
    }


_STRATEGIES = ("auto", "all", "onethird", "sqrt", "log2")


def features_per_split(strategy: str, num_features: int, num_trees: int, classification: bool) -> int:
    """How many of ``num_features`` features a Spark tree draws as candidates at each node.

    ``"auto"`` means ``"all"`` for a single tree, ``"sqrt"`` for a classification forest and
    ``"onethird"`` for a regression forest; ``"sqrt"``, ``"log2"`` and ``"onethird"`` round up;
    a number ``n`` in (0, 1] is a fraction of the features, a whole number above 1 a count.
    """
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    if strategy == "auto":
        strategy = "all" if num_trees == 1 else ("sqrt" if classification else "onethird")
    if strategy == "all":
        return num_features
    if strategy == "onethird":
        return math.ceil(num_features / 3)
    if strategy == "sqrt":
        return math.ceil(math.sqrt(num_features))
    if strategy == "log2":
        return max(1, math.ceil(math.log2(num_features)))
    try:
        value = float(strategy)
    except ValueError:
        raise ValueError(f"unknown featureSubsetStrategy {strategy!r} "
                         f"(one of {', '.join(_STRATEGIES)} or a number)") from None
    if 0 < value <= 1:
        return math.ceil(value * num_features)
    if value > 1 and value == int(value):
        return min(int(value), num_features)
    raise ValueError(f"featureSubsetStrategy {strategy!r}: a fraction in (0, 1] or a whole number > 1")
