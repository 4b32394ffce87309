"""Fit times, throughput and accuracy of the course's models and queries on this machine.

Run from the course folder with the course's interpreter:

    .venv/bin/python benchmarks/course.py              # every section
    .venv/bin/python benchmarks/course.py als          # only the named sections
    .venv/bin/python benchmarks/course.py --list       # what the sections are

This is a script, not a test: it prints numbers for the prose of the notebooks (which never print
timings themselves, because their stored outputs must be reproducible). Timings depend on the
machine and on whatever else runs on it, so the header prints the cores and the load average.

Sections (add new ones with the ``@section`` decorator; each gets a :class:`Bench` whose Spark
session starts on first use, so sections that need no Spark stay fast):

- ``als``: MovieLens 100K, ``ua.base`` -> ``ua.test`` (lesson ML16). ALS with the settings of the
  003 notebook, the tuned ALS of ML16 (its TrainValidationSplit search and the chosen settings),
  and ML16's baseline predictor + ALS on its residuals.
- ``jester``: the Jester lab (ML16L): loading, Arrow on/off, NumPy ALS against Spark ALS.
- ``streaming``: ML17's streaming SGD on MovieLens latest-small replayed as files: per-batch
  latency, Spark jobs per batch and throughput, with and without the per-batch held-out
  evaluation, and with larger batches; the final held-out RMSE against batch ALS retrained on all
  training ratings. Results: ``benchmarks/results/streaming.json``.
- ``serving``: one (user, movie) prediction from ML17's offline factor tables: cached DataFrames
  (filter + first), a Delta table in one file and one range-partitioned by id (data skipping), an
  RDD partitioned by id (``lookup``), a dict and NumPy arrays on the driver; median and p95
  latency per request. Results: ``benchmarks/results/serving.json``.
- ``neighbours``: MLE05L's item-item and user-user similarity matrices (the lab's exported
  functions) at growing numbers of movies and users: seconds and MB. Results:
  ``benchmarks/results/neighbours.json``.
- ``tuning``: the Airbnb price models: ML08's CrossValidator grid with parallelism 1 and 2, ML09's
  Hyperopt TPE, random search and Optuna TPE on its budget and a larger one (best validation
  RMSE, seconds), ML09L's SparkTrials with parallelism 1 and 2.
- ``deployment``: ML12's scikit-learn forest scored by Spark in four ways (scalar and iterator
  pandas UDF, ``mapInPandas``, ``mlflow.pyfunc.spark_udf``), rows/s at two Arrow batch sizes;
  ML11's SparkXGBRegressor fit with 1 and 2 workers; ML10's REST endpoint (``mlflow models serve``
  of a Spark pipeline and of a scikit-learn model: start-up, memory, latency, requests/s) and batch
  scoring rows/s.
- ``realtime``: ML18's hashtag query on the posts feed: from the socket at ML18's rate, five times
  faster and as fast as possible (posts/s, micro-batch duration, end-to-end latency from the
  server's send to the committed micro-batch), and from files into Delta or memory.
- ``joblib``: MLE06's GridSearchCV (24 forest fits) in one process, with loky and with
  joblibspark's Spark backend (seconds, best CV RMSE, the same scores every way).
- ``forecasting``: MLE03's 19 MovieLens genre series (monthly ratings): one damped-trend model per
  series, a Python loop on the driver (default BLAS threads and one thread) vs
  ``groupBy.applyInPandas``, also for ten times as many series.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
if str(COURSE_ROOT) not in sys.path:
    sys.path.insert(0, str(COURSE_ROOT))

SEED = 5757
# The settings ML16 chose (TrainValidationSplit for plain ALS; a per-user validation split of
# ua.base for the hybrid). Keep them in step with the notebook.
ML16_BLOCKS = 4
ML16_TUNING_GRID = {"rank": [10, 25], "regParam": [0.1, 0.15, 0.2]}
ML16_TUNED_ALS = {"rank": 25, "regParam": 0.15, "maxIter": 15}
ML16_HYBRID = {"bias_reg": 5, "rank": 50, "regParam": 0.13, "maxIter": 15}


@dataclass
class Section:
    name: str
    description: str
    run: Callable[["Bench"], None]
    datasets: tuple[str, ...] = ()


SECTIONS: dict[str, Section] = {}


def section(name: str, description: str, datasets: tuple[str, ...] = ()):
    """Register a benchmark section under ``name`` (selectable on the command line); ``datasets``
    are installed (from the mirror or the original URLs) before it runs if they are missing."""

    def register(function: Callable[["Bench"], None]) -> Callable[["Bench"], None]:
        SECTIONS[name] = Section(name, description, function, tuple(datasets))
        return function

    return register


@dataclass
class Bench:
    """Shared state of a benchmark run: the Spark session (started on first use) and helpers."""

    _spark: object = field(default=None, repr=False)

    @property
    def spark(self):
        if self._spark is None:
            from includes.runtime.classroom import setup

            started = time.perf_counter()
            classroom = setup("benchmarks")
            self._spark = classroom.spark
            print(f"(Spark session started in {time.perf_counter() - started:.1f} s, master {classroom.master})")
        return self._spark

    @staticmethod
    def timed(function, *args, **kwargs):
        """(result, seconds) of one call."""
        started = time.perf_counter()
        result = function(*args, **kwargs)
        return result, time.perf_counter() - started


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


# ------------------------------------------------------------------------------------------------
# MovieLens 100K (ML16)
# ------------------------------------------------------------------------------------------------


@section("als", "MovieLens 100K ua.base -> ua.test: ALS (003 settings), tuned ALS, baseline + residual ALS",
         datasets=("ml-100k",))
def bench_als(bench: Bench) -> None:
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit
    from pyspark.sql import functions as F

    from includes.data.movielens import ratings_100k
    from includes.lessons.recommenders import add_baseline, clipped, fit_baseline, hybrid_predict, residuals

    spark = bench.spark
    train_df = ratings_100k(spark, "ua.base").drop("timestamp").cache()
    test_df = ratings_100k(spark, "ua.test").drop("timestamp").cache()
    train_df.count(), test_df.count()
    rmse = RegressionEvaluator(labelCol="rating", metricName="rmse")

    # warm-up (JIT, first jobs), not timed
    ALS(rank=5, maxIter=2, seed=SEED).fit(train_df)

    rows = []
    for rank, max_iter in [(10, 5), (10, 20), (100, 20)]:
        model, seconds = bench.timed(ALS(rank=rank, maxIter=max_iter, seed=SEED, coldStartStrategy="drop").fit, train_df)
        rows.append({"model": f"ALS rank {rank}, {max_iter} iter. (003 settings, 10 blocks)",
                     "fit s": f"{seconds:.1f}", "RMSE ua.test": f"{rmse.evaluate(model.transform(test_df)):.4f}"})

    als = ALS(maxIter=ML16_TUNED_ALS["maxIter"], seed=SEED, coldStartStrategy="drop",
              numUserBlocks=ML16_BLOCKS, numItemBlocks=ML16_BLOCKS)
    grid = (ParamGridBuilder().addGrid(als.rank, ML16_TUNING_GRID["rank"])
            .addGrid(als.regParam, ML16_TUNING_GRID["regParam"]).build())
    tvs = TrainValidationSplit(estimator=als, estimatorParamMaps=grid, evaluator=rmse, trainRatio=0.8,
                               seed=SEED, parallelism=1)
    tvs_model, seconds = bench.timed(tvs.fit, train_df)
    rows.append({"model": f"TrainValidationSplit, {len(grid)} combinations + refit",
                 "fit s": f"{seconds:.1f}", "RMSE ua.test": f"{rmse.evaluate(tvs_model.bestModel.transform(test_df)):.4f}"})

    tuned = ALS(rank=ML16_TUNED_ALS["rank"], regParam=ML16_TUNED_ALS["regParam"], maxIter=ML16_TUNED_ALS["maxIter"],
                seed=SEED, coldStartStrategy="drop", numUserBlocks=ML16_BLOCKS, numItemBlocks=ML16_BLOCKS)
    model, seconds = bench.timed(tuned.fit, train_df)
    rows.append({"model": f"tuned ALS rank {ML16_TUNED_ALS['rank']}, regParam {ML16_TUNED_ALS['regParam']}, "
                          f"{ML16_TUNED_ALS['maxIter']} iter. ({ML16_BLOCKS} blocks)",
                 "fit s": f"{seconds:.1f}", "RMSE ua.test": f"{rmse.evaluate(model.transform(test_df)):.4f}"})

    baseline, bias_seconds = bench.timed(fit_baseline, train_df, ML16_HYBRID["bias_reg"])
    test_scored = add_baseline(test_df, baseline).cache()
    baseline_rmse = rmse.evaluate(test_scored.withColumn("prediction", clipped(F.col("baseline"))))
    rows.append({"model": f"baseline mu + b_u + b_i (bias_reg {ML16_HYBRID['bias_reg']})",
                 "fit s": f"{bias_seconds:.1f}", "RMSE ua.test": f"{baseline_rmse:.4f}"})

    residuals_df = residuals(train_df, baseline).cache()
    residuals_df.count()
    residual_als = ALS(rank=ML16_HYBRID["rank"], regParam=ML16_HYBRID["regParam"], maxIter=ML16_HYBRID["maxIter"],
                       seed=SEED, ratingCol="residual", numUserBlocks=ML16_BLOCKS, numItemBlocks=ML16_BLOCKS)
    residual_model, als_seconds = bench.timed(residual_als.fit, residuals_df)
    predictions = hybrid_predict(residual_model, test_scored)
    rows.append({"model": f"baseline + residual ALS rank {ML16_HYBRID['rank']}, regParam {ML16_HYBRID['regParam']}, "
                          f"{ML16_HYBRID['maxIter']} iter. (all 9430 test ratings)",
                 "fit s": f"{bias_seconds + als_seconds:.1f}", "RMSE ua.test": f"{rmse.evaluate(predictions):.4f}"})

    print_table(rows, ["model", "fit s", "RMSE ua.test"])


# ------------------------------------------------------------------------------------------------
# Jester (ML16L): section "jester" goes here
# JESTER-SECTION-MARKER
# The settings of ML16L; its NumPy ALS comes from the lab's own cells (#@save jester_als).
JESTER_SEED = 42
JESTER_ALS = {"rank": 10, "maxIter": 20, "regParam": 0.1, "blocks": 4}


@section("jester", "Jester (ML16L): .xls load, createDataFrame with/without Arrow, NumPy ALS vs Spark ALS",
         datasets=("jester",))
def bench_jester(bench: Bench) -> None:
    import numpy as np
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F
    from threadpoolctl import threadpool_limits

    from includes.lessons.jester_als import als_numpy

    from includes.data.jester import NOT_RATED, read_jester

    raw_pdf, load_s = bench.timed(read_jester)
    ratings_pdf = raw_pdf.mask(raw_pdf == NOT_RATED)
    rows = [{"step": "read jester-data-1.xls with pandas (calamine) + checks", "seconds": f"{load_s:.1f}", "RMSE held-out": ""}]

    spark = bench.spark
    arrow_key = "spark.sql.execution.arrow.pyspark.enabled"
    arrow_before = spark.conf.get(arrow_key)
    wide_pdf = ratings_pdf.reset_index()
    long_pdf = (ratings_pdf.stack(future_stack=True).dropna().rename("rating").reset_index()
                .astype({"user": "int32", "joke": "int32"}))
    spark.createDataFrame(wide_pdf.head(100)).count()  # warm-up, not timed
    try:
        for arrow in ("true", "false"):
            spark.conf.set(arrow_key, arrow)
            for label, pdf in [("wide, 24983 x 101", wide_pdf), (f"long, {len(long_pdf):,} x 3", long_pdf)]:
                _, seconds = bench.timed(lambda: spark.createDataFrame(pdf).count())
                rows.append({"step": f"createDataFrame + count, {label}, Arrow {'on' if arrow == 'true' else 'off'}",
                             "seconds": f"{seconds:.1f}", "RMSE held-out": ""})
    finally:
        spark.conf.set(arrow_key, arrow_before)

    # The notebook's pipeline: wide -> unpivot -> 90/10 split of the ratings on one partition.
    wide_df = (spark.createDataFrame(wide_pdf).withColumn("user", F.col("user").cast("int")).coalesce(1).cache())
    joke_cols = [c for c in wide_df.columns if c != "user"]
    long_df = (wide_df.unpivot(ids=["user"], values=joke_cols, variableColumnName="joke", valueColumnName="rating")
               .dropna(subset=["rating"]).withColumn("joke", F.col("joke").cast("int")).cache())
    train_df, test_df = [df.cache() for df in long_df.randomSplit([0.9, 0.1], seed=JESTER_SEED)]
    _, seconds = bench.timed(lambda: (long_df.count(), train_df.count(), test_df.count()))
    rows.append({"step": "unpivot to long + randomSplit 90/10 (cached, counted)", "seconds": f"{seconds:.1f}", "RMSE held-out": ""})
    (train_pdf, test_pdf), seconds = bench.timed(lambda: (train_df.toPandas(), test_df.toPandas()))
    rows.append({"step": f"toPandas of train ({len(train_pdf):,}) and held-out ({len(test_pdf):,}) ratings",
                 "seconds": f"{seconds:.1f}", "RMSE held-out": ""})

    n_users, n_jokes = ratings_pdf.shape
    R = np.zeros((n_users, n_jokes))
    M = np.zeros((n_users, n_jokes))
    users, jokes = train_pdf["user"].to_numpy() - 1, train_pdf["joke"].to_numpy() - 1
    R[users, jokes] = train_pdf["rating"].to_numpy()
    M[users, jokes] = 1.0
    test_users, test_jokes = test_pdf["user"].to_numpy() - 1, test_pdf["joke"].to_numpy() - 1

    def numpy_rmse(X, Y):
        prediction = np.einsum("ij,ij->i", X[test_users], Y[test_jokes])
        return float(np.sqrt(np.mean((prediction - test_pdf["rating"].to_numpy()) ** 2)))

    settings = f"rank {JESTER_ALS['rank']}, {JESTER_ALS['maxIter']} iter., reg {JESTER_ALS['regParam']}"
    for threads, label in [(None, "BLAS threads: default"), (1, "1 BLAS thread, as in ML16L")]:
        with threadpool_limits(limits=threads, user_api="blas"):
            (X, Y), seconds = bench.timed(als_numpy, R, M, JESTER_ALS["rank"], JESTER_ALS["maxIter"],
                                          JESTER_ALS["regParam"], seed=JESTER_SEED)
        rows.append({"step": f"NumPy ALS fit ({settings}; {label})", "seconds": f"{seconds:.1f}",
                     "RMSE held-out": f"{numpy_rmse(X, Y):.4f}"})

    ALS(userCol="user", itemCol="joke", ratingCol="rating", rank=5, maxIter=2, seed=JESTER_SEED).fit(train_df)  # warm-up
    als = ALS(userCol="user", itemCol="joke", ratingCol="rating", rank=JESTER_ALS["rank"], maxIter=JESTER_ALS["maxIter"],
              regParam=JESTER_ALS["regParam"], seed=JESTER_SEED, coldStartStrategy="drop",
              numUserBlocks=JESTER_ALS["blocks"], numItemBlocks=JESTER_ALS["blocks"])
    model, seconds = bench.timed(als.fit, train_df)
    rmse = RegressionEvaluator(labelCol="rating", metricName="rmse").evaluate(model.transform(test_df))
    rows.append({"step": f"Spark ALS fit ({settings}, {JESTER_ALS['blocks']} blocks, local)", "seconds": f"{seconds:.1f}",
                 "RMSE held-out": f"{rmse:.4f}"})

    print_table(rows, ["step", "seconds", "RMSE held-out"])
    jvm_options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions", "")
    print(f"driver JVM options: {jvm_options or '(none)'}")

# ------------------------------------------------------------------------------------------------
# Streaming (ML17): section "streaming" goes here
# STREAMING-SECTION-MARKER
# The settings of ML17; keep them in step with the notebook.
ML17_SPLIT = {"heldout_fraction": 0.1, "seed": 42, "offline_fraction": 0.6}
ML17_RANK = 10  # the offline model is sa.fit_offline_model with its defaults (as in the notebook)
# the setting ML17's replay chooses on the stream's own ratings (section 6); keep in step with the notebook
ML17_SGD = {"gamma": 0.05, "reg": 0.1, "kappa": 25.0, "epochs": 3, "init_scale": 0.01, "seed": 42}
ML17_FILES = 10
ML17_CONF = {"spark.sql.shuffle.partitions": "2", "spark.databricks.delta.snapshotPartitions": "2"}
# (number of replay files, held-out RMSE after every batch?) for the throughput runs
ML17_RUNS = [(ML17_FILES, True), (ML17_FILES, False), (3, True)]
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_results(section_name: str, rows: list[dict], notes: str = "") -> Path:
    """Write a section's table to ``benchmarks/results/<section>.json`` with the machine's description."""
    import datetime as dt
    import json
    import platform

    import pyspark

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{section_name}.json"
    path.write_text(json.dumps({
        "section": section_name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "load_average_at_end": [round(v, 1) for v in os.getloadavg()],
                    "platform": platform.platform(), "python": platform.python_version(),
                    "pyspark": pyspark.__version__},
        "rows": rows, "notes": notes}, indent=1) + "\n")
    print(f"(results written to {path.relative_to(COURSE_ROOT)})")
    return path


def _ml17_offline_model(spark):
    """ML17's data split and offline model: (offline_df, stream_df, heldout_df, mu, users_df, items_df, train_df)."""
    from pyspark.sql import functions as F

    from includes.lessons import streaming_sgd as sa
    from includes.data.movielens import ratings_latest_small

    ratings_df = ratings_latest_small(spark).cache()
    train_df, heldout_df = sa.holdout_split(ratings_df, ML17_SPLIT["heldout_fraction"], ML17_SPLIT["seed"])
    cutoff = sa.time_cutoff(train_df, ML17_SPLIT["offline_fraction"])
    offline_df = train_df.filter(F.col("timestamp") < cutoff).cache()
    stream_df = train_df.filter(F.col("timestamp") >= cutoff).cache()
    mu, users_df, items_df = sa.fit_offline_model(offline_df, rank=ML17_RANK)
    return offline_df, stream_df, heldout_df.cache(), mu, users_df, items_df, train_df


