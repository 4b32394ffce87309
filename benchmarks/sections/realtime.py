"""Section ``realtime``: ML18's hashtag query on the posts feed.

From the socket at ML18's rate, five times faster and as fast as possible (posts/s, micro-batch
duration, end-to-end latency from the server's send to the committed micro-batch), and from files
into Delta or memory.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import Bench, print_table, section

REALTIME_CONF = {"spark.sql.shuffle.partitions": "2", "spark.databricks.delta.snapshotPartitions": "2"}
REALTIME_LONG_FEED_SECONDS = 6000  # ten times ML18's event time (about 19,000 posts: the trends are in the first 600 s)


def _percentiles(values: list[float]) -> str:
    import numpy as np

    if not values:
        return "-"
    p50, p95 = np.percentile(values, [50, 95])
    return f"{p50:.2f} / {p95:.2f}"


def _ml18_counts(posts_df):
    from includes.lessons import posts

    return posts.windowed_counts(posts_df)  # ML18's query: hashtags per 20 s window sliding by 10 s


def _socket_run(spark, feed, rate: float, checkpoint: Path) -> dict:
    """ML18's live query on a socket feed served at ``rate`` posts/s: per-post end-to-end latency
    (sent by the server -> its micro-batch committed to the memory sink), micro-batch durations."""
    from datetime import datetime

    from includes.lessons import posts

    with posts.PostsServer(feed, rate=rate) as server:
        query = (_ml18_counts(posts.socket_stream(spark, *server.address)).writeStream.outputMode("complete")
                 .format("memory").queryName("bench_live").option("checkpointLocation", str(checkpoint)).start())
        progress, started = {}, time.perf_counter()
        try:
            while sum(p["numInputRows"] for p in progress.values()) < len(feed):
                time.sleep(0.05)
                progress.update({p["batchId"]: p for p in query.recentProgress})
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the socket query did not read the whole feed in 10 minutes")
            query.processAllAvailable()
            progress.update({p["batchId"]: p for p in query.recentProgress})
        finally:
            query.stop()
        elapsed = time.perf_counter() - started
        replay_start = server.replays_started[0]
    latencies, durations, first_post = [], [], 0
    for batch_id in sorted(progress):
        report = progress[batch_id]
        rows = report["numInputRows"]
        durations.append(report["durationMs"]["triggerExecution"] / 1000)
        if not rows:
            continue
        done = datetime.fromisoformat(report["timestamp"].replace("Z", "+00:00")).timestamp() + durations[-1]
        latencies.extend(done - (replay_start + i / rate) for i in range(first_post, first_post + rows))
        first_post += rows
    return {"posts": len(feed), "seconds": elapsed, "latencies": latencies, "durations": durations}


def _file_run(spark, feed, slice_seconds: float, work: Path, sink: str) -> dict:
    """ML18's checkpointed query over the feed written as files (one per micro-batch), into a
    Delta table (append, watermark 30 s) or the memory sink (complete)."""
    from includes.lessons import posts

    files = posts.write_files(feed, work / "files", slice_seconds=slice_seconds)
    counts = posts.windowed_counts(posts.file_stream(spark, work / "files"), watermark="30 seconds")
    writer = counts.writeStream.option("checkpointLocation", str(work / "checkpoint")).trigger(availableNow=True)
    started = time.perf_counter()
    if sink == "delta":
        query = writer.outputMode("append").format("delta").start(str(work / "table"))
    else:
        query = writer.outputMode("complete").format("memory").queryName("bench_files").start()
    query.awaitTermination()
    elapsed = time.perf_counter() - started
    durations = [p["durationMs"]["triggerExecution"] / 1000 for p in query.recentProgress if p["numInputRows"]]
    return {"posts": len(feed), "files": len(files), "seconds": elapsed, "durations": durations}


@section("realtime", "ML18's hashtag query on the posts feed: socket and file replay, throughput and latency")
def bench_realtime(bench: Bench) -> None:
    import tempfile

    from includes.lessons import posts
    from includes.paths import work_root

    spark = bench.spark
    saved = {key: spark.conf.get(key) for key in REALTIME_CONF}
    for key, value in REALTIME_CONF.items():
        spark.conf.set(key, value)
    corpus, long_feed = posts.generate(seed=42), posts.generate(seed=42, seconds=REALTIME_LONG_FEED_SECONDS)
    rows = []
    try:
        with tempfile.TemporaryDirectory(dir=work_root()) as tmp:
            tmp = Path(tmp)
            _socket_run(spark, corpus[:500], 5000.0, tmp / "warm-up")  # the first query of a session pays for JIT
            for name, feed, rate in [("socket, ML18's rate", corpus, 1000.0), ("socket, 5x faster", corpus, 5000.0),
                                     ("socket, long feed, as fast as possible", long_feed, 1e6)]:
                result = _socket_run(spark, feed, rate, tmp / f"socket-{len(rows)}")
                rows.append({"source -> sink": name + " -> memory (complete)", "posts": result["posts"],
                             "batches": len(result["durations"]), "seconds": f"{result['seconds']:.1f}",
                             "posts/s": f"{result['posts'] / result['seconds']:.0f}",
                             "batch s p50 / p95": _percentiles(result["durations"]),
                             # at full speed the send times are not known (the server sends as fast as it can)
                             "end-to-end s p50 / p95": _percentiles(result["latencies"]) if rate < 1e5 else "-"})
            for name, feed, slice_seconds, sink in [("files, 60 s slices (ML18)", corpus, 60, "delta"),
                                                    ("files, long feed, 600 s slices", long_feed, 600, "delta"),
                                                    ("files, long feed, 600 s slices", long_feed, 600, "memory")]:
                result = _file_run(spark, feed, slice_seconds, tmp / f"files-{len(rows)}", sink)
                rows.append({"source -> sink": f"{name} -> {sink}" + (" (append)" if sink == "delta" else " (complete)"),
                             "posts": result["posts"], "batches": len(result["durations"]),
                             "seconds": f"{result['seconds']:.1f}",
                             "posts/s": f"{result['posts'] / result['seconds']:.0f}",
                             "batch s p50 / p95": _percentiles(result["durations"]), "end-to-end s p50 / p95": "-"})
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
    print_table(rows, ["source -> sink", "posts", "batches", "seconds", "posts/s", "batch s p50 / p95",
                       "end-to-end s p50 / p95"])
    print("posts/s: posts / wall time of the whole query (start to last commit); batch s: duration of the micro-batches "
          "that read data; end-to-end: a post sent by the server -> its micro-batch committed (memory sink)")
