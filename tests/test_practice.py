"""includes/lessons/practice.py: plan outlines, a Delta log replayed, SQL options set and restored,
and the REST API client against a real local session."""

import json
from types import SimpleNamespace

import pytest

from includes.lessons import practice

SORT_MERGE = """AdaptiveSparkPlan isFinalPlan=false
+- Project [k#19L, id#18L, name#22]
   +- SortMergeJoin [k#19L], [k#21L], Inner
      :- Sort [k#19L ASC NULLS FIRST], false, 0
      :  +- Exchange hashpartitioning(k#19L, 8), ENSURE_REQUIREMENTS, [plan_id=86]
      :     +- *(1) Project [id#18L, (id#18L % 100) AS k#19L]
      :        +- *(1) Filter isnotnull((id#18L % 100))
      :           +- FileScan parquet [id#18L] Batched: true, Location: PreparedDeltaFileIndex(1 paths)[file:/x/t], PushedFilters: [IsNotNull(id), EqualTo(id,414)], ReadSchema: struct<id:bigint>
      +- Sort [k#21L ASC NULLS FIRST], false, 0
         +- Exchange hashpartitioning(k#21L, 8), ENSURE_REQUIREMENTS, [plan_id=87]
            +- Project [id#20L AS k#21L, cast(id#20L as string) AS name#22]
               +- Range (0, 100, step=1, splits=2)"""

def test_outline_keeps_operators_and_tree_shape_only():
    assert practice.outline(SORT_MERGE).splitlines() == [
        "AdaptiveSparkPlan",
        "   Project",
        "      SortMergeJoin Inner",
        "         Sort",
        "            Exchange hashpartitioning",
        "               Project",
        "                  Filter",
        "                     FileScan parquet PushedFilters: [IsNotNull(id), EqualTo(id,414)]",
        "         Sort",
        "            Exchange hashpartitioning",
        "               Project",
        "                  Range",
    ]


def test_outline_names_broadcast_joins_and_strips_arguments():
    tree = """TakeOrderedAndProject(limit=3, orderBy=[n#5L DESC NULLS LAST], output=[genres#3,n#5L])
+- BroadcastHashJoin [k#19L], [k#21L], LeftOuter, BuildRight, false, false
   :- InMemoryTableScan [k#19L]
   +- BroadcastExchange HashedRelationBroadcastMode(List(input[0, bigint, false]),false), [plan_id=120]
      +- Range (0, 100, step=1, splits=2)"""
    assert practice.outline(tree).splitlines() == [
        "TakeOrderedAndProject",
        "   BroadcastHashJoin LeftOuter BuildRight",
        "      InMemoryTableScan",
        "      BroadcastExchange",
        "         Range",
    ]
    assert "#" not in practice.outline(SORT_MERGE) and "plan_id" not in practice.outline(SORT_MERGE)


def _commit(log_dir, version, *actions):
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def _add(path, low, high, records=10):
    stats = json.dumps({"numRecords": records, "minValues": {"userId": low}, "maxValues": {"userId": high}})
    return {"add": {"path": path, "size": 100, "stats": stats, "dataChange": True}}