def _spark_jobs(spark) -> int:
    """Spark jobs started so far in this application (the DAG scheduler's job counter)."""
    return spark.sparkContext._jsc.sc().dagScheduler().numTotalJobs()


@section("streaming", "MovieLens latest-small replayed as files: streaming SGD throughput and per-batch latency (ML17)",
         datasets=("ml-latest-small",))
def bench_streaming(bench: Bench) -> None:
    import statistics
    import tempfile

    from includes.lessons import streaming_sgd as sa
    from includes.lessons.replay import ReplayFiles, replay_stream
    from includes.paths import work_root
    spark = bench.spark
    (offline_df, stream_df, heldout_df, mu, users_df, items_df, train_df), fit_seconds = bench.timed(
        _ml17_offline_model, spark)
    offline_count, stream_count = offline_df.count(), stream_df.count()
    print(f"offline model (baseline + residual ALS rank {ML17_RANK}, {offline_count} ratings): "
          f"{fit_seconds:.1f} s; stream: {stream_count} ratings")
    batch_mu, batch_users, batch_items = sa.fit_offline_model(train_df, rank=ML17_RANK)
    batch_rmse = sa.rmse(heldout_df, batch_users, batch_items, batch_mu)
    print(f"batch ALS retrained on all training ratings (the notebook's yardstick): held-out RMSE {batch_rmse:.4f}")
    params = sa.SGDParams(rank=ML17_RANK, **ML17_SGD)
    print(f"SGD settings: {ML17_SGD}")

    rows = []
    # as in the notebook: 2 shuffle (and Delta log replay) partitions for the small micro-batches
    saved = {key: spark.conf.get(key) for key in ML17_CONF}
    for key, value in ML17_CONF.items():
        spark.conf.set(key, value)
    try:
        with tempfile.TemporaryDirectory(prefix="ml17-", dir=work_root()) as scratch:
            for run, (n_files, evaluate) in enumerate(ML17_RUNS):
                root = f"{scratch}/run{run}"
                model = sa.StreamingSGD(f"{root}/model", params, app_id=f"bench-{run}", evaluate=evaluate)
                _, init_seconds = bench.timed(model.initialize, users_df, items_df, heldout_df, mu, offline_count)
                replay = ReplayFiles(stream_df, n_files, order_by=sa.REPLAY_ORDER, prefix="ratings")
                replay.write(f"{root}/incoming")
                started, jobs_before = time.perf_counter(), _spark_jobs(spark)
                query = (replay_stream(spark, f"{root}/incoming", sa.RATINGS_DDL).writeStream.foreachBatch(model)
                         .option("checkpointLocation", f"{root}/checkpoint").trigger(availableNow=True).start())
                query.awaitTermination()
                wall, jobs = time.perf_counter() - started, _spark_jobs(spark) - jobs_before
                batches = [p for p in query.recentProgress if p["numInputRows"]]
                seconds = [p["durationMs"]["triggerExecution"] / 1000 for p in batches]
                in_function = [p["durationMs"].get("addBatch", 0) / 1000 for p in batches]
                ratings = sum(p["numInputRows"] for p in batches)
                final = model.last_progress(spark)
                rows.append({
                    "files": n_files,
                    "ratings/batch": round(ratings / len(batches)),
                    "held-out eval": "yes" if evaluate else "no",
                    "init s": round(init_seconds, 1),
                    "batch s median": round(statistics.median(seconds), 2),
                    "batch s min-max": f"{min(seconds):.2f}-{max(seconds):.2f}",
                    "foreachBatch s median": round(statistics.median(in_function), 2),
                    "Spark jobs/batch": round(jobs / len(batches), 1),
                    "query wall s": round(wall, 1),
                    "ratings/s": round(ratings / sum(seconds)),
                    "ratings/s median batch": round(ratings / len(batches) / statistics.median(seconds)),
                    "final held-out RMSE": None if final.heldout_rmse is None else round(final.heldout_rmse, 4),
                    "vs batch ALS": None if final.heldout_rmse is None
                    else f"{(final.heldout_rmse / batch_rmse - 1) * 100:+.1f} %",
                })
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
    print_table(rows, list(rows[0]))
    notes = ("batch s: a micro-batch's triggerExecution time (the query's progress reports); foreachBatch s: its "
             "addBatch part (the batch function: toPandas of the batch, the NumPy update, the model's Delta write, "
             "the held-out RMSE, the progress row); Spark jobs/batch: all jobs of the query / batches; ratings/s: all "
             "streamed ratings / sum of the batch times; ratings/s median batch: ratings per batch / median batch "
             f"time; vs batch ALS: against the batch model retrained on all training ratings ({batch_rmse:.4f})")
    print(notes)
    save_results("streaming", rows, notes)


