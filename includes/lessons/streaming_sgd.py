"""Streaming matrix factorization: biased SGD on Structured Streaming, exactly once (lesson ML17).

The model predicts a rating of user ``x`` for item ``y`` as

    r_hat = mu + b_x + b_y + U_x . P_y

It starts from a batch model trained offline (a baseline predictor for ``mu`` and the biases,
ALS on the baseline's residuals for the factors) and is then updated micro-batch by micro-batch
with biased stochastic gradient descent (learning rate ``gamma``, regularization ``reg``). For
every rating of a micro-batch the error ``e = r - r_hat`` is computed with the model as it was
at the start of the batch; the per-rating gradient steps of each user and each item are summed,
and the step size of an entity with ``n`` ratings in the batch is ``eta = min(gamma, 1 / n)``::

    b_x <- b_x + eta_x * sum_y (e_xy - reg * b_x)
    U_x <- U_x + eta_x * sum_y (e_xy * P_y - reg * U_x)        (and the same for b_y, P_y)

``mu`` is the running mean of every rating seen. A user or item met for the first time starts
with bias 0 and small pseudo-random factors derived from a hash of (seed, id), so a replayed
batch initialises it with exactly the same numbers.

What lives here (the notebook explains and drives it):

- :func:`holdout_split`, :func:`time_cutoff`: a fixed held-out set and the offline/stream split.
- The stream part is replayed by :mod:`includes.lessons.replay` (files in :data:`REPLAY_ORDER`,
  one per micro-batch).
- :func:`fit_offline_model`, :func:`factor_tables`: the offline baseline + residual ALS model as
  two tables ``users(userId, bias, factors)`` and ``items(movieId, bias, factors)``.
- :func:`predict`, :func:`rmse`: scoring with the tables (unknown users/items count as 0).
- ``sgd_update`` (one micro-batch of biased SGD on DataFrames, joins + aggregations) is not here:
  ML17 defines and runs it in a cell of its own, generated into
  :mod:`includes.lessons.streaming_update` (``make export``).
- :class:`StreamingSGD`: the ``foreachBatch`` function. It keeps the model in versioned Delta
  tables and makes every batch idempotent (see its docstring); ``update`` is the function it
  applies to each batch (ML17 passes its own cell's ``sgd_update``).
- :func:`sgd_update_numpy`: the same update in plain NumPy, the reference for the unit tests.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from includes.lessons.recommenders import clipped
from includes.lessons.streaming_update import dot, sgd_update

RATINGS_DDL = "userId INT, movieId INT, rating DOUBLE, timestamp LONG"
USERS_DDL = "userId INT, bias DOUBLE, factors ARRAY<DOUBLE>"
ITEMS_DDL = "movieId INT, bias DOUBLE, factors ARRAY<DOUBLE>"
PROGRESS_DDL = (
    "batch_id LONG, ratings LONG, users LONG, items LONG, new_users LONG, new_items LONG, "
    "first_timestamp LONG, last_timestamp LONG, mu DOUBLE, ratings_seen LONG, "
    "batch_rmse DOUBLE, heldout_rmse DOUBLE, model_version LONG"
)
PROGRESS_COLUMNS = tuple(field.split()[0] for field in PROGRESS_DDL.split(", "))
# The offline model is recorded as batch -1 in the progress table.
OFFLINE_BATCH_ID = -1
# The replay of the stream part (ReplayFiles, replay_stream) is includes.lessons.replay, ordered by:
REPLAY_ORDER = ("timestamp", "userId", "movieId")


@dataclass(frozen=True)
class SGDParams:
    """Hyperparameters of the streaming update.

    rank: number of latent factors (must match the offline ALS model);
    gamma: learning rate; reg: regularization (lambda) of biases and factors;
    init_scale: new factors are uniform in [-init_scale, init_scale]; seed: of that initialisation;
    low / high: the rating scale, predictions are clipped to it for RMSE.
    """

    rank: int
    gamma: float
    reg: float
    init_scale: float = 0.01
    seed: int = 42
    low: float = 0.5
    high: float = 5.0

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        if self.reg < 0:
            raise ValueError(f"reg must be >= 0, got {self.reg}")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")


# ------------------------------------------------------------------------------------------------
# Splits
# ------------------------------------------------------------------------------------------------


def holdout_split(ratings_df, fraction: float = 0.1, seed: int = 42):
    """``(train_df, heldout_df)``: a seeded hash of (userId, movieId) picks ``fraction`` of the ratings.

    Unlike ``randomSplit`` the choice depends only on the pair, never on partitioning or row order.
    """
    from pyspark.sql import functions as F

    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    bucket = F.pmod(F.xxhash64(F.lit(seed), "userId", "movieId"), F.lit(10_000))
    held = bucket < F.lit(int(round(fraction * 10_000)))
    return ratings_df.filter(~held), ratings_df.filter(held)


def time_cutoff(ratings_df, offline_fraction: float) -> int:
    """The timestamp that splits ``ratings_df`` in time: about ``offline_fraction`` of it is older.

    Ratings with ``timestamp < cutoff`` train the offline model, the others are streamed.
    """
    from pyspark.sql import functions as F

    if not 0 < offline_fraction < 1:
        raise ValueError(f"offline_fraction must be between 0 and 1, got {offline_fraction}")
    return int(ratings_df.agg(F.percentile("timestamp", offline_fraction)).first()[0])


# ------------------------------------------------------------------------------------------------
# Model tables, prediction, RMSE
# ------------------------------------------------------------------------------------------------


def factor_tables(baseline, als_model):
    """``(users_df, items_df)`` of an offline model: biases from a baseline predictor
    (:func:`includes.lessons.recommenders.fit_baseline` with ``user_col="userId", item_col="movieId"``)
    and factors from an ALS model fitted to its residuals. Entities the ALS model lacks get
    zero factors, entities without a bias get 0."""
    from pyspark.sql import functions as F

    rank = als_model.rank
    zeros = F.array_repeat(F.lit(0.0), rank)

    def table(bias_df, id_col, bias_col, factors_df):
        factors = factors_df.select(F.col("id").alias(id_col), F.col("features").cast("array<double>").alias("factors"))
        return (bias_df.select(id_col, F.col(bias_col).alias("bias"))
                .join(factors, id_col, "full_outer")
                .select(id_col, F.coalesce("bias", F.lit(0.0)).alias("bias"),
                        F.coalesce("factors", zeros).alias("factors")))

    return (table(baseline.user_bias, "userId", "user_bias", als_model.userFactors),
            table(baseline.item_bias, "movieId", "item_bias", als_model.itemFactors))


def fit_offline_model(ratings_df, rank: int = 10, als_reg: float = 0.15, bias_reg: float = 5,
                      max_iter: int = 10, blocks: int = 2, seed: int = 5757):
    """``(mu, users_df, items_df)``: ML16's hybrid fitted on ``ratings_df`` (userId, movieId, rating),
    as the factor tables of :func:`factor_tables` (cached).

    The baseline predictor gives ``mu`` and the regularized biases, ALS fitted to what the baseline
    leaves over gives the factors. ``checkpointInterval=5`` cuts ALS's lineage every 5 iterations:
    with the default (10), later queries on the cached factor tables died with a StackOverflowError
    while deserializing their tasks.
    """
    from pyspark.ml.recommendation import ALS

    from includes.lessons.recommenders import fit_baseline, residuals

    baseline = fit_baseline(ratings_df, bias_reg, user_col="userId", item_col="movieId")
    als = ALS(rank=rank, maxIter=max_iter, regParam=als_reg, seed=seed, userCol="userId", itemCol="movieId",
              ratingCol="residual", numUserBlocks=blocks, numItemBlocks=blocks, checkpointInterval=5)
    users_df, items_df = factor_tables(baseline, als.fit(residuals(ratings_df, baseline)))
    return baseline.mu, users_df.cache(), items_df.cache()


def predict(pairs_df, users_df, items_df, mu: float, low: float = 0.5, high: float = 5.0):
    """Adds ``prediction = clip(mu + b_user + b_item + U . P)``; unknown users/items contribute 0."""
    from pyspark.sql import functions as F

    users = users_df.select("userId", F.col("bias").alias("user_bias"), F.col("factors").alias("user_factors"))
    items = items_df.select("movieId", F.col("bias").alias("item_bias"), F.col("factors").alias("item_factors"))
    raw = (F.lit(float(mu)) + F.coalesce("user_bias", F.lit(0.0)) + F.coalesce("item_bias", F.lit(0.0))
           + F.coalesce(dot(F.col("user_factors"), F.col("item_factors")), F.lit(0.0)))
    return (pairs_df.join(users, "userId", "left").join(items, "movieId", "left")
            .withColumn("prediction", clipped(raw, low, high))
            .drop("user_bias", "user_factors", "item_bias", "item_factors"))


def rmse(ratings_df, users_df, items_df, mu: float, low: float = 0.5, high: float = 5.0) -> float:
    """Root mean squared error of :func:`predict` on ``ratings_df`` (userId, movieId, rating)."""
    from pyspark.sql import functions as F

    scored = predict(ratings_df, users_df, items_df, mu, low, high)
    return float(scored.agg(F.sqrt(F.avg((F.col("rating") - F.col("prediction")) ** 2))).first()[0])


# ------------------------------------------------------------------------------------------------
# The foreachBatch function: versioned Delta tables, idempotent batches
# ------------------------------------------------------------------------------------------------


class StreamingSGD:
    """The ``foreachBatch`` function of the streaming model, with its state in Delta tables.

    Delta tables under ``root``:

    - ``model``: the factor tables of users and items in one table (``side`` is ``"user"`` or
      ``"item"``, then ``id, bias, factors``). Every batch writes the whole new model as one new
      version (one atomic commit; the table is small, a few MB). :meth:`model_at` and
      :meth:`tables_after` return a version as the two tables ``users(userId, bias, factors)`` and
      ``items(movieId, bias, factors)``.
    - ``progress``: one row per applied batch (batch -1 is the offline model): its statistics,
      the global mean ``mu`` and count ``ratings_seen`` after it, the RMSE on the held-out set
      after it, and the version of ``model`` it wrote.
    - ``heldout``: the fixed held-out ratings.

    Exactly once. Structured Streaming runs a micro-batch again, with the same ``batch_id`` and
    the same files, if the query stopped before it committed the batch to its checkpoint, so the
    function must be idempotent. The progress row is the commit record of a batch:

    1. if ``batch_id`` already has a progress row, the batch was fully applied: do nothing;
    2. otherwise start from the model *as of the version the previous batch recorded* (Delta
       time travel), not from the latest version, which a crashed attempt may have written;
    3. compute the new model from that state and write it. Redoing this after a crashed attempt
       writes the same model again (one more version with the same content), never a model with
       the batch applied twice;
    4. append the progress row (with Delta's ``txnAppId``/``txnVersion`` options, so Delta itself
       drops a second append for the same batch).

    For large models one would MERGE only the rows a batch changed; the same reasoning holds,
    because a MERGE that *sets* values can be repeated safely. Here the whole table fits in one
    file that any MERGE would rewrite anyway, and an overwrite costs fewer Spark jobs.

    The instance keeps the model it has just written in memory (``localCheckpoint``) with its
    version, so the next batch need not read it back from Delta while that version is the one
    recorded. It assumes it is the only writer of its tables. ``on_stage(batch_id, stage)``, if
    given, is called after the stages ``"model"`` (model version committed) and ``"progress"``:
    tests and the lesson use it to simulate a crash. ``evaluate=False`` skips the held-out RMSE
    of every batch (the benchmark measures what it costs).
    """

    def __init__(self, root: os.PathLike | str, params: SGDParams, app_id: str = "streaming-sgd",
                 on_stage: Callable[[int, str], None] | None = None, evaluate: bool = True,
                 update: Callable | None = None):
        self.root = str(root)
        # the micro-batch update: (batch_df, users_df, items_df, mu, params) -> (users, items, stats)
        self.update = sgd_update if update is None else update
        self.params = params
        self.app_id = app_id
        self.on_stage = on_stage
        self.evaluate = evaluate  # False: no held-out RMSE per batch (heldout_rmse stays null)
        self._cache = None  # (session key, model version, users_df, items_df)
        self._last = None  # (progress table version, last progress row)
        self._heldout = None  # (session key, heldout_df)

    def __getstate__(self):  # DataFrames stay behind if the function is shipped elsewhere
        state = dict(self.__dict__)
        state.update(_cache=None, _last=None, _heldout=None)
        return state

    def path(self, table: str) -> str:
        return os.path.join(self.root, table)

    # reading -----------------------------------------------------------------------------------
    def progress(self, spark):
        """The progress table, one row per applied batch, ordered by batch_id."""
        return spark.read.format("delta").load(self.path("progress")).orderBy("batch_id")

    def last_progress(self, spark):
        """The progress row of the last applied batch (remembered while the table is unchanged)."""
        version = self._version(spark, "progress")
        if self._last is None or self._last[0] != version:
            self._last = (version, self.progress(spark).orderBy("batch_id", ascending=False).first())
        return self._last[1]

    def _remember_progress(self, version_before: int, row) -> None:
        """After appending ``row``: the progress table's next version will be the one holding it.
        (If Delta dropped the append as a duplicate, the version stays and the table is re-read.)"""
        self._last = (version_before + 1, row)

    def model_at(self, spark, version: int):
        """``(users_df, items_df)`` of version ``version`` of the model table (time travel)."""
        from pyspark.sql import functions as F

        model = spark.read.format("delta").option("versionAsOf", version).load(self.path("model"))
        return tuple(model.filter(F.col("side") == side).select(F.col("id").alias(key), "bias", "factors")
                     for side, key in (("user", "userId"), ("item", "movieId")))

    def tables_after(self, spark, batch_id: int | None = None):
        """``(users_df, items_df, mu)`` right after ``batch_id`` (default: the last applied
        batch; -1 is the offline model), read from Delta by time travel."""
        from pyspark.sql import functions as F

        progress = self.progress(spark)
        row = (progress.orderBy(F.desc("batch_id")).first() if batch_id is None
               else progress.filter(F.col("batch_id") == batch_id).first())
        if row is None:
            raise ValueError(f"batch {batch_id} has not been applied")
        return (*self.model_at(spark, row.model_version), row.mu)

    def _version(self, spark, table: str) -> int:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(spark, self.path(table)).history(1).select("version").first()[0]

    @staticmethod
    def _session_key(spark):
        jsession = getattr(spark, "_jsparkSession", None)
        return jsession.hashCode() if jsession is not None else getattr(spark, "session_id", None)

    def _state(self, spark, version: int):
        """The model at ``version``, from memory if this instance wrote it in this session."""
        key = self._session_key(spark)
        if self._cache is not None and self._cache[:2] == (key, version):
            return self._cache[2], self._cache[3]
        users, items = (df.localCheckpoint() for df in self.model_at(spark, version))
        self._cache = (key, version, users, items)
        return users, items

    def _heldout_set(self, spark):
        key = self._session_key(spark)
        if self._heldout is None or self._heldout[0] != key:
            self._heldout = (key, spark.read.format("delta").load(self.path("heldout")).localCheckpoint())
        return self._heldout[1]

    # writing -----------------------------------------------------------------------------------
    @staticmethod
    def _model_rows(users_df, items_df):
        from pyspark.sql import functions as F

        return (users_df.select(F.lit("user").alias("side"), F.col("userId").alias("id"), "bias", "factors")
                .unionByName(items_df.select(F.lit("item").alias("side"), F.col("movieId").alias("id"),
                                             "bias", "factors")))

    def initialize(self, users_df, items_df, heldout_df, mu: float, ratings_seen: int):
        """Write the offline model as version 0 of ``model``, the held-out set, and the
        progress row of batch -1 (with the offline model's held-out RMSE)."""
        from pyspark.sql import functions as F

        spark = users_df.sparkSession
        users = users_df.select("userId", F.col("bias").cast("double"), F.col("factors").cast("array<double>"))
        items = items_df.select("movieId", F.col("bias").cast("double"), F.col("factors").cast("array<double>"))
        self._model_rows(users, items).coalesce(1).write.format("delta").mode("overwrite").save(self.path("model"))
        heldout_df.select("userId", "movieId", "rating").coalesce(1) \
            .write.format("delta").mode("overwrite").save(self.path("heldout"))
        version = self._version(spark, "model")
        users, items = self._state(spark, version)
        p = self.params
        heldout_rmse = rmse(self._heldout_set(spark), users, items, mu, p.low, p.high)
        row = (OFFLINE_BATCH_ID, 0, 0, 0, 0, 0, None, None, float(mu), int(ratings_seen), None, heldout_rmse, version)
        spark.createDataFrame([row], PROGRESS_DDL).write.format("delta").mode("overwrite").save(self.path("progress"))

    def __call__(self, batch_df, batch_id: int) -> None:
        from pyspark.sql import Row

        spark = batch_df.sparkSession
        last = self.last_progress(spark)
        progress_version = self._last[0]
        if batch_id <= last.batch_id:
            return  # already applied: a replay after a crash, nothing to do
        if batch_id != last.batch_id + 1:
            raise RuntimeError(f"batch {batch_id} arrived but the last applied batch is {last.batch_id}: "
                               "the checkpoint and the model tables do not belong together")
        p = self.params
        users, items = self._state(spark, last.model_version)  # the state the last batch left
        update = self.update(batch_df, users, items, last.mu, p)
        stats = update.stats
        if stats.ratings:
            # the new model: the updated rows replace the old ones, new users and items are added
            users = (users.join(update.users.select("userId"), "userId", "left_anti")
                     .unionByName(update.users).localCheckpoint())
            items = (items.join(update.items.select("movieId"), "movieId", "left_anti")
                     .unionByName(update.items).localCheckpoint())
            # one atomic commit, one new version of the model table
            self._model_rows(users, items).coalesce(1).write.format("delta").mode("overwrite").save(self.path("model"))
            version = self._version(spark, "model")
            self._cache = (self._session_key(spark), version, users, items)
        else:
            version = last.model_version
        if self.on_stage:
            self.on_stage(batch_id, "model")
        ratings_seen = last.ratings_seen + stats.ratings
        mu = (last.mu * last.ratings_seen + stats.rating_sum) / ratings_seen if stats.ratings else last.mu
        heldout_rmse = rmse(self._heldout_set(spark), users, items, mu, p.low, p.high) if self.evaluate else None
        row = (int(batch_id), stats.ratings, stats.users, stats.items, stats.new_users, stats.new_items,
               stats.first_timestamp, stats.last_timestamp, float(mu), int(ratings_seen), stats.batch_rmse,
               heldout_rmse, version)
        (spark.createDataFrame([row], PROGRESS_DDL).write.format("delta").mode("append")
         .option("txnAppId", self.app_id).option("txnVersion", int(batch_id))
         .save(self.path("progress")))
        self._remember_progress(progress_version, Row(**dict(zip(PROGRESS_COLUMNS, row))))
        if self.on_stage:
            self.on_stage(batch_id, "progress")


# ------------------------------------------------------------------------------------------------
# The reference implementation in NumPy
# ------------------------------------------------------------------------------------------------


def sgd_update_numpy(mu: float, ratings_seen: int, users: dict, items: dict, ratings, gamma: float, reg: float):
    """One micro-batch of the same update on plain Python/NumPy data (the tests' reference).

    ``users`` / ``items`` map an id to ``(bias, factors)`` and must hold every id of
    ``ratings`` (a list of ``(user, item, rating)``). Returns ``(mu, ratings_seen, users, items)``
    with new dicts; entities not in the batch are unchanged.
    """
    n_user, n_item = defaultdict(int), defaultdict(int)
    g_user = defaultdict(lambda: [0.0, 0.0])
    g_item = defaultdict(lambda: [0.0, 0.0])
    for x, y, r in ratings:
        b_x, U = users[x]
        b_y, P = items[y]
        U, P = np.asarray(U, dtype=float), np.asarray(P, dtype=float)
        e = r - (mu + b_x + b_y + U @ P)
        n_user[x] += 1
        n_item[y] += 1
        g_user[x][0] += e - reg * b_x
        g_user[x][1] = g_user[x][1] + (e * P - reg * U)
        g_item[y][0] += e - reg * b_y
        g_item[y][1] = g_item[y][1] + (e * U - reg * P)

    def apply(table, counts, grads):
        new = {key: (bias, np.asarray(factors, dtype=float)) for key, (bias, factors) in table.items()}
        for key, n in counts.items():
            eta = min(gamma, 1.0 / n)
            bias, factors = new[key]
            new[key] = (bias + eta * grads[key][0], factors + eta * grads[key][1])
        return new

    total = ratings_seen + len(ratings)
    new_mu = (mu * ratings_seen + sum(r for _, _, r in ratings)) / total if ratings else mu
    return new_mu, total, apply(users, n_user, g_user), apply(items, n_item, g_item)
