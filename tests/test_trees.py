"""includes/lessons/trees.py: parsing toDebugString, names, importances and the tree picture."""

import pytest

from includes.lessons import trees

# a regression tree as Spark prints it: feature 0 categorical (3 values), features 1 and 12 continuous
DEBUG = """DecisionTreeRegressionModel: uid=dtr_1, depth=2, numNodes=7, numFeatures=13
  If (feature 12 <= 2.5)
   If (feature 0 in {1.0,2.0})
    Predict: 50.0
   Else (feature 0 not in {1.0,2.0})
    Predict: 120.5
  Else (feature 12 > 2.5)
   If (feature 1 <= -0.25)
    Predict: 300.0
   Else (feature 1 > -0.25)
    Predict: 1000.0
"""
NAMES = ["room"] + [f"x{i}" for i in range(1, 12)] + ["bedrooms"]
LABELS = {0: ["Entire home", "Private room", "Shared room"]}


def predict(node, x):
    """Walk a parsed tree the way Spark does: categorical in-set / continuous <= goes left."""
    while not node.is_leaf:
        value = x[node.feature]
        goes_left = value in node.categories if node.categories is not None else value <= node.threshold
        node = node.left if goes_left else node.right
    return node.prediction


def test_parse_reads_splits_and_leaves():
    root = trees.parse_debug_string(DEBUG)
    assert (root.feature, root.threshold, root.categories) == (12, 2.5, None)
    assert (root.left.feature, root.left.categories, root.left.threshold) == (0, (1.0, 2.0), None)
    assert root.right.threshold == -0.25
    assert [leaf.prediction for leaf in root.leaves()] == [50.0, 120.5, 300.0, 1000.0]
    assert root.depth() == 2 and len(list(root.nodes())) == 7
    assert predict(root, {12: 1.0, 0: 2.0}) == 50.0
    assert predict(root, {12: 1.0, 0: 0.0}) == 120.5
    assert predict(root, {12: 3.0, 1: -1.0}) == 300.0


def test_parse_a_single_leaf_with_or_without_header():
    assert trees.parse_debug_string("DecisionTreeRegressionModel: depth=0\n  Predict: 7.5").prediction == 7.5
    leaf = trees.parse_debug_string("Predict: 7.5")
    assert leaf.is_leaf and leaf.depth() == 0 and leaf.leaves() == [leaf]


@pytest.mark.parametrize("text,message", [
    ("", "no tree"),
    ("header\n If (feature 1 <= 2.0)\n", "ends inside a split"),
    ("header\n If (feature 1 <= 2.0)\n  Predict: 1.0\n", "Else"),
    ("header\n If (feature 1 <= 2.0)\n  Predict: 1.0\n Else (feature 2 > 2.0)\n  Predict: 2.0\n", "Else"),
    ("header\n Predict: 1.0\n Predict: 2.0\n", "unexpected text"),
    ("header\n Split somewhere\n", "expected 'If' or 'Predict'"),
    ("RandomForestRegressionModel: 2 trees\n  Tree 0 (weight 1.0):\n    Predict: 1.0\n", "ensemble"),
])
def test_parse_rejects_malformed_text(text, message):
    with pytest.raises(ValueError, match=message):
        trees.parse_debug_string(text)


def test_split_text():
    root = trees.parse_debug_string(DEBUG)
    assert trees.split_text(root, NAMES) == "bedrooms <= 2.5"
    assert trees.split_text(root) == "feature 12 <= 2.5"
    assert trees.split_text(root.left, NAMES, LABELS) == "room in {Private room, Shared room}"
    assert trees.split_text(root.left, NAMES) == "room in {1, 2}"
    many = trees.TreeNode(feature=0, categories=(0.0, 1.0, 2.0, 3.0))
    labels = {0: list("abcdef")}
    assert trees.split_text(many, NAMES, labels) == "room not in {e, f}"
    assert trees.split_text(many, NAMES, labels, max_labels=1) == "room: 4 of 6 values"
    assert trees.split_text(many, NAMES, max_labels=1) == "room in 4 values"
    with pytest.raises(ValueError):
        trees.split_text(root.left.left)


def test_named_debug_string_replaces_whole_feature_numbers_and_categories():
    named = trees.named_debug_string(DEBUG, NAMES, LABELS).splitlines()
    assert named[1] == "  If (bedrooms <= 2.5)"
    assert named[2] == "   If (room in {Private room,Shared room})"
    assert named[7] == "   If (x1 <= -0.25)"  # feature 1, not the start of feature 12
    assert len(named) == len(DEBUG.strip().splitlines())