ML17_SERVING_REQUESTS = {"spark": 200, "driver": 2000}  # timed requests per way (after 10 warm-up ones)
ML17_SERVING_PARTITIONS = 16


def _by_id(key: int) -> int:
    """The partition function of the keyed RDDs: the id itself (modulo the partitions), so that
    ``lookup`` needs no string hashing (PySpark's default refuses to run without PYTHONHASHSEED)."""
    return int(key)


@section("serving", "One (user, movie) prediction from ML17's factor tables: DataFrame filter + collect, Delta "
         "table with and without id ranges per file, RDD partitioned by id + lookup, driver dict (ML17)",
         datasets=("ml-latest-small",))
def bench_serving(bench: Bench) -> None:
    import statistics
    import tempfile

    import numpy as np
    from pyspark.sql import functions as F

    from includes.lessons import streaming_sgd as sa
    from includes.paths import work_root
    spark = bench.spark
    _, _, heldout_df, mu, users_df, items_df, _ = _ml17_offline_model(spark)
    users_df, items_df = users_df.cache(), items_df.cache()
    n_users, n_items = users_df.count(), items_df.count()
    # requests: (user, movie) pairs of the held-out set, in a seeded random order
    pairs = heldout_df.select("userId", "movieId").orderBy("userId", "movieId").toPandas()
    pairs = pairs.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    print(f"factor tables: {n_users} users, {n_items} movies, rank {ML17_RANK}; requests: held-out pairs")

    def score(user, item):
        """mu + b_user + b_item + U . P from two looked-up (bias, factors) pairs (None: unknown, counts 0)."""
        value = mu
        if user is not None:
            value += user[0]
        if item is not None:
            value += item[0]
        if user is not None and item is not None:
            value += float(np.dot(user[1], item[1]))
        return value

    def first(df, key, value):
        row = df.filter(F.col(key) == int(value)).select("bias", "factors").first()
        return None if row is None else (row.bias, np.asarray(row.factors))

    def dataframe_way(users, items):
        return lambda u, m: score(first(users, "userId", u), first(items, "movieId", m))

    ways = {}
    # 1. the factors as cached DataFrames: a filter and a collect (first) per side
    ways["DataFrame (cached), filter + first()"] = ("spark", dataframe_way(users_df, items_df))
    with tempfile.TemporaryDirectory(prefix="serving-", dir=work_root()) as scratch:
        # 2. a Delta table in one file: every lookup reads the whole file
        # 3. a Delta table range-partitioned by id into 16 sorted files: Delta's per-file min/max
        #    statistics let the filter skip all files but one
        for label, layout in (("Delta table, one file", lambda df, key: df.coalesce(1)),
                              (f"Delta table, {ML17_SERVING_PARTITIONS} files by id range (data skipping)",
                               lambda df, key: df.repartitionByRange(ML17_SERVING_PARTITIONS, key)
                               .sortWithinPartitions(key))):
            tables = []
            for df, key, name in ((users_df, "userId", "users"), (items_df, "movieId", "items")):
                path = f"{scratch}/{len(ways)}-{name}"
                layout(df, key).write.format("delta").save(path)
                tables.append(spark.read.format("delta").load(path))
            ways[label] = ("spark", dataframe_way(*tables))
        # 4. 001's advice: an RDD keyed and partitioned by id; lookup(key) runs one task, on its partition
        keyed = [df.rdd.map(lambda row, key=key: (row[key], (row.bias, np.asarray(row.factors))))
                 .partitionBy(ML17_SERVING_PARTITIONS, _by_id).cache() for df, key in ((users_df, "userId"), (items_df, "movieId"))]
        for rdd in keyed:
            rdd.count()

        def rdd_way(u, m):
            user, item = keyed[0].lookup(int(u)), keyed[1].lookup(int(m))
            return score(user[0] if user else None, item[0] if item else None)

        ways[f"RDD partitioned by id ({ML17_SERVING_PARTITIONS}), lookup()"] = ("spark", rdd_way)
        # 5. a dict on the driver: id -> (bias, NumPy vector), filled once by a collect
        user_dict = {r.userId: (r.bias, np.asarray(r.factors)) for r in users_df.collect()}
        item_dict = {r.movieId: (r.bias, np.asarray(r.factors)) for r in items_df.collect()}
        ways["dict on the driver + NumPy dot"] = ("driver", lambda u, m: score(user_dict.get(u), item_dict.get(m)))
        # 6. ML17's Factors (NumPy arrays, rows found through a pandas index), as the streaming model holds them
        users_f, items_f = sa.factors_from_df(users_df, "userId", ML17_RANK), sa.factors_from_df(items_df, "movieId", ML17_RANK)

        def factors_way(u, m):
            return float(sa.predict_numpy(np.array([u]), np.array([m]), users_f, items_f, mu, -np.inf, np.inf)[0])

        ways["NumPy Factors on the driver (predict_numpy)"] = ("driver", factors_way)

        rows, reference = [], {}
        for label, (kind, predict) in ways.items():
            n = ML17_SERVING_REQUESTS[kind]
            requests = list(pairs.itertuples(index=False, name=None))[:n + 10]
            for u, m in requests[:10]:  # warm-up
                predict(u, m)
            latencies, answers = [], []
            for u, m in requests[10:]:
                started = time.perf_counter()
                answers.append(predict(u, m))
                latencies.append(time.perf_counter() - started)
            if not reference:
                reference = dict(zip(requests[10:], answers))
            same = max(abs(a - reference[p]) for p, a in zip(requests[10:], answers) if p in reference)
            latencies_ms = sorted(1000 * v for v in latencies)
            rows.append({"factors held as": label, "requests": n,
                         "median ms": round(statistics.median(latencies_ms), 3),
                         "p95 ms": round(latencies_ms[int(0.95 * (n - 1))], 3),
                         "requests/s": round(n / sum(latencies)),
                         "max |diff| vs first way": f"{same:.1e}"})
        for rdd in keyed:
            rdd.unpersist()
    print_table(rows, list(rows[0]))
    notes = ("one request = the user's and the movie's (bias, factors) looked up and mu + b_u + b_i + U . P computed "
             "in Python; latency per request with time.perf_counter; the same held-out pairs for every way, in a "
             f"seeded order; p95 = the 95th percentile. Spark ways: {ML17_SERVING_REQUESTS['spark']} requests, "
             f"driver ways: {ML17_SERVING_REQUESTS['driver']}.")
    print(notes)
    save_results("serving", rows, notes)


