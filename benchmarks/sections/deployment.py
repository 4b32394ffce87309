"""Section ``deployment``: serving the Airbnb price models.

ML12's scikit-learn forest scored by Spark in four ways (scalar and iterator pandas UDF,
``mapInPandas``, ``mlflow.pyfunc.spark_udf``), rows/s at two Arrow batch sizes; ML11's
SparkXGBRegressor fit with 1 and 2 workers; ML10's REST endpoint (``mlflow models serve`` of a
Spark pipeline and of a scikit-learn model: start-up, memory, latency, requests/s) and batch
scoring rows/s.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Bench, airbnb_for_sklearn, airbnb_numeric_features, print_table, section

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
    train_df, test_df, features, train_pdf = airbnb_for_sklearn(spark)
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
    numeric = airbnb_numeric_features(train_df)
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
