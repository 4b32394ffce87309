"""MLE05L's neighbourhood methods, imported from the module ``make export`` generates from the
solution's cells marked ``#@save neighbours``: item-based and user-based collaborative filtering on
matrices small enough to work out by hand (the comments show the arithmetic)."""

import math

import numpy as np
import pytest

from includes.lessons import neighbours as nbrs

nan = np.nan


# Items (columns) all have mean 3 over their raters, so the centred columns are
#   c0 = [1, -1, 0, 0], c1 = [-1, 1, 0, 0], c2 = [2, 0, -2, 0], c3 = [1, -2, 1, 0]
# (an unrated cell counts as 0), with norms sqrt(2), sqrt(2), sqrt(8), sqrt(6):
#   s01 = -2/2 = -1, s02 = 2/4 = 1/2, s03 = 3/sqrt(12) = sqrt(3)/2, s12 = -2/4 = -1/2,
#   s13 = -3/sqrt(12) = -sqrt(3)/2, s23 = (2 - 2)/sqrt(48) = 0.
ITEMS = np.array([[4, 2, 5, 4],
                  [2, 4, nan, 1],
                  [3, 3, 1, 4],
                  [nan, nan, 3, nan]])
ITEM_MEANS = np.array([3.0, 3.0, 3.0, 3.0])
R3 = math.sqrt(3) / 2


def test_item_similarities_are_cosines_of_mean_centred_columns():
    expected = np.array([[1, -1, 0.5, R3],
                         [-1, 1, -0.5, -R3],
                         [0.5, -0.5, 1, 0],
                         [R3, -R3, 0, 1]])
    np.testing.assert_allclose(nbrs.item_similarities(ITEMS), expected, atol=1e-12)
    np.testing.assert_allclose(np.nanmean(ITEMS, axis=0), ITEM_MEANS)


def test_an_item_without_deviations_has_similarity_zero_not_nan():
    S = nbrs.item_similarities(np.array([[3, 1], [3, 2], [nan, 4]]))  # column 0 centres to zeros
    assert not np.isnan(S).any()
    assert S[0, 1] == 0 and S[1, 0] == 0 and S[1, 1] == pytest.approx(1)


def test_item_prediction_weights_the_k_most_similar_rated_items():
    S = nbrs.item_similarities(ITEMS)
    user = np.array([nan, 1, 5, 2])  # rated items 1 (s01 = -1), 2 (1/2), 3 (sqrt(3)/2)
    # k = 1: item 3 alone, deviation 2 - 3 = -1: 3 - 1 = 2
    assert nbrs.predict_item_based(user, 0, S, ITEM_MEANS, 1) == pytest.approx(2)
    # k = 2: items 3 and 2: 3 + (R3 * (-1) + 1/2 * (5 - 3)) / (R3 + 1/2) = 3 + (3 sqrt(3) - 5) / 2
    two = 3 + (3 * math.sqrt(3) - 5) / 2
    assert nbrs.predict_item_based(user, 0, S, ITEM_MEANS, 2) == pytest.approx(two)
    # k = 3 adds item 1, whose similarity is negative: it does not vote
    assert nbrs.predict_item_based(user, 0, S, ITEM_MEANS, 3) == pytest.approx(two)


def test_the_target_item_is_not_its_own_neighbour():
    S = nbrs.item_similarities(ITEMS)
    user = np.array([5, 1, 5, 2])  # has rated item 0 itself (5); with it as a neighbour k = 1 would give 5
    assert nbrs.predict_item_based(user, 0, S, ITEM_MEANS, 1) == pytest.approx(2)


def test_item_prediction_falls_back_to_the_item_mean():
    S = nbrs.item_similarities(ITEMS)
    only_dissimilar = np.array([nan, 4, nan, nan])  # item 1 only, similarity -1 with item 0
    assert nbrs.predict_item_based(only_dissimilar, 0, S, ITEM_MEANS, 5) == 3.0
    nothing = np.full(4, nan)
    assert nbrs.predict_item_based(nothing, 2, S, np.array([1.0, 2.0, 3.5, 4.0]), 5) == 3.5


# Users (rows) all have mean 3, so the centred rows are
#   c0 = [2, 0, 0, -2], c1 = [1, 0, -1, 0], c2 = [-2, 0, 2, 0], c3 = [0, 1, -1, 0]
# with norms sqrt(8), sqrt(2), sqrt(8), sqrt(2):
#   s01 = 2/4 = 1/2, s02 = -4/8 = -1/2, s03 = 0, s12 = -4/4 = -1, s13 = 1/2, s23 = -2/4 = -1/2.
USERS = np.array([[5, 3, nan, 1],
                  [4, nan, 2, nan],
                  [1, 3, 5, nan],
                  [nan, 4, 2, nan]])
USER_MEANS = np.array([3.0, 3.0, 3.0, 3.0])


def test_user_similarities_are_cosines_of_mean_centred_rows():
    expected = np.array([[1, 0.5, -0.5, 0],
                         [0.5, 1, -1, 0.5],
                         [-0.5, -1, 1, -0.5],
                         [0, 0.5, -0.5, 1]])
    np.testing.assert_allclose(nbrs.user_similarities(USERS), expected, atol=1e-12)
    np.testing.assert_allclose(np.nanmean(USERS, axis=1), USER_MEANS)


def test_user_prediction_weights_the_k_most_similar_raters():
    S = nbrs.user_similarities(USERS)
    # user 1, item 1: raters 0 (s = 1/2, deviation 0), 2 (s = -1), 3 (s = 1/2, deviation 1):
    # 3 + (1/2 * 0 + 1/2 * 1) / (1/2 + 1/2) = 3.5; user 2's negative similarity does not vote
    assert nbrs.predict_user_based(USERS, 1, 1, S, USER_MEANS, 2) == pytest.approx(3.5)
    assert nbrs.predict_user_based(USERS, 1, 1, S, USER_MEANS, 80) == pytest.approx(3.5)
    # user 3, item 0: raters 0 (s = 0), 1 (s = 1/2, deviation 4 - 3), 2 (s = -1/2): only user 1 votes
    assert nbrs.predict_user_based(USERS, 3, 0, S, USER_MEANS, 3) == pytest.approx(4)


def test_the_user_is_not_their_own_neighbour_and_the_fallback_is_their_mean():
    S = nbrs.user_similarities(USERS)
    # user 0 rated item 0 (5); without themself the nearest rater is user 1 (s = 1/2, deviation 1)
    assert nbrs.predict_user_based(USERS, 0, 0, S, USER_MEANS, 1) == pytest.approx(4)
    # item 3 was rated by user 0 only, whose similarity with user 3 is 0: user 3's mean
    assert nbrs.predict_user_based(USERS, 3, 3, S, USER_MEANS, 5) == 3.0