def test_layout_places_leaves_left_to_right_and_parents_midway():
    root = trees.parse_debug_string(DEBUG)
    full = trees.layout(root, max_depth=5)
    assert [p.x for p in full if p.node.is_leaf] == [0.0, 1.0, 2.0, 3.0]
    assert [p.x for p in full if not p.node.is_leaf] == [1.5, 0.5, 2.5]
    assert [p.level for p in full] == [0, 1, 2, 2, 1, 2, 2]
    assert not any(p.truncated for p in full)
    top = trees.layout(root, max_depth=1)
    assert [(p.x, p.level, p.truncated) for p in top] == [(0.5, 0, False), (0.0, 1, True), (1.0, 1, True)]
    assert trees.layout(root, max_depth=0)[0].truncated
    with pytest.raises(ValueError):
        trees.layout(root, max_depth=-1)


def test_draw_tree_draws_every_placed_node_and_edge_label():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = trees.parse_debug_string(DEBUG)
    ax = trees.draw_tree(root, NAMES, LABELS, max_depth=1, title="t")
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("yes") == 1 and texts.count("no") == 1
    assert "bedrooms\n<= 2.5" in texts and texts.count("...\n(2 leaves)") == 2
    assert ax.get_title() == "t"
    full = [t.get_text() for t in trees.draw_tree(root, NAMES, LABELS, max_depth=3).texts]
    assert "room\nin {Private room, Shared room}" in full and "predict\n1,000" in full
    assert len(full) == 7 + 6  # 7 boxes, 6 edge labels
    plt.close("all")


class FakeModel:
    def __init__(self, values):
        import numpy as np

        self.featureImportances = type("Vector", (), {"toArray": lambda _self: np.array(values)})()


def test_importance_table_sorts_names_rounds_and_drops_zeros():
    model = FakeModel([0.1, 0.0, 0.45, 0.45])
    table = trees.importance_table(model, ["d", "c", "b", "a"])
    assert list(table.columns) == ["feature", "importance"]
    assert table.values.tolist() == [["a", 0.45], ["b", 0.45], ["d", 0.1]]
    assert trees.importance_table(model, ["d", "c", "b", "a"], keep_zero=True)["feature"].tolist()[-1] == "c"
    assert trees.importance_table(model, ["d", "c", "b", "a"], top=1)["feature"].tolist() == ["a"]
    assert trees.importance_table(FakeModel([1 / 3, 2 / 3]), ["x", "y"], digits=2)["importance"].tolist() == [0.67, 0.33]
    with pytest.raises(ValueError, match="names"):
        trees.importance_table(model, ["a"])


def test_a_fitted_spark_tree_parses_and_predicts_like_spark(spark):
    """The parser against Spark's own text: same depth and leaves, same prediction for every row."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StringIndexer, VectorAssembler
    from pyspark.ml.regression import DecisionTreeRegressor

    colors = ["red", "green", "blue", "grey"]
    rows = [(colors[i % 4], float(i % 10), float(i // 10), (100.0 if i % 4 == 0 else 10.0) + 7 * (i % 10) - (i // 10))
            for i in range(80)]
    df = spark.createDataFrame(rows, "color STRING, size DOUBLE, age DOUBLE, price DOUBLE")
    model = Pipeline(stages=[
        StringIndexer(inputCol="color", outputCol="color_index", handleInvalid="keep"),
        VectorAssembler(inputCols=["color_index", "size", "age"], outputCol="features"),
        DecisionTreeRegressor(labelCol="price", maxDepth=4, seed=1),
    ]).fit(df)
    scored = model.transform(df)
    tree = model.stages[-1]
    root = trees.parse_debug_string(tree.toDebugString)
    assert root.depth() == tree.depth and len(list(root.nodes())) == tree.numNodes
    assert any(node.categories is not None for node in root.nodes())  # the color split is categorical
    for row in scored.select("features", "prediction").collect():
        assert predict(root, row.features.toArray()) == pytest.approx(row.prediction)

    names, labels = trees.feature_attributes(scored)
    assert names == ["color_index", "size", "age"]
    assert labels == {0: model.stages[0].labels + ["__unknown"]}
    table = trees.importance_table(tree, names)
    assert table["importance"].sum() == pytest.approx(1.0, abs=1e-3)
    assert set(table["feature"]) <= set(names)
