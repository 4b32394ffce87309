"""Section ``jester``: the Jester lab (ML16L).

Loading ``jester-data-1.xls``, ``createDataFrame`` with Arrow on and off (wide and long frames),
the lab's unpivot + split, and its NumPy ALS (from the lab's own cells, ``#@save jester_als``;
default BLAS threads and one) against Spark ALS: seconds and held-out RMSE.
"""

from __future__ import annotations

from benchmarks.common import Bench, print_table, section

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