def test_delta_files_replays_adds_and_removes_in_order(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    _commit(log, 0, {"protocol": {}}, {"metaData": {}}, _add("a.parquet", 1, 600), _add("b.parquet", 2, 610))
    _commit(log, 1, {"remove": {"path": "a.parquet"}}, {"remove": {"path": "b.parquet"}},
            _add("c.parquet", 1, 300, 15), _add("d.parquet", 301, 610, 5))
    files = practice.delta_files(tmp_path / "t")
    assert [f.path for f in files] == ["c.parquet", "d.parquet"]
    assert [f.records for f in files] == [15, 5]
    assert [f.path for f in practice.files_that_may_match(files, "userId", 414)] == ["d.parquet"]
    assert [f.path for f in practice.files_that_may_match(files, "userId", 300)] == ["c.parquet"]
    assert practice.files_that_may_match(files, "userId", 700) == []


def test_a_file_without_statistics_may_hold_anything(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    _commit(log, 0, _add("a.parquet", 1, 10), {"add": {"path": "b.parquet", "size": 5}})
    files = practice.delta_files(tmp_path / "t")
    assert [f.path for f in practice.files_that_may_match(files, "userId", 99)] == ["b.parquet"]
    assert [f.path for f in practice.files_that_may_match(files, "movieId", 1)] == ["a.parquet", "b.parquet"]


def test_delta_files_refuses_what_it_cannot_replay(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Delta commit"):
        practice.delta_files(tmp_path)
    log = tmp_path / "t" / "_delta_log"
    _commit(log, 0, _add("a.parquet", 1, 10))
    _commit(log, 2, _add("b.parquet", 1, 10))
    with pytest.raises(ValueError, match="without gaps"):
        practice.delta_files(tmp_path / "t")


def test_balance_summarises_records_per_task():
    assert practice.balance([10, 10, 10, 170]) == "4 tasks, max 170, median 10, max/median 17.0"
    assert practice.balance([0, 0, 5]).endswith("max/median inf")


def test_status_needs_a_ui():
    fake = SimpleNamespace(sparkContext=SimpleNamespace(uiWebUrl=None, applicationId="local-1"))
    with pytest.raises(practice.SparkStatusError, match="spark.ui.enabled"):
        practice.SparkStatus(fake)


def test_status_says_when_the_api_does_not_answer():
    fake = SimpleNamespace(sparkContext=SimpleNamespace(uiWebUrl="http://127.0.0.1:9", applicationId="local-1"))
    with pytest.raises(practice.SparkStatusError, match="did not answer"):
        practice.SparkStatus(fake).get("stages")


def test_spark_conf_sets_then_restores(spark):
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.unset("spark.sql.windowExec.buffer.spill.threshold")
    default = spark.conf.get("spark.sql.windowExec.buffer.spill.threshold")
    with practice.spark_conf(spark, {"spark.sql.shuffle.partitions": 7, "spark.sql.adaptive.enabled": False,
                                     "spark.sql.windowExec.buffer.spill.threshold": 10}):
        assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
        assert spark.conf.get("spark.sql.adaptive.enabled") == "false"
    assert spark.conf.get("spark.sql.shuffle.partitions") == before
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark.conf.get("spark.sql.windowExec.buffer.spill.threshold") == default
    with pytest.raises(RuntimeError):
        with practice.spark_conf(spark, {"spark.sql.shuffle.partitions": 3}):
            raise RuntimeError("a failing block")
    assert spark.conf.get("spark.sql.shuffle.partitions") == before
    with pytest.raises(ValueError, match="cannot be changed"):
        with practice.spark_conf(spark, {"spark.sql.warehouse.dir": "/tmp/elsewhere"}):
            pass


def test_status_reports_stages_tasks_and_records(spark):
    from pyspark.sql import functions as F

    status = practice.SparkStatus(spark)
    df = spark.range(1000).withColumn("key", F.when(F.col("id") < 900, F.lit(0)).otherwise(F.col("id") % 5))
    with practice.spark_conf(spark, {"spark.sql.adaptive.enabled": False}):
        run = status.run("test-skew", lambda: df.repartition(4, "key").write.format("noop").mode("overwrite").save())
    assert run.result is None and run.jobs
    assert [status.stage(stage)["numTasks"] for stage in run.stages] == [2, 4]
    records = status.shuffle_records_per_task(run.stages[-1])
    assert len(records) == 4 and sum(records) == 1000 and max(records) >= 920  # key 0: ids below 900 and the multiples of 5 above
    counted = status.run("test-count", df.filter("key = 0").count)
    assert counted.result == 920
    metrics = status.sql_metrics(counted.jobs[-1])
    assert metrics["Filter"]["number of output rows"] == "920"


def test_plan_outline_of_a_real_join(spark):
    from pyspark.sql import functions as F

    big, small = spark.range(1000), spark.range(10).withColumnRenamed("id", "k")
    with practice.spark_conf(spark, {"spark.sql.autoBroadcastJoinThreshold": -1}):
        assert "SortMergeJoin Inner" in practice.plan_outline(big.join(small, big.id == small.k))
        assert "BroadcastHashJoin Inner BuildRight" in practice.plan_outline(big.join(F.broadcast(small), big.id == small.k))
