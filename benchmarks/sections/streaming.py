"""Section ``streaming``: ML17's streaming SGD on MovieLens latest-small replayed as files.

Per-batch latency, Spark jobs per batch and throughput, with and without the per-batch held-out
evaluation, and with larger batches; the final held-out RMSE against batch ALS retrained on all
training ratings. Results: ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import time

from benchmarks.common import ML17_RANK, Bench, ml17_offline_model, print_table, save_results, section

# The settings of ML17; keep them in step with the notebook (the data split and the rank are in
# benchmarks/common.py, shared with the serving section).
# the setting ML17's replay chooses on the stream's own ratings (section 6); keep in step with the notebook
ML17_SGD = {"gamma": 0.05, "reg": 0.1, "kappa": 25.0, "epochs": 3, "init_scale": 0.01, "seed": 42}
ML17_FILES = 10
ML17_CONF = {"spark.sql.shuffle.partitions": "2", "spark.databricks.delta.snapshotPartitions": "2"}
# (number of replay files, held-out RMSE after every batch?) for the throughput runs, after one
# unreported warm-up run that lets the JVM compile Delta's code paths
ML17_RUNS = [(ML17_FILES, True), (ML17_FILES, False), (3, True)]
WARM_UP_RUN = (3, True)


def _spark_jobs(spark) -> int:
    """Spark jobs started so far in this application (the DAG scheduler's job counter)."""
    return spark.sparkContext._jsc.sc().dagScheduler().numTotalJobs()


@section("streaming", "MovieLens latest-small replayed as files: streaming SGD throughput and per-batch latency (ML17)",
         datasets=("ml-latest-small",))
def bench_streaming(bench: Bench) -> None:
    import statistics
    import tempfile

    from includes.lessons import streaming_sgd as sa
    from includes.lessons.replay import ReplayFiles, replay_stream
    from includes.paths import work_root
    spark = bench.spark
    (offline_df, stream_df, heldout_df, mu, users_df, items_df, train_df), fit_seconds = bench.timed(
        ml17_offline_model, spark)
    offline_count, stream_count = offline_df.count(), stream_df.count()
    print(f"offline model (baseline + residual ALS rank {ML17_RANK}, {offline_count} ratings): "
          f"{fit_seconds:.1f} s; stream: {stream_count} ratings")
    batch_mu, batch_users, batch_items = sa.fit_offline_model(train_df, rank=ML17_RANK)
    batch_rmse = sa.rmse(heldout_df, batch_users, batch_items, batch_mu)
    print(f"batch ALS retrained on all training ratings (the notebook's yardstick): held-out RMSE {batch_rmse:.4f}")
    params = sa.SGDParams(rank=ML17_RANK, **ML17_SGD)
    print(f"SGD settings: {ML17_SGD}")

    rows = []
    # as in the notebook: 2 shuffle (and Delta log replay) partitions for the small micro-batches
    saved = {key: spark.conf.get(key) for key in ML17_CONF}
    for key, value in ML17_CONF.items():
        spark.conf.set(key, value)
    try:
        with tempfile.TemporaryDirectory(prefix="ml17-", dir=work_root()) as scratch:
            for run, (n_files, evaluate) in enumerate([WARM_UP_RUN, *ML17_RUNS]):
                root = f"{scratch}/run{run}"
                model = sa.StreamingSGD(f"{root}/model", params, app_id=f"bench-{run}", evaluate=evaluate)
                _, init_seconds = bench.timed(model.initialize, users_df, items_df, heldout_df, mu, offline_count)
                replay = ReplayFiles(stream_df, n_files, order_by=sa.REPLAY_ORDER, prefix="ratings")
                replay.write(f"{root}/incoming")
                started, jobs_before = time.perf_counter(), _spark_jobs(spark)
                query = (replay_stream(spark, f"{root}/incoming", sa.RATINGS_DDL).writeStream.foreachBatch(model)
                         .option("checkpointLocation", f"{root}/checkpoint").trigger(availableNow=True).start())
                query.awaitTermination()
                wall, jobs = time.perf_counter() - started, _spark_jobs(spark) - jobs_before
                batches = [p for p in query.recentProgress if p["numInputRows"]]
                seconds = [p["durationMs"]["triggerExecution"] / 1000 for p in batches]
                in_function = [p["durationMs"].get("addBatch", 0) / 1000 for p in batches]
                ratings = sum(p["numInputRows"] for p in batches)
                final = model.last_progress(spark)
                if run == 0:
                    print(f"warm-up run ({n_files} files, {len(batches)} batches) in {wall:.1f} s, not reported")
                    continue
                rows.append({
                    "files": n_files,
                    "ratings/batch": round(ratings / len(batches)),
                    "held-out eval": "yes" if evaluate else "no",
                    "init s": round(init_seconds, 1),
                    "batch s median": round(statistics.median(seconds), 2),
                    "batch s min-max": f"{min(seconds):.2f}-{max(seconds):.2f}",
                    "batch s each": [round(value, 2) for value in seconds],
                    "foreachBatch s median": round(statistics.median(in_function), 2),
                    "Spark jobs/batch": round(jobs / len(batches), 1),
                    "query wall s": round(wall, 1),
                    "ratings/s": round(ratings / sum(seconds)),
                    "ratings/s median batch": round(ratings / len(batches) / statistics.median(seconds)),
                    "final held-out RMSE": None if final.heldout_rmse is None else round(final.heldout_rmse, 4),
                    "vs batch ALS": None if final.heldout_rmse is None
                    else f"{(final.heldout_rmse / batch_rmse - 1) * 100:+.1f} %",
                })
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
    print_table(rows, [column for column in rows[0] if column != "batch s each"])
    for row in rows:
        print(f"{row['files']} files, held-out eval {row['held-out eval']}: batch s each {row['batch s each']}")
    notes = (f"1 warm-up run on {WARM_UP_RUN[0]} files first, not reported (the JVM compiles Delta's code paths); "
             "batch s: a micro-batch's triggerExecution time (the query's progress reports), each in order in "
             "'batch s each'; foreachBatch s: its "
             "addBatch part (the batch function: toPandas of the batch, the NumPy update, the held-out RMSE, the Delta "
             "append of the changed rows with the batch's progress record); Spark jobs/batch: all jobs of the query / batches; ratings/s: all "
             "streamed ratings / sum of the batch times; ratings/s median batch: ratings per batch / median batch "
             f"time; vs batch ALS: against the batch model retrained on all training ratings ({batch_rmse:.4f})")
    print(notes)
    save_results("streaming", rows, notes)
