"""includes/lessons/forests.py: bias-variance measurement, bootstrap coverage, features per split."""

import math

import numpy as np
import pytest

from includes.lessons import forests


def test_bootstrap_indices_draw_with_replacement():
    rows = forests.bootstrap_indices(1000, np.random.default_rng(0))
    assert rows.shape == (1000,) and rows.min() >= 0 and rows.max() < 1000
    assert np.unique(rows).size < 1000  # some rows twice, so some left out
    with pytest.raises(ValueError):
        forests.bootstrap_indices(0, np.random.default_rng(0))


def test_left_out_fraction_tends_to_one_over_e():
    table = forests.coverage_table([10, 1000, 20000], repeats=50, seed=1)
    assert table["N"].tolist() == [10, 1000, 20000]
    assert table["(1 - 1/N)^N"].tolist() == [round(0.9 ** 10, 4), round(0.999 ** 1000, 4),
                                            round((1 - 1 / 20000) ** 20000, 4)]
    assert abs(table["left out, measured"].iloc[-1] - 1 / math.e) < 0.005
    assert table.equals(forests.coverage_table([10, 1000, 20000], repeats=50, seed=1))  # seeded


def test_decomposition_adds_up():
    for model in (lambda x, y, xt, rng: np.full(len(xt), y.mean()), forests.tree_model(3)):
        parts = forests.bias_variance(model, n_sets=60, n_train=40, noise_sd=0.3, seed=3)
        assert parts["noise"] == pytest.approx(0.09)
        total = parts["bias2"] + parts["variance"] + parts["noise"]
        assert parts["error"] == pytest.approx(total, rel=0.08)


def test_constant_model_is_all_bias_and_deep_tree_mostly_variance():
    constant = forests.bias_variance(lambda x, y, xt, rng: np.full(len(xt), y.mean()), n_sets=50, seed=0)
    assert constant["bias2"] == pytest.approx(0.5, abs=0.05)  # mean of sin^2 over a period
    assert constant["variance"] < 0.02  # the variance of a mean of 50 points: (0.5 + 0.09) / 50
    deep = forests.bias_variance(forests.tree_model(8), n_sets=50, seed=0)
    assert deep["bias2"] < 0.01 and deep["variance"] > 0.05


def test_bagging_lowers_the_variance_of_deep_trees():
    single = forests.bias_variance(forests.tree_model(8), n_sets=40, seed=5)
    bagged = forests.bias_variance(forests.bagged_trees(8, 10), n_sets=40, seed=5)
    assert bagged["variance"] < 0.7 * single["variance"]
    assert bagged["bias2"] < 0.01


@pytest.mark.parametrize("strategy, trees, classification, expected", [
    ("auto", 20, False, 11), ("auto", 20, True, 6), ("auto", 1, False, 33), ("auto", 1, True, 33),
    ("all", 20, False, 33), ("onethird", 20, True, 11), ("sqrt", 20, False, 6), ("log2", 20, False, 6),
    ("0.5", 20, False, 17), ("1.0", 20, False, 33), ("10", 20, False, 10), ("50", 20, False, 33),
])
def test_features_per_split_follows_spark(strategy, trees, classification, expected):
    assert forests.features_per_split(strategy, 33, trees, classification) == expected


@pytest.mark.parametrize("strategy", ["half", "0", "-1", "2.5"])
def test_features_per_split_rejects_bad_strategies(strategy):
    with pytest.raises(ValueError):
        forests.features_per_split(strategy, 33, 20, False)
