"""Section ``joblib``: scikit-learn's joblib work on Spark (MLE06).

MLE06's GridSearchCV (24 forest fits) in one process, with loky and with joblibspark's Spark
backend: seconds, best CV RMSE, the same scores every way. (The module is not named
``joblib.py``: it imports joblib.)
"""

from __future__ import annotations

from benchmarks.common import Bench, airbnb_for_sklearn, print_table, section


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
    train_df, _, feature_cols, train_pdf = airbnb_for_sklearn(spark)
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
