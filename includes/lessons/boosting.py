"""Gradient boosting from the inside, and XGBoost's feature importances with names (ML11).

- :func:`boosted_trees` is gradient boosting for the squared error written out in NumPy and
  scikit-learn trees: start from the mean, then fit each small tree to the residuals of the
  trees before it and add it scaled by the learning rate. It has the fit-and-predict shape of
  :mod:`includes.lessons.forests`, so :func:`includes.lessons.forests.bias_variance` measures its
  bias and variance next to a single tree and bagged trees.
- :func:`gain_table` turns an XGBoost booster's ``get_score`` (keys ``f0``, ``f1``, ... when the
  model was trained on a vector column) into a table with the feature names that
  :func:`includes.lessons.trees.feature_attributes` reads from the vector's metadata, sorted
  and rounded so it prints the same on every run.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from includes.lessons.forests import FitPredict


def boosted_trees(depth: int, n_rounds: int, learning_rate: float) -> FitPredict:
    """Gradient-boosted regression trees of ``max_depth=depth`` (squared error) as a
    fit-and-predict function: ``F_0`` is the mean label; round ``m`` fits a tree ``h_m`` to the
    residuals ``y - F_{m-1}`` (the negative gradient of ``(y - F)^2 / 2``) and sets
    ``F_m = F_{m-1} + learning_rate * h_m``. Inputs are one feature (1-D arrays)."""
    from sklearn.tree import DecisionTreeRegressor

    if n_rounds < 0 or not 0 < learning_rate <= 1:
        raise ValueError(f"need n_rounds >= 0 and 0 < learning_rate <= 1, got {n_rounds}, {learning_rate}")

    def fit_predict(x_train, y_train, x_test, rng):
        x_fit, x_new = x_train.reshape(-1, 1), x_test.reshape(-1, 1)
        fitted = np.full(len(x_train), y_train.mean())
        predicted = np.full(len(x_test), y_train.mean())
        for _ in range(n_rounds):
            tree = DecisionTreeRegressor(max_depth=depth, random_state=int(rng.integers(2**31)))
            tree.fit(x_fit, y_train - fitted)
            fitted += learning_rate * tree.predict(x_fit)
            predicted += learning_rate * tree.predict(x_new)
        return predicted

    return fit_predict


def gain_table(scores: dict, names: Sequence[str], digits: int = 4, top: int | None = None):
    """A pandas table ``feature | gain | share`` of an XGBoost ``get_score(importance_type="gain")``
    result: keys ``f<index>`` are mapped to ``names[index]`` (other keys are kept as they are),
    ``share`` is the gain as a fraction of the total over all features, largest first, ties by
    name, rounded to ``digits``. Features the booster never split on do not appear."""
    import pandas as pd

    rows = []
    for key, value in scores.items():
        name = key
        if key.startswith("f") and key[1:].isdigit():
            index = int(key[1:])
            if index >= len(names):
                raise ValueError(f"score for {key} but only {len(names)} names")
            name = names[index]
        rows.append((name, float(value)))
    total = sum(value for _, value in rows) or 1.0
    rows = [(name, value, value / total) for name, value in rows]
    rows.sort(key=lambda row: (-row[1], row[0]))
    table = pd.DataFrame(rows[:top] if top is not None else rows, columns=["feature", "gain", "share"])
    return table.round({"gain": digits, "share": digits})
