"""includes/lessons/outliers.py: isolation by hand, c(n) and the score, planted data, z-score and IQR rules (MLE04)."""

import math

import numpy as np
import pytest

from includes.lessons import outliers


def test_average_path_length_small_cases_and_growth():
    assert outliers.average_path_length(1) == 0.0
    assert outliers.average_path_length(2) == 1.0
    # c(3) = 2 H(2) - 4/3 with H(2) ~ ln 2 + gamma
    assert outliers.average_path_length(3) == pytest.approx(2 * (math.log(2) + 0.5772156649) - 4 / 3)
    values = [outliers.average_path_length(n) for n in (4, 16, 256, 4096, 10 ** 6)]
    assert values == sorted(values)
    # grows like 2 ln n: the difference tends to 2 (gamma - 1)
    assert outliers.average_path_length(10 ** 6) - 2 * math.log(10 ** 6) == pytest.approx(2 * (0.5772156649 - 1), abs=1e-4)
    with pytest.raises(ValueError):
        outliers.average_path_length(0)


def test_anomaly_score_reference_points():
    c = outliers.average_path_length(256)
    assert outliers.anomaly_score(c, 256) == pytest.approx(0.5)
    assert outliers.anomaly_score(0.0, 256) == pytest.approx(1.0)
    assert outliers.anomaly_score(2 * c, 256) == pytest.approx(0.25)
    scores = outliers.anomaly_score(np.array([1.0, 5.0, 20.0]), 256)
    assert np.all(np.diff(scores) < 0)  # shorter paths, higher scores


def test_zscore_rule_on_a_hand_made_array():
    values = np.array([0.0] * 20 + [10.0])  # mean 10/21, std about 2.13: z of the last about 4.47
    assert outliers.zscore_outliers(values).tolist() == [False] * 20 + [True]
    assert not outliers.zscore_outliers(values, threshold=5.0).any()
    two_columns = np.column_stack([np.arange(21.0), values])
    assert np.flatnonzero(outliers.zscore_outliers(two_columns)).tolist() == [20]
    assert not outliers.zscore_outliers(np.ones((5, 2))).any()  # constant columns flag nothing


def test_iqr_rule_boundaries():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # Q1 = 2, Q3 = 4, IQR = 2: fences -1 and 7
    low, high = outliers.iqr_bounds(values)
    assert low.tolist() == [-1.0] and high.tolist() == [7.0]
    # with five values the quartiles are the 2nd and 4th whatever the extremes are: fences stay -1 and 7
    assert outliers.iqr_outliers(np.array([-1.0, 2.0, 3.0, 4.0, 7.0])).tolist() == [False] * 5  # on the fences
    assert outliers.iqr_outliers(np.array([-1.01, 2.0, 3.0, 4.0, 7.01])).tolist() == [True, False, False, False, True]
    two_columns = np.column_stack([[1.0, 2.0, 3.0, 4.0, 5.0], [-1.0, 2.0, 3.0, 4.0, 7.01]])
    assert outliers.iqr_outliers(two_columns).tolist() == [False] * 4 + [True]  # any column is enough
    assert outliers.iqr_outliers(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 30.0])).tolist() == [False] * 5 + [True]
    assert outliers.iqr_outliers(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 30.0]), k=20).tolist() == [False] * 6


def test_planted_data_labels_and_reproducibility():
    points, is_outlier = outliers.planted_data(n_inliers=300, n_outliers=20, seed=4)
    assert points.shape == (320, 2) and is_outlier.dtype == bool and is_outlier.sum() == 20
    centres = np.array([(-4.0, -3.0), (4.0, -3.0), (0.0, 4.0)])
    distance = np.sqrt(((points[:, None, :] - centres[None]) ** 2).sum(axis=2)).min(axis=1)
    assert distance[is_outlier].min() >= 4.0  # every planted outlier is away from the clusters
    assert np.abs(points[is_outlier]).max() <= 14.0
    again, labels_again = outliers.planted_data(n_inliers=300, n_outliers=20, seed=4)
    np.testing.assert_array_equal(points, again)
    np.testing.assert_array_equal(is_outlier, labels_again)
    other, _ = outliers.planted_data(n_inliers=300, n_outliers=20, seed=5)
    assert not np.array_equal(points, other)


def test_isolate_ends_with_the_point_alone_inside_its_box():
    points, _ = outliers.planted_data(n_inliers=200, n_outliers=10, seed=1)
    for seed in range(10):
        path = outliers.isolate(points, 7, np.random.default_rng(seed))
        lower, upper = path.boxes[-1]
        inside = np.all((points >= lower) & (points <= upper), axis=1)
        assert inside[7] and inside.sum() == 1
        assert path.length == len(path.boxes) - 1 >= 1
    # exact duplicates cannot be separated: the loop stops instead of running forever
    assert outliers.isolate(np.zeros((5, 2)), 0, np.random.default_rng(0)).length == 0
    assert outliers.isolate(points, 7, np.random.default_rng(0), max_depth=2).length <= 2


def test_an_extreme_point_is_isolated_in_fewer_steps_than_a_central_one():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0.0, 1.0, size=(255, 2)), [[8.0, 8.0]]])
    central = int(np.argmin((points ** 2).sum(axis=1)))
    extreme = len(points) - 1
    steps_extreme = [outliers.isolate(points, extreme, np.random.default_rng(s)).length for s in range(200)]
    steps_central = [outliers.isolate(points, central, np.random.default_rng(s)).length for s in range(200)]
    assert np.mean(steps_extreme) < 4 < np.mean(steps_central)
    assert outliers.mean_path_length(points, extreme, n_trees=40, seed=1) < outliers.average_path_length(256) / 2
    assert outliers.mean_path_length(points, extreme, n_trees=40, seed=1) == outliers.mean_path_length(points, extreme, n_trees=40, seed=1)
