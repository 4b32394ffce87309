"""includes/recommenders.py: the baseline predictor and the hybrid, against hand computations."""

import os
import sys

import pytest

from includes.lessons import recommenders

RATINGS = [(1, 10, 5.0), (1, 20, 3.0), (2, 10, 4.0), (2, 30, 1.0), (3, 20, 2.0)]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("test-recommenders")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session


def reference_baseline(ratings, reg, iterations):
    """The same alternating updates in plain Python."""
    mu = sum(r for _, _, r in ratings) / len(ratings)
    users = {u for u, _, _ in ratings}
    items = {i for _, i, _ in ratings}
    b_user = {u: 0.0 for u in users}
    b_item = {}
    for _ in range(iterations):
        b_item = {i: sum(r - mu - b_user[u] for u, j, r in ratings if j == i)
                  / (reg + sum(1 for _, j, _ in ratings if j == i)) for i in items}
        b_user = {u: sum(r - mu - b_item[i] for v, i, r in ratings if v == u)
                  / (reg + sum(1 for v, _, _ in ratings if v == u)) for u in users}
    return mu, b_user, b_item


@pytest.fixture(scope="module")
def ratings_df(spark):
    return spark.createDataFrame(RATINGS, "user INT, item INT, rating DOUBLE")


@pytest.mark.parametrize("reg,iterations", [(0.0, 1), (2.0, 3), (5.0, 2)])
def test_biases_match_the_closed_form_updates(ratings_df, reg, iterations):
    baseline = recommenders.fit_baseline(ratings_df, reg, iterations)
    mu, b_user, b_item = reference_baseline(RATINGS, reg, iterations)
    assert baseline.mu == pytest.approx(mu) == 3.0
    assert {r.user: r.user_bias for r in baseline.user_bias.collect()} == pytest.approx(b_user)
    assert {r.item: r.item_bias for r in baseline.item_bias.collect()} == pytest.approx(b_item)


def test_one_round_without_regularization_gives_mean_deviations(ratings_df):
    baseline = recommenders.fit_baseline(ratings_df, 0.0, 1)
    # item 10 is rated 5 and 4 (mean 4.5), mu = 3: bias 1.5
    assert {r.item: r.item_bias for r in baseline.item_bias.collect()}[10] == pytest.approx(1.5)


def test_unknown_users_and_items_fall_back_to_mu(spark, ratings_df):
    baseline = recommenders.fit_baseline(ratings_df, 2.0)
    mu, b_user, b_item = reference_baseline(RATINGS, 2.0, 3)
    pairs = spark.createDataFrame([(1, 10), (1, 99), (99, 10), (99, 99)], "user INT, item INT")
    rows = {(r.user, r.item): r for r in recommenders.add_baseline(pairs, baseline).collect()}
    assert rows[(1, 10)].baseline == pytest.approx(mu + b_user[1] + b_item[10])
    assert rows[(1, 99)].baseline == pytest.approx(mu + b_user[1]) and rows[(1, 99)].item_bias is None
    assert rows[(99, 10)].baseline == pytest.approx(mu + b_item[10]) and rows[(99, 10)].user_bias is None
    assert rows[(99, 99)].baseline == pytest.approx(mu)


def test_residuals_are_rating_minus_baseline(ratings_df):
    baseline = recommenders.fit_baseline(ratings_df, 1.0)
    mu, b_user, b_item = reference_baseline(RATINGS, 1.0, 3)
    got = {(r.user, r.item): r.residual for r in recommenders.residuals(ratings_df, baseline).collect()}
    assert got == pytest.approx({(u, i): r - mu - b_user[u] - b_item[i] for u, i, r in RATINGS})


def test_clipped(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(0.2,), (3.3,), (6.0,)], "x DOUBLE")
    assert [r.c for r in df.select(recommenders.clipped(F.col("x")).alias("c")).collect()] == [1.0, 3.3, 5.0]
    assert [r.c for r in df.select(recommenders.clipped(F.col("x"), -10, 10).alias("c")).collect()] == [0.2, 3.3, 6.0]
    with pytest.raises(ValueError):
        recommenders.clipped(F.col("x"), 5, 1)


def test_hybrid_adds_the_residual_model_and_falls_back_to_the_baseline(spark, ratings_df):
    from pyspark.ml.recommendation import ALS

    baseline = recommenders.fit_baseline(ratings_df, 1.0)
    model = ALS(rank=2, maxIter=5, regParam=0.01, seed=1, ratingCol="residual").fit(
        recommenders.residuals(ratings_df, baseline))
    pairs = recommenders.add_baseline(spark.createDataFrame([(1, 10), (99, 10)], "user INT, item INT"), baseline)
    als = {(r.user, r.item): r.prediction for r in model.transform(pairs).collect()}
    rows = {(r.user, r.item): r for r in recommenders.hybrid_predict(model, pairs).collect()}
    assert rows[(1, 10)].prediction == pytest.approx(min(5.0, max(1.0, rows[(1, 10)].baseline + als[(1, 10)])), abs=1e-6)
    assert rows[(99, 10)].prediction == pytest.approx(rows[(99, 10)].baseline)  # unknown user: baseline only


def test_bad_arguments(ratings_df):
    with pytest.raises(ValueError, match="reg"):
        recommenders.fit_baseline(ratings_df, -1.0)
    with pytest.raises(ValueError, match="at least one rating"):
        recommenders.fit_baseline(ratings_df.limit(0), 1.0)
