"""Streaming matrix factorization: biased SGD on Structured Streaming, exactly once (lesson ML17).

The model predicts a rating of user ``x`` for item ``y`` as

    r_hat = mu + b_x + b_y + U_x . P_y

It starts from a batch model trained offline (a baseline predictor for ``mu`` and the biases,
ALS on the baseline's residuals for the factors) and is then updated micro-batch by micro-batch
with biased stochastic gradient descent (learning rate ``gamma``, regularization ``reg``). For
every rating of a micro-batch the error ``e = r - r_hat`` is computed with the model as it was
at the start of the batch; the per-rating gradient steps of each user and each item are summed,
and the step size of an entity that has seen ``N`` ratings so far (this batch's included) is
``eta = min(gamma, 1 / (N + kappa))``::

    b_x <- b_x + eta_x * sum_y (e_xy - reg * b_x)
    U_x <- U_x + eta_x * sum_y (e_xy * P_y - reg * U_x)        (and the same for b_y, P_y)

``mu`` is the running mean of every rating seen. A user or item met for the first time starts
with bias 0 and small pseudo-random factors from a generator seeded with (seed, id), so a
replayed batch initialises it with exactly the same numbers. ``epochs`` > 1 makes several such
passes over each micro-batch.

What lives here (the notebook explains and drives it):

- :func:`holdout_split`, :func:`time_cutoff`: a fixed held-out set and the offline/stream split.
- The stream part is replayed by :mod:`includes.lessons.replay` (files in :data:`REPLAY_ORDER`,
  one per micro-batch).
- :func:`fit_offline_model`, :func:`factor_tables`: the offline baseline + residual ALS model as
  two tables ``users(userId, bias, factors)`` and ``items(movieId, bias, factors)``.
- :func:`predict`, :func:`rmse`: scoring with the tables (unknown users/items count as 0);
  :func:`predict_numpy`, :func:`rmse_numpy` the same on the driver, :func:`factors_from_df`
  a table collected into the driver-side ``Factors``.
- ``sgd_update`` (one micro-batch of biased SGD, vectorised NumPy on the driver) is not here:
  ML17 defines and runs it in a cell of its own, generated into
  :mod:`includes.lessons.streaming_update` (``make export``).
- :class:`StreamingSGD`: the ``foreachBatch`` function. It keeps the model in a Delta table that
  every batch appends its changed rows to, with the batch's progress record in the same commit,
  which makes every batch idempotent (see its docstring); ``update`` is the function it applies to
  each batch (ML17 passes its own cell's ``sgd_update``).
- :func:`sgd_update_numpy`: the same update rating by rating on dictionaries, the reference for
  the unit tests.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from includes.lessons.recommenders import clipped
from includes.lessons.streaming_update import Factors, sgd_update

RATINGS_DDL = "userId INT, movieId INT, rating DOUBLE, timestamp LONG"
USERS_DDL = "userId INT, bias DOUBLE, factors ARRAY<DOUBLE>"
ITEMS_DDL = "movieId INT, bias DOUBLE, factors ARRAY<DOUBLE>"
# A batch's progress record, the metadata of the model table's commit that applied it (JSON):
RECORD_DDL = (
    "app_id STRING, batch_id LONG, ratings LONG, users LONG, items LONG, new_users LONG, new_items LONG, "
    "first_timestamp LONG, last_timestamp LONG, mu DOUBLE, ratings_seen LONG, batch_rmse DOUBLE, heldout_rmse DOUBLE"
)
# the progress table (StreamingSGD.progress): the records with the version of the commit that carries each
PROGRESS_DDL = RECORD_DDL + ", model_version LONG"
# The offline model is recorded as batch -1 in the progress table.
OFFLINE_BATCH_ID = -1
# The replay of the stream part (ReplayFiles, replay_stream) is includes.lessons.replay, ordered by:
REPLAY_ORDER = ("timestamp", "userId", "movieId")
# a commit of a Delta table's log: _delta_log/00000000000000000012.json
_COMMIT_FILE = re.compile(r"\d{20}\.json")


@dataclass(frozen=True)
class SGDParams:
    """Hyperparameters of the streaming update.

    rank: number of latent factors (must match the offline ALS model);
    gamma: learning rate; reg: regularization (lambda) of biases and factors;
    kappa: the step size of an entity that has seen N ratings is min(gamma, 1 / (N + kappa));
    epochs: passes of the update over each micro-batch;
    init_scale: new factors are uniform in [-init_scale, init_scale]; seed: of that initialisation;
    low / high: the rating scale, predictions are clipped to it for RMSE.
    """

    rank: int
    gamma: float
    reg: float
    kappa: float = 0.0
    epochs: int = 1
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
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
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
    as the factor tables of :func:`factor_tables` (cached) with a column ``seen``: the ratings
    each user or movie was trained on.

    The baseline predictor gives ``mu`` and the regularized biases, ALS fitted to what the baseline
    leaves over gives the factors. ``checkpointInterval=5`` cuts ALS's lineage every 5 iterations:
    with the default (10), later queries on the cached factor tables died with a StackOverflowError
    while deserializing their tasks.
    """
    from pyspark.ml.recommendation import ALS

    from includes.lessons.recommenders import fit_baseline, residuals

    from pyspark.sql import functions as F

    baseline = fit_baseline(ratings_df, bias_reg, user_col="userId", item_col="movieId")
    als = ALS(rank=rank, maxIter=max_iter, regParam=als_reg, seed=seed, userCol="userId", itemCol="movieId",
              ratingCol="residual", numUserBlocks=blocks, numItemBlocks=blocks, checkpointInterval=5)
    users_df, items_df = factor_tables(baseline, als.fit(residuals(ratings_df, baseline)))

    def with_seen(df, key):  # the ratings each entity was trained on
        seen = ratings_df.groupBy(key).agg(F.count("*").alias("seen"))
        return df.join(seen, key, "left").select(key, "bias", "factors",
                                                 F.coalesce("seen", F.lit(0)).cast("long").alias("seen"))

    return baseline.mu, with_seen(users_df, "userId").cache(), with_seen(items_df, "movieId").cache()


