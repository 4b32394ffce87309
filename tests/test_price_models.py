"""includes/lessons/price_models.py: the feature stages and baselines the Airbnb lessons share."""

import math

import pytest

from includes.lessons import price_models


@pytest.fixture(scope="module")
def listings(spark):
    """A small listings table whose price is exactly linear in bedrooms plus a room-type offset."""
    rooms = {"Entire home/apt": 100.0, "Private room": 20.0, "Shared room": 0.0}
    rows = []
    for i in range(60):
        room = list(rooms)[i % 3]
        bedrooms = float(i % 5)
        rows.append((room, bedrooms, float(i % 7), "t" if i % 2 else "f", 50.0 + 40.0 * bedrooms + rooms[room]))
    return spark.createDataFrame(rows, "room_type STRING, bedrooms DOUBLE, beds DOUBLE, instant STRING, price DOUBLE")


def test_feature_columns_split_strings_from_numbers_in_table_order(listings):
    assert price_models.feature_columns(listings) == (["room_type", "instant"], ["bedrooms", "beds"])
    assert price_models.feature_columns(listings, label="beds") == (["room_type", "instant"], ["bedrooms", "price"])


def test_feature_columns_name_a_missing_label(listings):
    with pytest.raises(ValueError, match="label column 'cost' is not in the DataFrame.*room_type"):
        price_models.feature_columns(listings, label="cost")


def test_tree_features_index_without_one_hot_and_keep_unseen_categories(spark, listings):
    from pyspark.ml import Pipeline

    indexer, assembler = price_models.tree_feature_stages(listings)
    assert indexer.getHandleInvalid() == "keep"
    assert assembler.getInputCols() == ["room_type_index", "instant_index", "bedrooms", "beds"]
    model = Pipeline(stages=[indexer, assembler]).fit(listings)
    unseen = spark.createDataFrame([("Castle", 9.0, 1.0, "f", 1.0)], listings.schema)
    vector = model.transform(unseen).first().features.toArray()
    assert vector[0] == 3.0  # the unseen room type lands in the extra bucket, after the 3 known ones
    assert len(vector) == 4  # one column per feature, no one-hot expansion


def test_linear_baselines_fit_ml03_and_ml04_models(listings):
    models = price_models.fit_linear_baselines(listings)
    assert list(models) == [price_models.ML03_BASELINE, price_models.ML04_BASELINE]
    bedrooms, one_hot = models.values()
    assert len(bedrooms.stages[-1].coefficients) == 1
    # 3 room types + unseen bucket (one-hot drops the last: 3), 2 instant values (2), 2 numeric columns
    assert len(one_hot.stages[-1].coefficients) == 3 + 2 + 2
    table = price_models.comparison_table([(name, m.transform(listings)) for name, m in models.items()])
    by_model = table.set_index("model")
    assert by_model.loc[price_models.ML04_BASELINE, "test RMSE"] == pytest.approx(0.0, abs=1e-2)  # price is linear in it
    assert by_model.loc[price_models.ML03_BASELINE, "test RMSE"] > 10  # bedrooms alone miss the room offset


def test_comparison_table_rounds_and_matches_the_formula(spark):
    pred = spark.createDataFrame([(1.0, 2.0), (3.0, 3.0), (5.0, 4.0), (7.0, 7.5)], "price DOUBLE, prediction DOUBLE")
    table = price_models.comparison_table([("m", pred)])
    errors = [1.0, 0.0, 1.0, 0.5]
    rmse = math.sqrt(sum(e * e for e in errors) / 4)
    r2 = 1 - sum(e * e for e in errors) / sum((y - 4.0) ** 2 for y in (1.0, 3.0, 5.0, 7.0))
    assert table.to_dict("records") == [{"model": "m", "test RMSE": round(rmse, 2), "test R2": round(r2, 4)}]


def test_regression_metrics_say_which_column_is_missing(spark):
    pred = spark.createDataFrame([(1.0,)], "price DOUBLE")
    with pytest.raises(ValueError, match="column\\(s\\) prediction missing"):
        price_models.regression_metrics(pred)
