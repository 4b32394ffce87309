"""Section ``forecasting``: MLE03's 19 MovieLens genre series (monthly ratings).

One damped-trend model per series, a Python loop on the driver (default BLAS threads and one
thread) vs ``groupBy.applyInPandas``, also for ten times as many series.
"""

from __future__ import annotations

from benchmarks.common import Bench, print_table, section

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
