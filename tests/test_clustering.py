"""includes/lessons/clustering.py: k-means by hand (MLE01)."""

import numpy as np
import pytest

from includes.lessons import clustering


def two_groups():
    # two tight groups of three points: around (0, 0) and around (10, 10)
    return np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0], [11.0, 10.0], [10.0, 11.0]])


def test_assign_and_wcss_follow_the_definition():
    points = two_groups()
    centroids = np.array([[0.0, 0.0], [10.0, 10.0]])
    labels = clustering.assign(points, centroids)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert clustering.wcss(points, centroids, labels) == pytest.approx(4.0)  # four points at distance 1
    # a worse assignment costs more
    assert clustering.wcss(points, centroids, np.array([1, 0, 0, 1, 1, 1])) == pytest.approx(200 + 2 + 2)  # (0, 0) pays 200


def test_move_centroids_takes_means_and_keeps_empty_clusters():
    points = two_groups()
    moved = clustering.move_centroids(points, np.array([0, 0, 0, 1, 1, 1]), np.array([[5.0, 5.0], [6.0, 6.0], [-3.0, 2.0]]))
    assert moved.tolist() == [[1 / 3, 1 / 3], [31 / 3, 31 / 3], [-3.0, 2.0]]


def test_run_from_a_given_start_converges_to_the_group_means():
    points = two_groups()
    run = clustering.kmeans_by_hand(points, init=np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert run.converged
    assert run.final_labels.tolist() in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(clustering.sorted_centres(run.final_centroids, 6), [[1 / 3, 1 / 3], [31 / 3, 31 / 3]], atol=1e-6)
    assert run.final_cost == pytest.approx(2 * (2 / 9 + 5 / 9 + 5 / 9))  # per group: 2/9 + 5/9 + 5/9
    assert len(run.centroids) == len(run.labels) == len(run.costs) == run.iterations + 1
    np.testing.assert_array_equal(run.labels[-1], run.labels[-2])  # stopped because nothing changed


def test_cost_never_increases_and_runs_are_seeded():
    rng = np.random.default_rng(5)
    points = np.vstack([rng.normal(c, 0.8, size=(60, 2)) for c in ((0, 0), (6, 0), (0, 6), (6, 6), (3, 12))])
    for seed in range(15):
        run = clustering.kmeans_by_hand(points, k=5, seed=seed)
        assert run.converged
        assert np.all(np.diff(run.costs) <= 1e-9), f"seed {seed}: {run.costs}"
        for centroids, labels, cost in zip(run.centroids, run.labels, run.costs):
            np.testing.assert_array_equal(labels, clustering.assign(points, centroids))
            assert cost == pytest.approx(clustering.wcss(points, centroids, labels))
    again = clustering.kmeans_by_hand(points, k=5, seed=3)
    first = clustering.kmeans_by_hand(points, k=5, seed=3)
    assert again.costs == first.costs


def test_random_start_picks_distinct_points_and_checks_k():
    points = two_groups()
    start = clustering.random_start(points, 4, seed=1)
    assert len({tuple(row) for row in start}) == 4
    assert all(any(np.array_equal(row, p) for p in points) for row in start)
    with pytest.raises(ValueError):
        clustering.random_start(points, 7, seed=1)
    with pytest.raises(ValueError):
        clustering.kmeans_by_hand(points)


def test_sorted_centres_ignores_the_cluster_numbering():
    a = np.array([[4.0, 1.0], [0.004, 2.0], [0.0, -1.0]])
    assert clustering.sorted_centres(a).tolist() == [[0.0, -1.0], [0.0, 2.0], [4.0, 1.0]]
    np.testing.assert_array_equal(clustering.sorted_centres(a), clustering.sorted_centres(a[::-1]))
