"""The Airbnb price models every lesson from ML07 on compares against, built one way.

ML03 and ML04 teach the linear regressions, ML07 the tree features; the later lessons (random
forests, Hyperopt, XGBoost, ...) set their models against the same baselines on the same test
set. Building those here keeps the definitions identical everywhere:

- :func:`feature_columns` splits a listings table into string and numeric feature columns;
- :func:`tree_feature_stages` is ML07's feature preparation for tree models: one
  ``StringIndexer`` (unseen categories kept in their own bucket), no one-hot encoding, no
  scaling, one ``VectorAssembler`` over the indexed and numeric columns;
- :func:`fit_linear_baselines` fits ML03's bedrooms-only and ML04's one-hot linear regressions;
- :func:`regression_metrics` and :func:`comparison_table` evaluate prediction DataFrames into a
  table that prints the same on every run (rounded).
"""

from __future__ import annotations

from typing import Iterable, Sequence

ML03_BASELINE = "ML03: linear regression, bedrooms"
ML04_BASELINE = "ML04: linear regression, all features (one-hot)"


def feature_columns(df, label: str = "price") -> tuple[list[str], list[str]]:
    """``(categorical, numeric)`` feature column names of ``df`` in table order: the string
    columns, and every other column except ``label``."""
    if label not in df.columns:
        raise ValueError(f"label column {label!r} is not in the DataFrame (columns: {', '.join(df.columns)})")
    categorical = [name for name, dtype in df.dtypes if dtype == "string"]
    numeric = [name for name, dtype in df.dtypes if dtype != "string" and name != label]
    return categorical, numeric


def tree_feature_stages(df, label: str = "price", features_col: str = "features") -> list:
    """``[StringIndexer, VectorAssembler]`` for a tree model on ``df`` (ML07, section 2)."""
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    categorical, numeric = feature_columns(df, label)
    index_cols = [c + "_index" for c in categorical]
    return [
        StringIndexer(inputCols=categorical, outputCols=index_cols, handleInvalid="keep"),
        VectorAssembler(inputCols=index_cols + numeric, outputCol=features_col),
    ]


def fit_linear_baselines(train_df, label: str = "price") -> dict:
    """ML03's and ML04's linear regressions fitted on ``train_df``: ``{name: PipelineModel}``.

    ML03 uses the number of bedrooms only. ML04 one-hot encodes every string column (unseen
    categories in their own bucket) and puts the one-hot vectors in place of the string
    columns, in table order, as ``RFormula`` does.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression

    categorical, _ = feature_columns(train_df, label)
    index_cols = [c + "_index" for c in categorical]
    ohe_cols = [c + "_ohe" for c in categorical]
    bedrooms = Pipeline(stages=[
        VectorAssembler(inputCols=["bedrooms"], outputCol="features"),
        LinearRegression(featuresCol="features", labelCol=label),
    ])
    one_hot = Pipeline(stages=[
        StringIndexer(inputCols=categorical, outputCols=index_cols, handleInvalid="keep"),
        OneHotEncoder(inputCols=index_cols, outputCols=ohe_cols),
        VectorAssembler(inputCols=[c + "_ohe" if c in categorical else c for c in train_df.columns if c != label],
                        outputCol="features"),
        LinearRegression(featuresCol="features", labelCol=label),
    ])
    return {ML03_BASELINE: bedrooms.fit(train_df), ML04_BASELINE: one_hot.fit(train_df)}


def regression_metrics(pred_df, label: str = "price", prediction: str = "prediction") -> dict[str, float]:
    """``{"rmse": ..., "r2": ...}`` of a DataFrame with a label and a prediction column."""
    from pyspark.ml.evaluation import RegressionEvaluator

    missing = [c for c in (label, prediction) if c not in pred_df.columns]
    if missing:
        raise ValueError(f"cannot evaluate: column(s) {', '.join(missing)} missing "
                         f"(columns: {', '.join(pred_df.columns)})")
    evaluator = RegressionEvaluator(labelCol=label, predictionCol=prediction)
    return {metric: evaluator.evaluate(pred_df, {evaluator.metricName: metric}) for metric in ("rmse", "r2")}


def comparison_table(candidates: Iterable[tuple[str, object]], label: str = "price",
                     prediction: str = "prediction", digits: Sequence[int] = (2, 4)):
    """A pandas table ``model | test RMSE | test R2`` for ``(name, predictions DataFrame)`` pairs,
    rounded (RMSE to ``digits[0]``, R2 to ``digits[1]`` places) so it prints identically."""
    import pandas as pd

    rows = []
    for name, pred_df in candidates:
        scores = regression_metrics(pred_df, label, prediction)
        rows.append((name, round(scores["rmse"], digits[0]), round(scores["r2"], digits[1])))
    return pd.DataFrame(rows, columns=["model", "test RMSE", "test R2"])


def linear_baseline_table(train_df, test_df, label: str = "price"):
    """:func:`comparison_table` of ML03's and ML04's models, fitted on ``train_df``, on ``test_df``."""
    models = fit_linear_baselines(train_df, label)
    return comparison_table([(name, model.transform(test_df)) for name, model in models.items()], label)