def dot(a, b):
    """The dot product of two array columns (null if either is null)."""
    from pyspark.sql import functions as F

    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda acc, v: acc + v)


def factors_from_pandas(pdf, id_col: str, rank: int) -> Factors:
    """A factor table as pandas (``id_col``, ``bias``, ``factors`` arrays, ``seen`` if there is
    one, else 0) -> :class:`Factors`."""
    factors = np.array(pdf["factors"].tolist(), dtype=float).reshape(len(pdf), rank)
    seen = pdf["seen"].to_numpy(dtype=np.int64) if "seen" in pdf else np.zeros(len(pdf), dtype=np.int64)
    return Factors(pdf[id_col].to_numpy(dtype=np.int64), pdf["bias"].to_numpy(dtype=float), factors, seen)


def factors_from_df(df, id_col: str, rank: int) -> Factors:
    """A factor table DataFrame (``id_col``, ``bias``, ``factors``, optional ``seen``) collected
    into :class:`Factors`."""
    columns = [id_col, "bias", "factors"] + (["seen"] if "seen" in df.columns else [])
    return factors_from_pandas(df.select(*columns).toPandas(), id_col, rank)


def predict_numpy(user_ids, item_ids, users: Factors, items: Factors, mu: float,
                  low: float = 0.5, high: float = 5.0) -> np.ndarray:
    """:func:`predict` on the driver: clip(mu + b_user + b_item + U . P), unknown ids count as 0."""
    u, i = users.rows(user_ids), items.rows(item_ids)
    known_u, known_i = u >= 0, i >= 0
    raw = (mu + np.where(known_u, users.bias[u], 0.0) + np.where(known_i, items.bias[i], 0.0)
           + np.where(known_u & known_i, np.einsum("nk,nk->n", users.factors[u], items.factors[i]), 0.0))
    return np.clip(raw, low, high)


