"""Section ``als``: MovieLens 100K, ``ua.base`` -> ``ua.test`` (lesson ML16).

ALS with the settings of the 003 notebook, the tuned ALS of ML16 (its TrainValidationSplit search
and the chosen settings), and ML16's baseline predictor + ALS on its residuals: fit seconds and
RMSE on ``ua.test``.
"""

from __future__ import annotations

from benchmarks.common import SEED, Bench, print_table, section

# The settings ML16 chose (TrainValidationSplit for plain ALS; a per-user validation split of
# ua.base for the hybrid). Keep them in step with the notebook.
ML16_BLOCKS = 4
ML16_TUNING_GRID = {"rank": [10, 25], "regParam": [0.1, 0.15, 0.2]}
ML16_TUNED_ALS = {"rank": 25, "regParam": 0.15, "maxIter": 15}
ML16_HYBRID = {"bias_reg": 5, "rank": 50, "regParam": 0.13, "maxIter": 15}


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