# ------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------
# Tuning (ML08, ML09, ML09L): the Airbnb price models
# ------------------------------------------------------------------------------------------------

# Keep these in step with the notebooks.
ML08_GRID = {"maxDepth": [5, 8], "numTrees": [20, 50]}  # x 3 folds, Pipeline inside the CrossValidator
ML09_STARTUP, ML09_SEED = 4, 42  # TPE's n_startup_jobs / Optuna's n_startup_trials, and the seed
ML09_BUDGETS = [12, 30]  # trials: ML09's budget and a larger one (no early stopping here)
ML09_FEATURE_SUBSETS = ["onethird", "sqrt", "all"]
ML09L_MAX_EVALS = 12


def _airbnb_split(spark):
    from includes.data.airbnb import sf_clean_delta

    airbnb_df = spark.read.format("delta").load(sf_clean_delta(spark))
    train_df, test_df = airbnb_df.randomSplit([0.8, 0.2], seed=42)
    return train_df.cache(), test_df.cache()


def _bench_cross_validator(spark, train_df) -> list[dict]:
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.regression import RandomForestRegressor
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from includes.lessons import price_models

    rf = RandomForestRegressor(labelCol="price", maxBins=40, seed=42)
    grid = (ParamGridBuilder().addGrid(rf.maxDepth, ML08_GRID["maxDepth"])
            .addGrid(rf.numTrees, ML08_GRID["numTrees"]).build())
    pipeline = Pipeline(stages=price_models.tree_feature_stages(train_df) + [rf])
    evaluator = RegressionEvaluator(labelCol="price", metricName="rmse")
    pipeline.fit(train_df, grid[0])  # warm-up: the session's first forest fits pay for JIT compilation
    rows = []
    for parallelism in [1, 2]:
        cv = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator, numFolds=3,
                            seed=42, parallelism=parallelism)
        model, seconds = Bench.timed(cv.fit, train_df)
        rows.append({"CrossValidator (ML08)": f"{len(grid)} settings x 3 folds + refit, parallelism {parallelism}",
                     "seconds": f"{seconds:.1f}", "best mean validation RMSE": f"{min(model.avgMetrics):.2f}"})
    return rows


