"""includes/lessons/boosting.py: gradient boosting by hand, XGBoost gain importances with names."""

import numpy as np
import pytest

from includes.lessons import boosting, forests


def _data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    return x, forests.true_curve(x) + rng.normal(0, 0.3, n), rng


def test_zero_rounds_predict_the_mean_and_one_full_round_is_one_tree():
    x, y, rng = _data()
    x_test = np.linspace(0, 1, 11)
    assert np.allclose(boosting.boosted_trees(1, 0, 0.5)(x, y, x_test, rng), y.mean())
    # one round at learning rate 1: the mean plus a tree fitted to y - mean = a tree fitted to y
    one = boosting.boosted_trees(2, 1, 1.0)(x, y, x_test, np.random.default_rng(1))
    tree = forests.tree_model(2)(x, y, x_test, np.random.default_rng(1))
    assert np.allclose(one, tree)


def test_training_error_falls_round_after_round():
    x, y, _ = _data(seed=3)
    errors = [np.mean((y - boosting.boosted_trees(1, rounds, 0.3)(x, y, x, np.random.default_rng(0))) ** 2)
              for rounds in (0, 1, 5, 20, 80)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_boosting_stumps_removes_bias_that_bagging_keeps():
    bagged = forests.bias_variance(forests.bagged_trees(1, 10), n_sets=30, seed=5)
    boosted = forests.bias_variance(boosting.boosted_trees(1, 40, 0.3), n_sets=30, seed=5)
    assert boosted["bias2"] < bagged["bias2"] / 5


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        boosting.boosted_trees(1, 10, 0.0)
    with pytest.raises(ValueError):
        boosting.boosted_trees(1, -1, 0.1)


def test_gain_table_names_sorts_and_rounds():
    table = boosting.gain_table({"f2": 1.0, "f0": 3.123456, "f1": 1.0}, ["a", "b", "c"], digits=2)
    assert table["feature"].tolist() == ["a", "b", "c"]  # largest first, ties by name
    assert table["gain"].tolist() == [3.12, 1.0, 1.0]
    assert table["share"].sum() == pytest.approx(1.0, abs=0.02)  # rounded shares
    assert boosting.gain_table({"bedrooms": 2.0}, [])["feature"].tolist() == ["bedrooms"]  # named already
    with pytest.raises(ValueError):
        boosting.gain_table({"f5": 1.0}, ["a"])


def test_gain_table_of_a_real_booster():
    xgboost = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 1, (200, 3))
    label = 5 * features[:, 1] + rng.normal(0, 0.1, 200)  # only the second feature matters
    booster = xgboost.train({"max_depth": 2, "seed": 0, "nthread": 1}, xgboost.DMatrix(features, label=label),
                            num_boost_round=10)
    table = boosting.gain_table(booster.get_score(importance_type="gain"), ["noise_a", "signal", "noise_b"])
    assert table["feature"].iloc[0] == "signal"
    assert table["share"].iloc[0] > 0.5
