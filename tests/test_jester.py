"""includes/jester.py: the Jester reader returns the real file, as stored, and rejects broken copies."""

import numpy as np
import pandas as pd
import pytest

from includes.data import jester
from includes.data.datasets import is_installed

installed = pytest.mark.skipif(
    not is_installed("jester"),
    reason="Jester dataset not installed (python -m includes.data.datasets install jester)",
)


@pytest.fixture(scope="module")
def ratings():
    return jester.read_jester()


@installed
def test_shape_index_and_columns(ratings):
    assert ratings.shape == (24983, 100)
    assert ratings.index.name == "user"
    assert ratings.index[0] == 1 and ratings.index[-1] == 24983
    assert list(ratings.columns) == [str(joke) for joke in range(1, 101)]
    assert (ratings.dtypes == "float64").all()


@installed
def test_ratings_are_the_values_that_are_not_99_and_lie_in_the_scale(ratings):
    values = ratings.to_numpy()
    rated = values != jester.NOT_RATED
    assert int(rated.sum()) == 1810455
    assert int((~rated).sum()) == 24983 * 100 - 1810455
    assert values[rated].min() >= -10.0 and values[rated].max() <= 10.0
    assert values[rated].min() == pytest.approx(-9.95) and values[rated].max() == pytest.approx(10.0)
    assert not np.isnan(values).any()  # the reader leaves the 99 codes alone


@installed
def test_first_user_matches_the_file(ratings):
    assert ratings.loc[1, ["1", "2", "3", "4"]].tolist() == [-7.82, 8.79, -9.66, -8.16]
    assert ratings.loc[1, "71"] == jester.NOT_RATED


@installed
def test_zero_is_a_real_rating_in_the_file(ratings):
    # why "fill the gaps with 0, then treat 0 as missing" loses data
    assert int((ratings.to_numpy() == 0.0).sum()) > 0


@installed
def test_counts_column_agrees_with_the_ratings(ratings):
    counts = jester.read_jester_counts()
    assert counts.name == "n_rated" and len(counts) == 24983
    assert (counts == (ratings != jester.NOT_RATED).sum(axis=1)).all()
    assert counts.min() >= 36 and counts.max() == 100  # "users who have rated 36 or more jokes"


def _sheet(rows):
    frame = pd.DataFrame(rows)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="user")
    return frame


def test_validation_accepts_a_consistent_sheet():
    row = [2, 0.0, -3.5] + [99.0] * 98
    ratings = jester._validated(_sheet([row]), "tiny")
    assert ratings.shape == (1, 100)
    assert ratings.loc[1, "1"] == 0.0 and ratings.loc[1, "100"] == 99.0


def test_validation_rejects_a_wrong_count():
    row = [3, 0.0, -3.5] + [99.0] * 98
    with pytest.raises(ValueError, match="user 1 has a count of 3 but 2 ratings"):
        jester._validated(_sheet([row]), "tiny")


def test_validation_rejects_values_off_the_scale():
    row = [2, 12.0, -3.5] + [99.0] * 98
    with pytest.raises(ValueError, match="outside"):
        jester._validated(_sheet([row]), "tiny")


def test_missing_file_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="includes.data.datasets install jester"):
        jester.read_jester(datasets_dir=tmp_path)