def _bench_searches(spark, train_df) -> list[dict]:
    from functools import partial

    import numpy as np
    import optuna
    from hyperopt import STATUS_OK, hp, rand, tpe
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.regression import RandomForestRegressor

    from includes.lessons import price_models, search

    search_train_df, val_df = train_df.randomSplit([0.8, 0.2], seed=42)
    features = Pipeline(stages=price_models.tree_feature_stages(search_train_df)).fit(search_train_df)
    train_vec = features.transform(search_train_df).select("features", "price").cache()
    val_vec = features.transform(val_df).select("features", "price").cache()
    evaluator = RegressionEvaluator(labelCol="price", metricName="rmse")
    space = {"max_depth": hp.quniform("max_depth", 2, 10, 1), "num_trees": hp.quniform("num_trees", 5, 30, 5),
             "min_instances": hp.qloguniform("min_instances", np.log(1), np.log(50), 1),
             "feature_subset": hp.choice("feature_subset", ML09_FEATURE_SUBSETS)}

    def optuna_space(trial):
        return {"max_depth": trial.suggest_int("max_depth", 2, 10),
                "num_trees": trial.suggest_int("num_trees", 5, 30, step=5),
                "min_instances": trial.suggest_int("min_instances", 1, 50, log=True),
                "feature_subset": trial.suggest_categorical("feature_subset", ML09_FEATURE_SUBSETS)}

    def objective(params):
        model = RandomForestRegressor(labelCol="price", maxBins=40, seed=42, maxDepth=int(params["max_depth"]),
                                      numTrees=int(params["num_trees"]),
                                      minInstancesPerNode=int(params["min_instances"]),
                                      featureSubsetStrategy=params["feature_subset"]).fit(train_vec)
        return {"loss": evaluator.evaluate(model.transform(val_vec)), "status": STATUS_OK}

    rows = []
    for budget in ML09_BUDGETS:
        runs = [("hyperopt TPE", lambda: search.hyperopt_search(
                    objective, space, partial(tpe.suggest, n_startup_jobs=ML09_STARTUP), budget, seed=ML09_SEED)),
                ("hyperopt random", lambda: search.hyperopt_search(objective, space, rand.suggest, budget,
                                                                   seed=ML09_SEED)),
                ("Optuna TPE", lambda: search.optuna_search(
                    objective, optuna_space, budget,
                    sampler=optuna.samplers.TPESampler(seed=ML09_SEED, n_startup_trials=ML09_STARTUP)))]
        for name, run in runs:
            (result, _), seconds = Bench.timed(run)
            rows.append({"search (ML09)": f"{name}, {budget} trials", "seconds": f"{seconds:.1f}",
                         "best validation RMSE": f"{result.best_loss:.2f}",
                         f"best after {ML09_BUDGETS[0]}": f"{result.best_after(ML09_BUDGETS[0]):.2f}",
                         "found at trial": result.best_index})
    return rows


def _bench_spark_trials(spark, train_df) -> list[dict]:
    import logging

    import numpy as np
    from hyperopt import STATUS_OK, SparkTrials, fmin, hp
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold, cross_val_score

    from includes.lessons import search

    logging.getLogger("hyperopt-spark").setLevel(logging.WARNING)
    numeric = [name for name, dtype in train_df.dtypes if dtype != "string" and name != "price"]
    train_pdf = train_df.toPandas()
    X, y = train_pdf[numeric], train_pdf["price"]
    folds = KFold(n_splits=3, shuffle=True, random_state=42)
    space = {"max_depth": hp.quniform("max_depth", 2, 12, 1), "n_estimators": hp.quniform("n_estimators", 10, 50, 10),
             "max_features": hp.choice("max_features", ["sqrt", "log2", 1.0])}

    def objective(params):
        model = RandomForestRegressor(max_depth=int(params["max_depth"]), n_estimators=int(params["n_estimators"]),
                                      max_features=params["max_features"], random_state=42, n_jobs=1)
        return {"loss": -cross_val_score(model, X, y, cv=folds, scoring="neg_root_mean_squared_error").mean(),
                "status": STATUS_OK}

    rows = []
    for parallelism in [1, 2]:
        trials = SparkTrials(parallelism=parallelism)
        _, seconds = Bench.timed(fmin, objective, space, algo=search.seeded_per_trial(42), max_evals=ML09L_MAX_EVALS,
                                 trials=trials, max_queue_len=parallelism, rstate=np.random.default_rng(42),
                                 show_progressbar=False)
        result = search.from_hyperopt_trials(trials, space)
        rows.append({"SparkTrials (ML09L)": f"{ML09L_MAX_EVALS} trials, parallelism {parallelism}",
                     "seconds": f"{seconds:.1f}", "best CV RMSE": f"{result.best_loss:.2f}"})
    return rows


@section("tuning", "Airbnb price models: CrossValidator parallelism (ML08), Hyperopt TPE / random vs Optuna TPE "
         "(ML09), SparkTrials parallelism (ML09L)", datasets=("airbnb-sf",))
def bench_tuning(bench: Bench) -> None:
    import warnings

    spark = bench.spark
    train_df, _ = _airbnb_split(spark)
    print(f"training rows: {train_df.count()}")
    rows = _bench_cross_validator(spark, train_df)
    print_table(rows, list(rows[0]))
    print()
    rows = _bench_searches(spark, train_df)
    print_table(rows, list(rows[0]))
    print(f"(TPE: the first {ML09_STARTUP} trials are random; hyperopt TPE and random search share them)")
    print()
    with warnings.catch_warnings():  # PySpark 4 warns on every SparkTrials thread (see ML09L)
        warnings.filterwarnings("ignore", message="Spark session is not provided")
        rows = _bench_spark_trials(spark, train_df)
    print_table(rows, list(rows[0]))


# ------------------------------------------------------------------------------------------------
# Deployment (ML12): scoring a scikit-learn model with Spark
# ------------------------------------------------------------------------------------------------

ML12_FOREST = {"n_estimators": 50, "max_depth": 10, "min_samples_leaf": 5, "random_state": 42, "n_jobs": 1}
DEPLOYMENT_COPIES = 100  # the 1366 test rows repeated: about 137,000 rows to score


@section("deployment", "ML12's scikit-learn forest scored by Spark: scalar vs iterator pandas UDF vs mapInPandas "
         "vs mlflow spark_udf, rows/s", datasets=("airbnb-sf",))
