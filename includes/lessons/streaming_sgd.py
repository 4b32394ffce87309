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
- :class:`StreamingSGD`: the ``foreachBatch`` function. It keeps the model in versioned Delta
  tables and makes every batch idempotent (see its docstring); ``update`` is the function it
  applies to each batch (ML17 passes its own cell's ``sgd_update``).
- :func:`sgd_update_numpy`: the same update rating by rating on dictionaries, the reference for
  the unit tests.
"""

from __future__ import annotations

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

    - ``model``: the factor tables of users and items in one table (``side`` is ``"user"`` or
      ``"item"``, then ``id, bias, factors, seen``). Every batch writes the whole new model as one new
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
    3. compute the new model from that state and write it with Delta's ``txnAppId``/``txnVersion``
       writer options (``app_id``, ``batch_id``): Delta records the pair in the same commit and
       drops a later write of the same batch by the same application. After a crash between this
       write and the progress row, the redo computes the same model from the same state and the
       same file, Delta drops its write, and the batch records the version the crashed attempt
       wrote: a crash costs no extra version and never applies a batch twice;
    4. append the progress row (a plain append: step 1 skips any batch that already has one).

    One Delta transaction identifier per batch, on the model write: the overwrite reconstructs
    the table's state anyway (to know which files it replaces), so checking the identifier there
    costs nothing more, while on the progress append it would cost a second reconstruction.
    ``initialize`` deletes existing tables first: the identifiers a table has recorded outlive an
    overwrite, and a new stream on an old table would see its batches dropped as already written.

    Where the work happens. A micro-batch holds a few thousand ratings and the model a few
    thousand rows of ``rank`` numbers (under 1 MB), so the batch is brought to the driver
    (``toPandas``, one Spark job) and ``update`` (ML17's ``sgd_update``) runs there in NumPy
    on the model held in memory as :class:`~includes.lessons.streaming_update.Factors`. Spark's
    part per batch is reading the batch's file and the two Delta commits (the model version and
    the progress row); the held-out RMSE is computed in NumPy too. The table versions are read
    from the Delta log's file names (no Spark job) when the tables are on a local file system.

    The instance keeps the model it has just written in memory with its version, so the next
    batch need not read it back from Delta while that version is the one recorded. It assumes it
    is the only writer of its tables. ``on_stage(batch_id, stage)``, if given, is called after the
    stages ``"model"`` (model version committed) and ``"progress"``: tests and the lesson use it
    to simulate a crash. ``evaluate=False`` skips the held-out RMSE of every batch.
    """

    def __init__(self, root: os.PathLike | str, params: SGDParams, app_id: str = "streaming-sgd",
                 on_stage: Callable[[int, str], None] | None = None, evaluate: bool = True,
                 update: Callable | None = None):
        self.root = str(root)
        # the micro-batch update: (ratings pdf, users, items, mu, params) -> Update(users, items, stats)
        self.update = sgd_update if update is None else update
        self.params = params
        self.app_id = app_id
        self.on_stage = on_stage
        self.evaluate = evaluate  # False: no held-out RMSE per batch (heldout_rmse stays null)
        self._cache = None  # (model version, users Factors, items Factors)
        self._last = None  # (progress table version, last progress row)
        self._heldout = None  # (user ids, item ids, ratings) of the held-out set, NumPy

    def __getstate__(self):  # the in-memory state stays behind if the function is shipped elsewhere
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

    def _remember_progress(self, version: int, row: tuple) -> None:
        """After writing ``row`` (a tuple in PROGRESS_COLUMNS order) as ``version`` of the progress
        table: :meth:`last_progress` returns it without reading the table back."""
        from pyspark.sql import Row

        self._last = (version, Row(**dict(zip(PROGRESS_COLUMNS, row))))

    def model_at(self, spark, version: int):
        """``(users_df, items_df)`` of version ``version`` of the model table (time travel)."""
        from pyspark.sql import functions as F

        model = spark.read.format("delta").option("versionAsOf", version).load(self.path("model"))
        return tuple(model.filter(F.col("side") == side).select(F.col("id").alias(key), "bias", "factors", "seen")
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
        """The latest version of ``table``: the highest commit file in its Delta log on a local
        file system (no Spark job), else the table's history."""
        log = os.path.join(self.path(table), "_delta_log")
        if os.path.isdir(log):
            versions = [int(name[:-5]) for name in os.listdir(log) if _COMMIT_FILE.fullmatch(name)]
            if versions:
                return max(versions)
        from delta.tables import DeltaTable

        return DeltaTable.forPath(spark, self.path(table)).history(1).select("version").first()[0]

    def _state(self, spark, version: int):
        """The model at ``version`` as ``(users, items)`` Factors, from memory if this instance
        wrote or read that version last."""
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1], self._cache[2]
        pdf = (spark.read.format("delta").option("versionAsOf", version).load(self.path("model"))
               .select("side", "id", "bias", "factors", "seen").toPandas())
        users, items = (factors_from_pandas(pdf[pdf["side"] == side], "id", self.params.rank)
                        for side in ("user", "item"))
        self._cache = (version, users, items)
        return users, items

    def _heldout_rmse(self, spark, users, items, mu: float) -> float:
        if self._heldout is None:
            pdf = spark.read.format("delta").load(self.path("heldout")).toPandas()
            self._heldout = (pdf["userId"].to_numpy(), pdf["movieId"].to_numpy(), pdf["rating"].to_numpy(dtype=float))
        return rmse_numpy(*self._heldout, users, items, mu, self.params.low, self.params.high)

    # writing -----------------------------------------------------------------------------------
    @staticmethod
    def _model_rows(users_df, items_df):
        from pyspark.sql import functions as F

        return (users_df.select(F.lit("user").alias("side"), F.col("userId").alias("id"), "bias", "factors", "seen")
                .unionByName(items_df.select(F.lit("item").alias("side"), F.col("movieId").alias("id"),
                                             "bias", "factors", "seen")))

    def _write_model(self, spark, users, items, batch_id: int) -> int:
        """Overwrite the model table with ``users`` and ``items`` (Factors) in one commit tagged with
        the transaction identifier (``app_id``, ``batch_id``); returns the table's latest version,
        the new one, or the one an earlier attempt of the batch wrote if Delta dropped this write.
        The rows go to Spark as one Arrow table (no Python row objects)."""
        import pyarrow as pa

        rank = self.params.rank
        factors = np.vstack([users.factors, items.factors]).reshape(-1)
        table = pa.table({
            "side": pa.array(["user"] * len(users.ids) + ["item"] * len(items.ids), pa.string()),
            "id": pa.array(np.concatenate([users.ids, items.ids]).astype(np.int32), pa.int32()),
            "bias": pa.array(np.concatenate([users.bias, items.bias]), pa.float64()),
            "factors": pa.ListArray.from_arrays(np.arange(0, len(factors) + 1, rank, dtype=np.int32),
                                                pa.array(factors, pa.float64())),
            "seen": pa.array(np.concatenate([users.seen, items.seen]).astype(np.int64), pa.int64()),
        })
        (spark.createDataFrame(table).coalesce(1).write.format("delta").mode("overwrite")
         .option("txnAppId", self.app_id).option("txnVersion", int(batch_id))
         .save(self.path("model")))
        return self._version(spark, "model")

    def _delete_tables(self, spark) -> None:
        """Remove the model, progress and held-out tables if they exist (any Hadoop file system)."""
        hadoop_fs, conf = spark.sparkContext._jvm.org.apache.hadoop.fs, spark.sparkContext._jsc.hadoopConfiguration()
        for table in ("model", "progress", "heldout"):
            path = hadoop_fs.Path(self.path(table))
            path.getFileSystem(conf).delete(path, True)

    def initialize(self, users_df, items_df, heldout_df, mu: float, ratings_seen: int):
        """Start a new model: delete the tables under ``root`` if they exist, then write the offline
        model as version 0 of ``model``, the held-out set, and the progress row of batch -1 (with the
        offline model's held-out RMSE). The tables may have a column ``seen`` (ratings each entity
        was trained on, as :func:`fit_offline_model` gives); 0 without it."""
        from pyspark.sql import functions as F

        spark = users_df.sparkSession
        def table(df, key):  # ``seen`` is 0 where the tables do not say what each entity was trained on
            seen = F.col("seen").cast("long") if "seen" in df.columns else F.lit(0).cast("long")
            return df.select(key, F.col("bias").cast("double"), F.col("factors").cast("array<double>"),
                             seen.alias("seen"))

        users, items = table(users_df, "userId"), table(items_df, "movieId")
        self._delete_tables(spark)
        self._model_rows(users, items).coalesce(1).write.format("delta").mode("overwrite").save(self.path("model"))
        heldout_df.select("userId", "movieId", "rating").coalesce(1) \
            .write.format("delta").mode("overwrite").save(self.path("heldout"))
        self._cache, self._last, self._heldout = None, None, None
        version = self._version(spark, "model")
        heldout_rmse = self._heldout_rmse(spark, *self._state(spark, version), mu)
        row = (OFFLINE_BATCH_ID, 0, 0, 0, 0, 0, None, None, float(mu), int(ratings_seen), None, heldout_rmse, version)
        spark.createDataFrame([row], PROGRESS_DDL).write.format("delta").mode("overwrite").save(self.path("progress"))
        self._remember_progress(self._version(spark, "progress"), row)  # the first batch need not read it back

    def __call__(self, batch_df, batch_id: int) -> None:
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
        ratings = batch_df.select("userId", "movieId", "rating", "timestamp").toPandas()  # one small Spark job
        update = self.update(ratings, users, items, last.mu, p)  # on the driver, in NumPy
        stats = update.stats
        if stats["ratings"]:
            users, items = update.users, update.items
            version = self._write_model(spark, users, items, batch_id)  # one atomic commit
            self._cache = (version, users, items)
        else:
            version = last.model_version
        if self.on_stage:
            self.on_stage(batch_id, "model")
        ratings_seen = last.ratings_seen + stats["ratings"]
        mu = (last.mu * last.ratings_seen + stats["rating_sum"]) / ratings_seen if stats["ratings"] else last.mu
        heldout_rmse = self._heldout_rmse(spark, users, items, mu) if self.evaluate else None
        row = (int(batch_id), stats["ratings"], stats["users"], stats["items"], stats["new_users"],
               stats["new_items"], stats["first_timestamp"], stats["last_timestamp"], float(mu), int(ratings_seen),
               stats["batch_rmse"], heldout_rmse, version)
        spark.createDataFrame([row], PROGRESS_DDL).write.format("delta").mode("append").save(self.path("progress"))
        self._remember_progress(progress_version + 1, row)
        if self.on_stage:
            self.on_stage(batch_id, "progress")


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