def rmse_numpy(user_ids, item_ids, ratings, users: Factors, items: Factors, mu: float,
               low: float = 0.5, high: float = 5.0) -> float:
    """:func:`rmse` on the driver, with :func:`predict_numpy`."""
    errors = np.asarray(ratings, dtype=float) - predict_numpy(user_ids, item_ids, users, items, mu, low, high)
    return float(np.sqrt(np.mean(errors ** 2)))


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

    - ``model``: the model as a log of changes, rows ``(batch_id, side, id, bias, factors, seen)``
      (``side`` is ``"user"`` or ``"item"``). :meth:`initialize` writes the offline model as batch
      -1 (every user and item); every micro-batch appends, as one commit, the rows of the users and
      items it updated or added. The model after batch ``b`` is, for every (side, id), its row with
      the highest ``batch_id`` up to ``b``: :meth:`model_at` and :meth:`tables_after` return it as
      the two tables ``users(userId, bias, factors, seen)`` and ``items(movieId, ...)``.
    - Every commit of ``model`` carries its batch's progress record in Delta's commit metadata
      (the ``userMetadata`` writer option, JSON): the batch's statistics, the global mean ``mu``
      and count ``ratings_seen`` after it, the RMSE on the held-out set after it.
      :meth:`progress` reads the records back from the table's history, with the commit's version
      as ``model_version``.
    - ``heldout``: the fixed held-out ratings.

    Exactly once. Structured Streaming runs a micro-batch again, with the same ``batch_id`` and
    the same files, if the query stopped before it committed the batch to its checkpoint, so the
    function must be idempotent. A batch's rows and its record are one Delta commit, so the batch
    is either entirely in the table or not at all:

    1. if the latest commit's record has this ``batch_id`` or a later one, the batch was applied:
       do nothing;
    2. otherwise compute the update from the model as of the latest commit (the state the previous
       batch left) and append the changed rows with the batch's record, in one commit.

    A crash before the commit leaves nothing behind: the redo computes the same rows from the same
    state and the same file. A crash after it, before Spark commits the batch to its checkpoint,
    is skipped by step 1. Delta's ``txnAppId``/``txnVersion`` writer options are not used: a write
    that carries them first looks up the identifiers the table has recorded, which reconstructs the
    table's state (Spark jobs over its log) at every batch; a plain append needs no state.

    Where the work happens. A micro-batch holds a few thousand ratings and the model a few
    thousand rows of ``rank`` numbers (under 1 MB), so the batch is brought to the driver
    (``toPandas``, one Spark job) and ``update`` (ML17's ``sgd_update``) runs there in NumPy
    on the model held in memory as :class:`~includes.lessons.streaming_update.Factors`. Spark's
    part per batch is reading the batch's file and one Delta append; the held-out RMSE is
    computed in NumPy too. The latest version and its record are read from the Delta log's files
    (no Spark job) when the table is on a local file system, else from the table's history.

    The instance keeps the model it has just written in memory with its version, so the next
    batch need not read it back from Delta while that version is the latest. It assumes it is the
    only writer of its tables. ``on_stage(batch_id, stage)``, if given, is called at the stages
    ``"computed"`` (the update is computed, nothing is written yet) and ``"committed"`` (the
    batch's commit is in the table): tests and the lesson use it to simulate a crash.
    ``evaluate=False`` skips the held-out RMSE of every batch.
    """

    def __init__(self, root: os.PathLike | str, params: SGDParams, app_id: str = "streaming-sgd",
                 on_stage: Callable[[int, str], None] | None = None, evaluate: bool = True,
                 update: Callable | None = None):
        self.root = str(root)
        # the micro-batch update: (ratings pdf, users, items, mu, params) -> Update(users, items, stats)
        self.update = sgd_update if update is None else update
        self.params = params
        self.app_id = app_id  # names the writer in every commit's record
        self.on_stage = on_stage
        self.evaluate = evaluate  # False: no held-out RMSE per batch (heldout_rmse stays null)
        self._cache = None  # (model version, users Factors, items Factors)
        self._last = None  # (model version, the progress row of that version)
        self._heldout = None  # (user ids, item ids, ratings) of the held-out set, NumPy

    def __getstate__(self):  # the in-memory state stays behind if the function is shipped elsewhere
        state = dict(self.__dict__)
        state.update(_cache=None, _last=None, _heldout=None)
        return state

    def path(self, table: str) -> str:
        return os.path.join(self.root, table)

    # reading -----------------------------------------------------------------------------------
    def progress(self, spark):
        """One row per applied batch (batch -1 is the offline model), ordered by batch_id: the
        records of the model table's commits, read from its history."""
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        history = DeltaTable.forPath(spark, self.path("model")).history()
        return (history.filter(F.col("userMetadata").isNotNull())
                .select(F.from_json("userMetadata", RECORD_DDL).alias("record"), F.col("version").alias("model_version"))
                .select("record.*", "model_version").orderBy("batch_id"))

    def last_progress(self, spark):
        """The progress row of the last applied batch: the record of the model table's latest
        commit (remembered while that version is the latest)."""
        version = self._version(spark)
        if self._last is None or self._last[0] != version:
            self._remember_progress(version, self._record(spark, version))
        return self._last[1]

    def _record(self, spark, version: int) -> dict:
        """The progress record that commit ``version`` of the model table carries."""
        log_file = os.path.join(self.path("model"), "_delta_log", f"{version:020d}.json")
        text = None
        if os.path.isfile(log_file):
            with open(log_file, encoding="utf-8") as log:
                for line in log:
                    action = json.loads(line)
                    if "commitInfo" in action:
                        text = action["commitInfo"].get("userMetadata")
                        break
        else:
            from delta.tables import DeltaTable
            from pyspark.sql import functions as F

            row = (DeltaTable.forPath(spark, self.path("model")).history()
                   .filter(F.col("version") == version).select("userMetadata").first())
            text = None if row is None else row[0]
        if text is None:
            raise RuntimeError(f"version {version} of {self.path('model')} carries no progress record: something "
                               "other than StreamingSGD wrote it; start a new model with initialize()")
        return json.loads(text)

    def _remember_progress(self, version: int, record: dict) -> None:
        """After ``record`` was committed as ``version`` of the model table: :meth:`last_progress`
        returns it without reading the log."""
        from pyspark.sql import Row

        self._last = (version, Row(**record, model_version=version))

    def model_at(self, spark, version: int):
        """``(users_df, items_df)`` of version ``version`` of the model table (time travel): every
        user's and item's row with the highest batch_id in that version."""
        from pyspark.sql import functions as F

        model = spark.read.format("delta").option("versionAsOf", version).load(self.path("model"))
        latest = (model.groupBy("side", "id")
                  .agg(F.max_by(F.struct("bias", "factors", "seen"), "batch_id").alias("row"))
                  .select("side", "id", "row.*"))
        return tuple(latest.filter(F.col("side") == side).select(F.col("id").alias(key), "bias", "factors", "seen")
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

    def _version(self, spark) -> int:
        """The latest version of the model table: the highest commit file in its Delta log on a
        local file system (no Spark job), else the table's history."""
        log = os.path.join(self.path("model"), "_delta_log")
        if os.path.isdir(log):
            versions = [int(name[:-5]) for name in os.listdir(log) if _COMMIT_FILE.fullmatch(name)]
            if versions:
                return max(versions)
        from delta.tables import DeltaTable

        return DeltaTable.forPath(spark, self.path("model")).history(1).select("version").first()[0]

    def _state(self, spark, version: int):
        """The model at ``version`` as ``(users, items)`` Factors (rows sorted by id), from memory
        if this instance wrote or read that version last."""
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1], self._cache[2]
        users_df, items_df = self.model_at(spark, version)
        users = factors_from_df(users_df.orderBy("userId"), "userId", self.params.rank)
        items = factors_from_df(items_df.orderBy("movieId"), "movieId", self.params.rank)
        self._cache = (version, users, items)
        return users, items

    def _heldout_rmse(self, spark, users, items, mu: float) -> float:
        if self._heldout is None:
            pdf = spark.read.format("delta").load(self.path("heldout")).toPandas()
            self._heldout = (pdf["userId"].to_numpy(), pdf["movieId"].to_numpy(), pdf["rating"].to_numpy(dtype=float))
        return rmse_numpy(*self._heldout, users, items, mu, self.params.low, self.params.high)

    # writing -----------------------------------------------------------------------------------
    def _commit(self, spark, batch_id: int, users, items, record: dict) -> int:
        """Append the rows ``users`` and ``items`` (Factors) as ``batch_id`` to the model table,
        with ``record`` as the commit's metadata, in one commit; returns the new version. The rows
        go to Spark as one Arrow table (no Python row objects)."""
        import pyarrow as pa

        rank = self.params.rank
        n = len(users.ids) + len(items.ids)
        factors = np.vstack([users.factors, items.factors]).reshape(-1)
        table = pa.table({
            "batch_id": pa.array(np.full(n, batch_id, dtype=np.int64), pa.int64()),
            "side": pa.array(["user"] * len(users.ids) + ["item"] * len(items.ids), pa.string()),
            "id": pa.array(np.concatenate([users.ids, items.ids]).astype(np.int32), pa.int32()),
            "bias": pa.array(np.concatenate([users.bias, items.bias]), pa.float64()),
            "factors": pa.ListArray.from_arrays(np.arange(0, len(factors) + 1, rank, dtype=np.int32),
                                                pa.array(factors, pa.float64())),
            "seen": pa.array(np.concatenate([users.seen, items.seen]).astype(np.int64), pa.int64()),
        })
        (spark.createDataFrame(table).coalesce(1).write.format("delta").mode("append")
         .option("userMetadata", json.dumps(record)).save(self.path("model")))
        version = self._version(spark)
        self._remember_progress(version, record)
        return version

    def _record_of(self, batch_id: int, stats: dict, mu: float, ratings_seen: int, heldout_rmse) -> dict:
        """A batch's progress record (JSON-ready: plain ints, floats and None)."""
        def number(value, kind):
            return None if value is None else kind(value)

        return {"app_id": self.app_id, "batch_id": int(batch_id),
                **{key: number(stats.get(key), int) for key in ("ratings", "users", "items", "new_users",
                                                                 "new_items", "first_timestamp", "last_timestamp")},
                "mu": float(mu), "ratings_seen": int(ratings_seen), "batch_rmse": number(stats.get("batch_rmse"), float),
                "heldout_rmse": number(heldout_rmse, float)}

    def _delete_tables(self, spark) -> None:
        """Remove the model and held-out tables if they exist (any Hadoop file system)."""
        hadoop_fs, conf = spark.sparkContext._jvm.org.apache.hadoop.fs, spark.sparkContext._jsc.hadoopConfiguration()
        for table in ("model", "heldout"):
            path = hadoop_fs.Path(self.path(table))
            path.getFileSystem(conf).delete(path, True)

    def initialize(self, users_df, items_df, heldout_df, mu: float, ratings_seen: int):
        """Start a new model: delete the tables under ``root`` if they exist, write the held-out
        set, then the offline model as batch -1, version 0 of ``model``, whose record holds the
        offline model's held-out RMSE. The tables may have a column ``seen`` (ratings each entity
        was trained on, as :func:`fit_offline_model` gives); 0 without it."""
        spark = users_df.sparkSession
        self._delete_tables(spark)
        heldout_df.select("userId", "movieId", "rating").coalesce(1) \
            .write.format("delta").mode("overwrite").save(self.path("heldout"))
        self._cache, self._last, self._heldout = None, None, None
        users = factors_from_df(users_df, "userId", self.params.rank)
        items = factors_from_df(items_df, "movieId", self.params.rank)
        heldout_rmse = self._heldout_rmse(spark, users, items, mu)
        record = self._record_of(OFFLINE_BATCH_ID, {key: 0 for key in ("ratings", "users", "items", "new_users",
                                                                       "new_items")}, mu, ratings_seen, heldout_rmse)
        self._cache = (self._commit(spark, OFFLINE_BATCH_ID, users, items, record), users, items)

    def __call__(self, batch_df, batch_id: int) -> None:
        spark = batch_df.sparkSession
        last = self.last_progress(spark)
        if batch_id <= last.batch_id:
            return  # already applied: a replay after a crash, nothing to do
        if batch_id != last.batch_id + 1:
            raise RuntimeError(f"batch {batch_id} arrived but the last applied batch is {last.batch_id}: "
                               "the checkpoint and the model table do not belong together")
        users, items = self._state(spark, last.model_version)  # the state the last batch left
        ratings = batch_df.select("userId", "movieId", "rating", "timestamp").toPandas()  # one small Spark job
        update = self.update(ratings, users, items, last.mu, self.params)  # on the driver, in NumPy
        stats = update.stats
        if stats["ratings"]:
            users, items = update.users, update.items
        ratings_seen = last.ratings_seen + stats["ratings"]
        mu = (last.mu * last.ratings_seen + stats["rating_sum"]) / ratings_seen if stats["ratings"] else last.mu
        heldout_rmse = self._heldout_rmse(spark, users, items, mu) if self.evaluate else None
        record = self._record_of(batch_id, stats, mu, ratings_seen, heldout_rmse)
        if self.on_stage:
            self.on_stage(batch_id, "computed")
        # the rows this batch changed or added, and the record, in one commit
        changed_users = _subset(users, np.isin(users.ids, ratings["userId"].to_numpy()))
        changed_items = _subset(items, np.isin(items.ids, ratings["movieId"].to_numpy()))
        self._cache = (self._commit(spark, batch_id, changed_users, changed_items, record), users, items)
        if self.on_stage:
            self.on_stage(batch_id, "committed")


def _subset(side: Factors, mask) -> Factors:
    """The rows of ``side`` where ``mask`` is true."""
    return Factors(side.ids[mask], side.bias[mask], side.factors[mask], side.seen[mask])


# ------------------------------------------------------------------------------------------------
# The reference implementation in NumPy
# ------------------------------------------------------------------------------------------------


def sgd_update_numpy(mu: float, ratings_seen: int, users: dict, items: dict, ratings, gamma: float, reg: float,
                     epochs: int = 1, kappa: float = 0.0, seen: dict | None = None):
    """One micro-batch of the same update on plain Python/NumPy data, rating by rating (the
    tests' reference for the vectorised ``sgd_update``).

    ``users`` / ``items`` map an id to ``(bias, factors)`` and must hold every id of
    ``ratings`` (a list of ``(user, item, rating)``). ``seen`` maps ``("user", id)`` and
    ``("item", id)`` to the ratings that entity has seen (missing: 0); it is updated in place.
    The step size of an entity that has seen N ratings, this batch's included, is
    min(gamma, 1 / (N + kappa)). ``epochs`` passes over the batch, each computing the errors with
    the model as the previous pass left it (and ``mu`` as it was before the batch). Returns
    ``(mu, ratings_seen, users, items)`` with new dicts; entities not in the batch are unchanged.
    """
    seen = {} if seen is None else seen
    for x, y, _ in ratings:
        seen[("user", x)] = seen.get(("user", x), 0) + 1
        seen[("item", y)] = seen.get(("item", y), 0) + 1

    def eta(side, key):
        return min(gamma, 1.0 / max(seen[(side, key)] + kappa, 1))

    users = {key: (bias, np.asarray(factors, dtype=float)) for key, (bias, factors) in users.items()}
    items = {key: (bias, np.asarray(factors, dtype=float)) for key, (bias, factors) in items.items()}
    for _ in range(epochs if ratings else 0):
        users, items = _one_pass(mu, users, items, ratings, reg, lambda key: eta("user", key),
                                 lambda key: eta("item", key))
    total = ratings_seen + len(ratings)
    new_mu = (mu * ratings_seen + sum(r for _, _, r in ratings)) / total if ratings else mu
    return new_mu, total, users, items


def _one_pass(mu, users, items, ratings, reg, eta_user, eta_item):
    g_user = defaultdict(lambda: [0.0, 0.0])
    g_item = defaultdict(lambda: [0.0, 0.0])
    for x, y, r in ratings:
        b_x, U = users[x]
        b_y, P = items[y]
        e = r - (mu + b_x + b_y + U @ P)
        g_user[x][0] += e - reg * b_x
        g_user[x][1] = g_user[x][1] + (e * P - reg * U)
        g_item[y][0] += e - reg * b_y
        g_item[y][1] = g_item[y][1] + (e * U - reg * P)

    def apply(table, grads, eta):
        new = dict(table)
        for key, (g_bias, g_factors) in grads.items():
            bias, factors = new[key]
            new[key] = (bias + eta(key) * g_bias, factors + eta(key) * g_factors)
        return new

    return apply(users, g_user, eta_user), apply(items, g_item, eta_item)