def bench_deployment(bench: Bench) -> None:
    import logging
    import tempfile
    from typing import Iterator, Tuple

    import mlflow
    import pandas as pd
    import sklearn
    from pyspark.sql.functions import pandas_udf
    from sklearn.ensemble import RandomForestRegressor

    from includes.paths import work_root

    spark = bench.spark
    train_df, test_df = _airbnb_split(spark)
    features = [name for name, dtype in train_df.dtypes if dtype != "string" and name != "price"]
    train_pdf = train_df.toPandas()
    forest, seconds = Bench.timed(RandomForestRegressor(**ML12_FOREST).fit, train_pdf[features], train_pdf["price"])
    print(f"scikit-learn forest ({ML12_FOREST['n_estimators']} trees) fitted on the driver in {seconds:.1f} s")
    with tempfile.TemporaryDirectory(dir=work_root()) as tmp:
        location = str(Path(tmp) / "model")
        from mlflow.models import infer_signature

        # with a signature, as in ML12: spark_udf then names the columns it passes to the model
        mlflow.sklearn.save_model(forest, location, pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                                  signature=infer_signature(train_pdf[features], forest.predict(train_pdf[features])),
                                  skops_trusted_types=["sklearn.tree._tree.Tree"])
        copies = spark.range(DEPLOYMENT_COPIES).withColumnRenamed("id", "copy")
        # not cached: a cached input hands the UDFs its own columnar batches (Spark 4.2, see ML12)
        score_df = test_df.select(*features).crossJoin(copies).repartition(2)
        rows = score_df.count()

        # this module has `from __future__ import annotations`: the type hints pandas_udf reads are
        # set as objects here (as strings they would name pandas, imported in this function only)
        def scalar(*columns):
            return pd.Series(forest.predict(pd.concat(columns, axis=1, keys=features)))

        def iterator(batches):
            model = mlflow.sklearn.load_model(location)
            for columns in batches:
                yield pd.Series(model.predict(pd.concat(columns, axis=1, keys=features)))

        scalar.__annotations__ = {"columns": pd.Series, "return": pd.Series}
        iterator.__annotations__ = {"batches": Iterator[Tuple[pd.Series, ...]], "return": Iterator[pd.Series]}
        scalar, iterator = pandas_udf("double")(scalar), pandas_udf("double")(iterator)

        def frames(batches):
            model = mlflow.sklearn.load_model(location)
            for frame in batches:
                yield pd.DataFrame({"prediction": model.predict(frame[features])})

        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # the env_manager="local" warning
        spark_udf = mlflow.pyfunc.spark_udf(spark, location, result_type="double", env_manager="local")
        forms = [("scalar pandas UDF (model pickled into the closure)", lambda: score_df.select(scalar(*features))),
                 ("iterator pandas UDF (model loaded per task)", lambda: score_df.select(iterator(*features))),
                 ("mapInPandas", lambda: score_df.mapInPandas(frames, "prediction DOUBLE")),
                 ("mlflow.pyfunc.spark_udf", lambda: score_df.select(spark_udf(*features)))]
        table = []
        for batch_rows in [10000, 1000]:
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
            for name, build in forms:
                _, seconds = Bench.timed(lambda: build().write.format("noop").mode("overwrite").save())
                table.append({"scoring": name, "Arrow batch rows": batch_rows, "rows": rows,
                              "seconds": f"{seconds:.1f}", "rows/s": f"{rows / seconds:,.0f}"})
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
        _, seconds = Bench.timed(lambda: forest.predict(score_df.toPandas()[features]))
        table.append({"scoring": "scikit-learn on the driver (toPandas + predict)", "Arrow batch rows": "-",
                      "rows": rows, "seconds": f"{seconds:.1f}", "rows/s": f"{rows / seconds:,.0f}"})
    print_table(table, ["scoring", "Arrow batch rows", "rows", "seconds", "rows/s"])
    print("(each run includes the crossJoin and the shuffle into 2 partitions, the same for every form)")
    print()
    _bench_xgboost(spark, train_df)
    print()
    _bench_serving(spark, train_df, test_df)


