"""The baseline predictor of the recommendation lessons, and the hybrid built on it.

The baseline predictor explains a rating by a global mean and two regularized biases,
``mu + b_user + b_item``. It is the first half of the models of ML16 (ALS fitted to the baseline's
residuals) and the starting state of ML17's streaming model. The functions work on Spark
DataFrames with the columns ``user``, ``item`` and ``rating`` (ALS's default names; pass other
names with ``user_col`` / ``item_col`` / ``rating_col``).

- :func:`fit_baseline`: ``mu`` and the bias tables by alternating closed-form updates; each
  update is a damped mean of what the other biases leave::

      b_i = sum_u (r_ui - mu - b_u) / (reg + n_i)      b_u = sum_i (r_ui - mu - b_i) / (reg + n_u)

- :func:`add_baseline`: adds ``user_bias``, ``item_bias`` (null when unknown) and
  ``baseline`` (the unknown biases count as 0) to any table of (user, item) pairs.
- :func:`clipped`: a column clipped to the rating scale.
- :func:`hybrid_predict`: baseline + the prediction of an ALS model fitted to the residuals,
  0 where ALS has no factors, clipped, as ``prediction``.
"""

from __future__ import annotations

from typing import NamedTuple


class Baseline(NamedTuple):
    """A fitted baseline predictor: ``mu``, the regularization, the two bias DataFrames."""

    mu: float
    reg: float
    user_bias: object  # DataFrame[user, user_bias]
    item_bias: object  # DataFrame[item, item_bias]
    user_col: str = "user"
    item_col: str = "item"


def fit_baseline(ratings_df, reg: float, iterations: int = 3, user_col: str = "user",
                 item_col: str = "item", rating_col: str = "rating") -> Baseline:
    """Global mean and regularized user and item biases, by alternating closed-form updates.

    ``reg`` (lambda_b) acts like ``reg`` imaginary ratings equal to the prediction without the bias:
    a movie rated once gets a bias close to 0, one rated hundreds of times gets almost its full
    mean deviation. Three rounds of (item biases, then user biases) are enough on MovieLens: the
    biases change by less than 1e-3 after that.
    """
    from pyspark.sql import functions as F

    if reg < 0:
        raise ValueError(f"reg must be >= 0, got {reg}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    rating = F.col(rating_col)
    mu = ratings_df.agg(F.avg(rating)).first()[0]
    if mu is None:
        raise ValueError("fit_baseline needs at least one rating")
    user_bias_df = ratings_df.select(user_col).distinct().withColumn("user_bias", F.lit(0.0))
    item_bias_df = None
    for _ in range(iterations):
        # localCheckpoint() computes the small bias table now and cuts its lineage
        item_bias_df = (ratings_df.join(user_bias_df, user_col).groupBy(item_col)
                        .agg((F.sum(rating - mu - F.col("user_bias")) / (F.count("*") + reg)).alias("item_bias"))
                        .localCheckpoint())
        user_bias_df = (ratings_df.join(item_bias_df, item_col).groupBy(user_col)
                        .agg((F.sum(rating - mu - F.col("item_bias")) / (F.count("*") + reg)).alias("user_bias"))
                        .localCheckpoint())
    return Baseline(float(mu), reg, user_bias_df, item_bias_df, user_col, item_col)


def add_baseline(pairs_df, baseline: Baseline):
    """Adds ``user_bias`` and ``item_bias`` (null if unknown) and ``baseline`` (unknown = 0)."""
    from pyspark.sql import functions as F

    return (pairs_df
            .join(baseline.user_bias, baseline.user_col, "left")
            .join(baseline.item_bias, baseline.item_col, "left")
            .withColumn("baseline", F.lit(baseline.mu) + F.coalesce("user_bias", F.lit(0.0))
                        + F.coalesce("item_bias", F.lit(0.0))))


def clipped(column, low: float = 1.0, high: float = 5.0):
    """``column`` clipped to [low, high] (the rating scale)."""
    from pyspark.sql import functions as F

    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    return F.least(F.greatest(column, F.lit(float(low))), F.lit(float(high)))


def hybrid_predict(residual_model, pairs_with_baseline_df, low: float = 1.0, high: float = 5.0):
    """Baseline + ALS residual (0 where ALS has no factors), clipped to [low, high], as ``prediction``.

    ``pairs_with_baseline_df`` comes from :func:`add_baseline`; ``residual_model`` is an
    ``ALSModel`` fitted to ``rating - baseline`` with ``coldStartStrategy="nan"`` (the default),
    so every pair keeps a prediction.
    """
    from pyspark.sql import functions as F

    return (residual_model.transform(pairs_with_baseline_df)
            .withColumn("prediction", clipped(F.col("baseline") + F.nanvl(F.col("prediction"), F.lit(0.0)),
                                              low, high)))


def residuals(ratings_df, baseline: Baseline, rating_col: str = "rating"):
    """``(user, item, residual)``: what the baseline leaves of each rating (the target of residual ALS)."""
    from pyspark.sql import functions as F

    return (add_baseline(ratings_df, baseline)
            .withColumn("residual", F.col(rating_col) - F.col("baseline"))
            .select(baseline.user_col, baseline.item_col, "residual"))
