"""Section ``tuning``: the Airbnb price models.

ML08's CrossValidator grid with parallelism 1 and 2; ML09's Hyperopt TPE, random search and
Optuna TPE on its budget and a larger one (best validation RMSE, seconds); ML09L's SparkTrials
with parallelism 1 and 2.
"""

from __future__ import annotations

from benchmarks.common import Bench, airbnb_split, print_table, section

# Keep these in step with the notebooks.
ML08_GRID = {"maxDepth": [5, 8], "numTrees": [20, 50]}  # x 3 folds, Pipeline inside the CrossValidator
ML09_STARTUP, ML09_SEED = 4, 42  # TPE's n_startup_jobs / Optuna's n_startup_trials, and the seed
ML09_BUDGETS = [12, 30]  # trials: ML09's budget and a larger one (no early stopping here)
ML09_FEATURE_SUBSETS = ["onethird", "sqrt", "all"]
ML09L_MAX_EVALS = 12


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
    train_df, _ = airbnb_split(spark)
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