def _bench_serving(spark, train_df, test_df) -> None:
    """ML10's real-time option: `mlflow models serve` of a Spark-flavour pipeline (ML04's one-hot
    linear regression) and of a scikit-learn linear regression, each under the course's
    supervisor: start-up seconds, memory of the process group, request latency (1 and 100 rows)
    and requests/s; and batch scoring of the same Spark model (rows/s)."""
    import statistics
    import tempfile

    import mlflow
    import numpy as np
    import sklearn
    from sklearn.linear_model import LinearRegression

    from includes.lessons import price_models, serving
    from includes.paths import work_root

    spark_model = price_models.fit_linear_baselines(train_df)[price_models.ML04_BASELINE]
    numeric = [name for name, dtype in train_df.dtypes if dtype != "string" and name != "price"]
    train_pdf, test_pdf = train_df.toPandas(), test_df.toPandas()
    sk_model = LinearRegression().fit(train_pdf[numeric], train_pdf["price"])
    rows = []
    with tempfile.TemporaryDirectory(dir=work_root()) as tmp:
        tmp = Path(tmp)
        mlflow.spark.save_model(spark_model, str(tmp / "spark-model"), pip_requirements=["pyspark"])
        mlflow.sklearn.save_model(sk_model, str(tmp / "sklearn-model"),
                                  pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
        copies = spark.range(DEPLOYMENT_COPIES).withColumnRenamed("id", "copy")
        batch_df = test_df.drop("price").crossJoin(copies).repartition(2).cache()
        n_rows = batch_df.count()
        _, seconds = Bench.timed(lambda: mlflow.spark.load_model(str(tmp / "spark-model")).transform(batch_df)
                                 .select("prediction").write.format("noop").mode("overwrite").save())
        batch_df.unpersist()
        print(f"batch scoring, Spark model loaded from MLflow: {n_rows:,} rows in {seconds:.1f} s "
              f"({n_rows / seconds:,.0f} rows/s)")
        for name, model_dir, frame in [("Spark pipeline (ML04 LR)", tmp / "spark-model", test_pdf.drop(columns="price")),
                                       ("scikit-learn LinearRegression", tmp / "sklearn-model", test_pdf[numeric])]:
            port = serving.free_port()
            command = serving.mlflow_serve_command(model_dir.resolve().as_uri(), port)
            with serving.Service(command, health_url=f"http://127.0.0.1:{port}/health", timeout=300,
                                 log=tmp / f"{model_dir.name}.log") as service:
                memory = service.memory_bytes()
                url = f"http://127.0.0.1:{port}"
                serving.timed_requests(url, frame, 5)  # warm-up
                one = serving.timed_requests(url, frame, 100, 1)
                hundred = serving.timed_requests(url, frame, 20, 100)
            p50, p95 = (np.percentile(one, q) * 1000 for q in (50, 95))
            rows.append({"model server": name, "start-up s": f"{service.startup_seconds:.1f}",
                         "memory MB": f"{memory / 2**20:.0f}",
                         "1 row: ms p50 / p95": f"{p50:.1f} / {p95:.1f}",
                         "requests/s (1 row)": f"{1 / statistics.mean(one):.0f}",
                         "100 rows: ms p50": f"{np.percentile(hundred, 50) * 1000:.1f}",
                         "left behind": len(service.left_behind)})
    print_table(rows, list(rows[0]))
    print("(memory: resident size of the server's whole process group; requests one after the other from one client)")


ML11_XGB = {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.05, "random_state": 42}  # keep in step with ML11


def _bench_xgboost(spark, train_df) -> None:
    """ML11's SparkXGBRegressor pipeline on log(price): fit seconds with 1 and 2 workers (barrier tasks)."""
    import logging

    from pyspark.ml import Pipeline
    from pyspark.sql import functions as F
    from xgboost.spark import SparkXGBRegressor

    from includes.lessons import price_models

    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    log_train_df = train_df.withColumn("log_price", F.log("price"))
    stages = price_models.tree_feature_stages(train_df)
    features_df = Pipeline(stages=stages).fit(log_train_df).transform(log_train_df).select("features", "log_price").cache()
    features_df.count()
    rows = []
    for num_workers in [1, 2, 1, 2]:  # twice each: the first fit of a session pays for start-up
        xgb = SparkXGBRegressor(features_col="features", label_col="log_price", num_workers=num_workers,
                                verbose=False, **ML11_XGB)
        _, seconds = Bench.timed(xgb.fit, features_df)
        rows.append({"SparkXGBRegressor (ML11)": f"{ML11_XGB['n_estimators']} trees, num_workers {num_workers}",
                     "fit seconds": f"{seconds:.1f}"})
    features_df.unpersist()
    print_table(rows, ["SparkXGBRegressor (ML11)", "fit seconds"])


# ------------------------------------------------------------------------------------------------
# Real-time analytics (ML18): the posts feed
# ------------------------------------------------------------------------------------------------

REALTIME_CONF = {"spark.sql.shuffle.partitions": "2", "spark.databricks.delta.snapshotPartitions": "2"}
REALTIME_LONG_FEED_SECONDS = 6000  # ten times ML18's event time (about 19,000 posts: the trends are in the first 600 s)


def _percentiles(values: list[float]) -> str:
    import numpy as np

    if not values:
        return "-"
    p50, p95 = np.percentile(values, [50, 95])
    return f"{p50:.2f} / {p95:.2f}"


def _ml18_counts(posts_df):
    from includes.lessons import posts

    return posts.windowed_counts(posts_df)  # ML18's query: hashtags per 20 s window sliding by 10 s


def _socket_run(spark, feed, rate: float, checkpoint: Path) -> dict:
    """ML18's live query on a socket feed served at ``rate`` posts/s: per-post end-to-end latency
    (sent by the server -> its micro-batch committed to the memory sink), micro-batch durations."""
    from datetime import datetime

    from includes.lessons import posts

    with posts.PostsServer(feed, rate=rate) as server:
        query = (_ml18_counts(posts.socket_stream(spark, *server.address)).writeStream.outputMode("complete")
                 .format("memory").queryName("bench_live").option("checkpointLocation", str(checkpoint)).start())
        progress, started = {}, time.perf_counter()
        try:
            while sum(p["numInputRows"] for p in progress.values()) < len(feed):
                time.sleep(0.05)
                progress.update({p["batchId"]: p for p in query.recentProgress})
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the socket query did not read the whole feed in 10 minutes")
            query.processAllAvailable()
            progress.update({p["batchId"]: p for p in query.recentProgress})
        finally:
            query.stop()
        elapsed = time.perf_counter() - started
        replay_start = server.replays_started[0]
    latencies, durations, first_post = [], [], 0
    for batch_id in sorted(progress):
        report = progress[batch_id]
        rows = report["numInputRows"]
        durations.append(report["durationMs"]["triggerExecution"] / 1000)
        if not rows:
            continue
        done = datetime.fromisoformat(report["timestamp"].replace("Z", "+00:00")).timestamp() + durations[-1]
        latencies.extend(done - (replay_start + i / rate) for i in range(first_post, first_post + rows))
        first_post += rows
    return {"posts": len(feed), "seconds": elapsed, "latencies": latencies, "durations": durations}


def _file_run(spark, feed, slice_seconds: float, work: Path, sink: str) -> dict:
    """ML18's checkpointed query over the feed written as files (one per micro-batch), into a
    Delta table (append, watermark 30 s) or the memory sink (complete)."""
    from includes.lessons import posts

    files = posts.write_files(feed, work / "files", slice_seconds=slice_seconds)
    counts = posts.windowed_counts(posts.file_stream(spark, work / "files"), watermark="30 seconds")
    writer = counts.writeStream.option("checkpointLocation", str(work / "checkpoint")).trigger(availableNow=True)
    started = time.perf_counter()
    if sink == "delta":
        query = writer.outputMode("append").format("delta").start(str(work / "table"))
    else:
        query = writer.outputMode("complete").format("memory").queryName("bench_files").start()
    query.awaitTermination()
    elapsed = time.perf_counter() - started
    durations = [p["durationMs"]["triggerExecution"] / 1000 for p in query.recentProgress if p["numInputRows"]]
    return {"posts": len(feed), "files": len(files), "seconds": elapsed, "durations": durations}


@section("realtime", "ML18's hashtag query on the posts feed: socket and file replay, throughput and latency")
def bench_realtime(bench: Bench) -> None:
    import tempfile

    from includes.lessons import posts
    from includes.paths import work_root

    spark = bench.spark
    saved = {key: spark.conf.get(key) for key in REALTIME_CONF}
    for key, value in REALTIME_CONF.items():
        spark.conf.set(key, value)
    corpus, long_feed = posts.generate(seed=42), posts.generate(seed=42, seconds=REALTIME_LONG_FEED_SECONDS)
    rows = []
    try:
        with tempfile.TemporaryDirectory(dir=work_root()) as tmp:
            tmp = Path(tmp)
            _socket_run(spark, corpus[:500], 5000.0, tmp / "warm-up")  # the first query of a session pays for JIT
            for name, feed, rate in [("socket, ML18's rate", corpus, 1000.0), ("socket, 5x faster", corpus, 5000.0),
                                     ("socket, long feed, as fast as possible", long_feed, 1e6)]:
                result = _socket_run(spark, feed, rate, tmp / f"socket-{len(rows)}")
                rows.append({"source -> sink": name + " -> memory (complete)", "posts": result["posts"],
                             "batches": len(result["durations"]), "seconds": f"{result['seconds']:.1f}",
                             "posts/s": f"{result['posts'] / result['seconds']:.0f}",
                             "batch s p50 / p95": _percentiles(result["durations"]),
                             # at full speed the send times are not known (the server sends as fast as it can)
                             "end-to-end s p50 / p95": _percentiles(result["latencies"]) if rate < 1e5 else "-"})
            for name, feed, slice_seconds, sink in [("files, 60 s slices (ML18)", corpus, 60, "delta"),
                                                    ("files, long feed, 600 s slices", long_feed, 600, "delta"),
                                                    ("files, long feed, 600 s slices", long_feed, 600, "memory")]:
                result = _file_run(spark, feed, slice_seconds, tmp / f"files-{len(rows)}", sink)
                rows.append({"source -> sink": f"{name} -> {sink}" + (" (append)" if sink == "delta" else " (complete)"),
                             "posts": result["posts"], "batches": len(result["durations"]),
                             "seconds": f"{result['seconds']:.1f}",
                             "posts/s": f"{result['posts'] / result['seconds']:.0f}",
                             "batch s p50 / p95": _percentiles(result["durations"]), "end-to-end s p50 / p95": "-"})
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
    print_table(rows, ["source -> sink", "posts", "batches", "seconds", "posts/s", "batch s p50 / p95",
                       "end-to-end s p50 / p95"])
    print("posts/s: posts / wall time of the whole query (start to last commit); batch s: duration of the micro-batches "
          "that read data; end-to-end: a post sent by the server -> its micro-batch committed (memory sink)")


# ------------------------------------------------------------------------------------------------
# Forecasting (MLE03): one model per series
# ------------------------------------------------------------------------------------------------

# Keep these in step with MLE03.
MLE03_WINDOW = ("2000-01-01", "2018-08-01")  # first and last month of the genre series
MLE03_HORIZON = 12
FORECASTING_COPIES = 10  # the 19 series repeated under new names: 190 series


def _mle03_genre_series(spark):
    """MLE03's (genre, month, n) table: ratings per genre and month, zeros included."""
    from pyspark.sql import functions as F

    from includes.data.movielens import movies_latest_small, ratings_latest_small

    start, end = MLE03_WINDOW
    ratings_df = ratings_latest_small(spark).withColumn("rated_at", F.timestamp_seconds("timestamp"))
    genres = movies_latest_small(spark).select("movieId", F.explode("genres").alias("genre"))
    counts = (ratings_df.join(genres, "movieId").where(F.col("genre") != "(no genres listed)")
              .withColumn("month", F.date_trunc("month", "rated_at").cast("date"))
              .where(F.col("month").between(F.lit(start).cast("date"), F.lit(end).cast("date")))
              .groupBy("genre", "month").agg(F.count("*").alias("n")))
    months = spark.sql(f"SELECT explode(sequence(DATE'{start}', DATE'{end}', INTERVAL 1 MONTH)) AS month")
    return (counts.select("genre").distinct().crossJoin(months).join(counts, ["genre", "month"], "left")
            .withColumn("n", F.coalesce("n", F.lit(0)).cast("long")))


@section("forecasting", "MLE03's MovieLens genre series: one damped-trend model per series, a Python loop on the "
         "driver vs groupBy.applyInPandas", datasets=("ml-latest-small",))
def bench_forecasting(bench: Bench) -> None:
    import numpy as np
    import pandas as pd
    from pyspark import cloudpickle
    from pyspark.sql import functions as F
    from threadpoolctl import threadpool_info, threadpool_limits

    from includes.lessons import forecasting

    spark = bench.spark
    cloudpickle.register_pickle_by_value(forecasting)  # the workers cannot import `includes` (see MLE03)
    forecaster = forecasting.make_group_forecaster(MLE03_HORIZON)
    schema = forecasting.forecast_schema()
    series_df = _mle03_genre_series(spark).cache()
    copies = spark.range(FORECASTING_COPIES).withColumnRenamed("id", "copy")
    # copy 0 keeps the genre's name, so the first 19 series are MLE03's own
    many_df = (series_df.crossJoin(copies)
               .withColumn("genre", F.when(F.col("copy") == 0, F.col("genre"))
                           .otherwise(F.concat_ws("#", "genre", F.col("copy").cast("string"))))
               .drop("copy").cache())
    tables = {"MLE03's genres": series_df.toPandas(), f"x {FORECASTING_COPIES} copies": many_df.toPandas()}
    print(f"shuffle partitions: {spark.conf.get('spark.sql.shuffle.partitions')}, default parallelism: "
          f"{spark.sparkContext.defaultParallelism} (task slots)")
    forecaster(tables["MLE03's genres"].query("genre == 'Drama'"))  # warm-up: statsmodels imported on the driver

    def driver_loop(pdf, blas_threads=None):
        # PySpark starts its Python workers with OMP_NUM_THREADS=1 (one thread per task core); the
        # driver's OpenBLAS uses every core by default, which costs a lot on tiny fits when the
        # machine is busy: the loop runs both ways
        with threadpool_limits(blas_threads):
            return pd.concat([forecaster(group) for _, group in pdf.groupby("genre", sort=True)], ignore_index=True)

    def on_spark(df):
        return df.groupBy("genre").applyInPandas(forecaster, schema=schema).toPandas()

    default_threads = max([pool["num_threads"] for pool in threadpool_info()] or [1])
    rows, results = [], {}
    for name, pdf in tables.items():
        df = series_df if name == "MLE03's genres" else many_df
        n_series = pdf["genre"].nunique()
        for threads, label in [(None, f"BLAS {default_threads} threads (default)"), (1, "BLAS 1 thread")]:
            results[name, "loop"], seconds = Bench.timed(driver_loop, pdf, threads)
            rows.append({"series": f"{n_series} ({name})", "how": f"Python loop on the driver, {label}",
                         "seconds": f"{seconds:.2f}", "ms per series": f"{1000 * seconds / n_series:.0f}"})
        for run in ["first run", "second run"]:  # the first starts the Python workers and imports statsmodels in them
            results[name, "spark"], seconds = Bench.timed(on_spark, df)
            rows.append({"series": f"{n_series} ({name})", "how": f"applyInPandas, {run}",
                         "seconds": f"{seconds:.2f}", "ms per series": f"{1000 * seconds / n_series:.0f}"})
    print_table(rows, ["series", "how", "seconds", "ms per series"])
    for name in tables:
        loop = results[name, "loop"].sort_values(["genre", "month"]).reset_index(drop=True)
        spark_result = results[name, "spark"].sort_values(["genre", "month"]).reset_index(drop=True)
        same = bool(np.array_equal(loop["forecast"].to_numpy(), spark_result["forecast"].to_numpy()))
        print(f"{name}: the same forecasts both ways: {same}")
    print("(the loop includes the pandas groupby; applyInPandas includes the shuffle into groups and the "
          "collection of the results with toPandas)")
    series_df.unpersist()
    many_df.unpersist()


# ------------------------------------------------------------------------------------------------
# Neighbourhood methods (MLE05L): what the similarity matrices cost as items or users grow
# ------------------------------------------------------------------------------------------------
NEIGHBOUR_ITEMS = [1000, 2000, 4000, 8000]
NEIGHBOUR_USERS = [150, 300, 610]


@section("neighbours", "MLE05L's item-item and user-user similarities (the lab's own functions) on MovieLens "
         "latest-small, at growing numbers of movies and users: seconds (median of 3) and MB",
         datasets=("ml-latest-small",))
def bench_neighbours(bench: Bench) -> None:
    import numpy as np
    import pandas as pd

    from includes.lessons.neighbours import item_similarities, user_similarities
    from includes.paths import datasets_root

    ratings = pd.read_csv(datasets_root() / "ml-latest-small" / "ratings.csv")
    # the most rated movies first, so a prefix of n columns is the n most rated movies
    order = ratings["movieId"].value_counts().index
    R = (ratings.pivot_table(index="userId", columns="movieId", values="rating")
         .reindex(columns=order).to_numpy(dtype=float))
    print(f"ratings matrix: {R.shape[0]} users x {R.shape[1]:,} movies (all of ratings.csv)")

    def median_seconds(function, matrix) -> tuple[float, float]:
        times, result = [], None
        for _ in range(3):
            result, seconds = bench.timed(function, matrix)
            times.append(seconds)
        return float(np.median(times)), result.nbytes / 1e6

    rows = []
    for n in NEIGHBOUR_ITEMS:
        seconds, mb = median_seconds(item_similarities, R[:, :n])
        rows.append({"method": "item-based", "movies": n, "users": R.shape[0], "seconds": round(seconds, 3),
                     "similarity MB": round(mb, 1)})
    for m in NEIGHBOUR_USERS:
        seconds, mb = median_seconds(user_similarities, R[:m, :])
        rows.append({"method": "user-based", "movies": R.shape[1], "users": m, "seconds": round(seconds, 3),
                     "similarity MB": round(mb, 1)})
    print_table(rows, ["method", "movies", "users", "seconds", "similarity MB"])
    save_results("neighbours", rows, notes="NumPy on one process, BLAS threads as pinned by the course")


# ------------------------------------------------------------------------------------------------
# MLE06: scikit-learn's joblib work on Spark
# ------------------------------------------------------------------------------------------------


@section("joblib", "MLE06's GridSearchCV (8 candidates x 3 folds of a 25-tree forest): one process, loky with "
         "2 workers, joblibspark's Spark backend with n_jobs=2", datasets=("airbnb-sf",))
def bench_joblib(bench: Bench) -> None:
    import warnings

    import joblib
    import numpy as np
    from joblibspark import register_spark
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import GridSearchCV, KFold

    spark = bench.spark
    train_df, _ = _airbnb_split(spark)
    feature_cols = [name for name, dtype in train_df.dtypes if dtype != "string" and name != "price"]
    train_pdf = train_df.toPandas()
    X, y = train_pdf[feature_cols], train_pdf["price"]
    folds = KFold(n_splits=3, shuffle=True, random_state=42)
    grid = {"max_depth": [6, 12], "max_features": ["sqrt", 0.5], "min_samples_leaf": [1, 5]}

    def search(n_jobs):
        forest = RandomForestRegressor(n_estimators=25, random_state=42, n_jobs=1)
        return GridSearchCV(forest, grid, cv=folds, scoring="neg_root_mean_squared_error", n_jobs=n_jobs).fit(X, y)

    warnings.filterwarnings("ignore", message=".*stage-level scheduling", category=UserWarning)
    warnings.filterwarnings("ignore", message="Spark session is not provided", category=UserWarning)
    register_spark()

    def on_spark():
        with joblib.parallel_backend("spark", n_jobs=2):
            return search(2)

    runs = [("one process (n_jobs=1)", lambda: search(1)), ("loky, n_jobs=2", lambda: search(2)),
            ("joblibspark, n_jobs=2", on_spark)]
    rows, scores = [], {}
    for label, run in runs:
        for attempt in ("first", "second"):  # the first loky / Spark run starts its worker processes
            result, seconds = Bench.timed(run)
            scores[label] = result.cv_results_["mean_test_score"]
            rows.append({"backend": label, "run": attempt, "seconds": f"{seconds:.2f}",
                         "best CV RMSE": f"{-result.best_score_:.2f}"})
    print_table(rows, ["backend", "run", "seconds", "best CV RMSE"])
    reference = scores["one process (n_jobs=1)"]
    print("the same mean CV scores with every backend:",
          all(np.allclose(values, reference, rtol=0, atol=1e-9) for values in scores.values()))
    train_df.unpersist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/course.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", help=f"sections to run (default: all): {', '.join(SECTIONS)}")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    if args.list:
        for entry in SECTIONS.values():
            print(f"{entry.name:<12}{entry.description}")
        return 0
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    import pyspark

    from includes.data import datasets

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min); pyspark {pyspark.__version__}")
    bench = Bench()
    for name in args.sections or list(SECTIONS):
        entry = SECTIONS[name]
        print(f"\n== {entry.name}: {entry.description}")
        missing = [dataset for dataset in entry.datasets if not datasets.is_installed(dataset)]
        if missing:  # from $COURSE_DATASETS_MIRROR if set, else the original URLs
            datasets.install(missing)
        started = time.perf_counter()
        entry.run(bench)
        print(f"(section {entry.name}: {time.perf_counter() - started:.1f} s)")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nload average at the end: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
