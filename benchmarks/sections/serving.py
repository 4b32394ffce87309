"""Section ``serving``: one (user, movie) prediction from ML17's offline factor tables.

Cached DataFrames (filter + first), a Delta table in one file and one range-partitioned by id
(data skipping), an RDD partitioned by id (``lookup``), a dict and NumPy arrays on the driver:
median and p95 latency per request. Results: ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import sys
import time

from benchmarks.common import ML17_RANK, SEED, Bench, ml17_offline_model, print_table, save_results, section

ML17_SERVING_REQUESTS = {"spark": 200, "driver": 2000}  # timed requests per way (after 10 warm-up ones)
ML17_SERVING_PARTITIONS = 16


def _by_id(key: int) -> int:
    """The partition function of the keyed RDDs: the id itself (modulo the partitions), so that
    ``lookup`` needs no string hashing (PySpark's default refuses to run without PYTHONHASHSEED)."""
    return int(key)


@section("serving", "One (user, movie) prediction from ML17's factor tables: DataFrame filter + collect, Delta "
         "table with and without id ranges per file, RDD partitioned by id + lookup, driver dict (ML17)",
         datasets=("ml-latest-small",))
def bench_serving(bench: Bench) -> None:
    import statistics
    import tempfile

    import numpy as np
    from pyspark import cloudpickle
    from pyspark.sql import functions as F

    from includes.lessons import streaming_sgd as sa
    from includes.paths import work_root
    # _by_id goes to the Python workers, which need not be able to import this module: send its
    # code (as when it was in the script itself), not its module's name
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark = bench.spark
    _, _, heldout_df, mu, users_df, items_df, _ = ml17_offline_model(spark)
    users_df, items_df = users_df.cache(), items_df.cache()
    n_users, n_items = users_df.count(), items_df.count()
    # requests: (user, movie) pairs of the held-out set, in a seeded random order
    pairs = heldout_df.select("userId", "movieId").orderBy("userId", "movieId").toPandas()
    pairs = pairs.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    print(f"factor tables: {n_users} users, {n_items} movies, rank {ML17_RANK}; requests: held-out pairs")

    def score(user, item):
        """mu + b_user + b_item + U . P from two looked-up (bias, factors) pairs (None: unknown, counts 0)."""
        value = mu
        if user is not None:
            value += user[0]
        if item is not None:
            value += item[0]
        if user is not None and item is not None:
            value += float(np.dot(user[1], item[1]))
        return value

    def first(df, key, value):
        row = df.filter(F.col(key) == int(value)).select("bias", "factors").first()
        return None if row is None else (row.bias, np.asarray(row.factors))

    def dataframe_way(users, items):
        return lambda u, m: score(first(users, "userId", u), first(items, "movieId", m))

    ways = {}
    # 1. the factors as cached DataFrames: a filter and a collect (first) per side
    ways["DataFrame (cached), filter + first()"] = ("spark", dataframe_way(users_df, items_df))
    with tempfile.TemporaryDirectory(prefix="serving-", dir=work_root()) as scratch:
        # 2. a Delta table in one file: every lookup reads the whole file
        # 3. a Delta table range-partitioned by id into 16 sorted files: Delta's per-file min/max
        #    statistics let the filter skip all files but one
        for label, layout in (("Delta table, one file", lambda df, key: df.coalesce(1)),
                              (f"Delta table, {ML17_SERVING_PARTITIONS} files by id range (data skipping)",
                               lambda df, key: df.repartitionByRange(ML17_SERVING_PARTITIONS, key)
                               .sortWithinPartitions(key))):
            tables = []
            for df, key, name in ((users_df, "userId", "users"), (items_df, "movieId", "items")):
                path = f"{scratch}/{len(ways)}-{name}"
                layout(df, key).write.format("delta").save(path)
                tables.append(spark.read.format("delta").load(path))
            ways[label] = ("spark", dataframe_way(*tables))
        # 4. 001's advice: an RDD keyed and partitioned by id; lookup(key) runs one task, on its partition
        keyed = [df.rdd.map(lambda row, key=key: (row[key], (row.bias, np.asarray(row.factors))))
                 .partitionBy(ML17_SERVING_PARTITIONS, _by_id).cache() for df, key in ((users_df, "userId"), (items_df, "movieId"))]
        for rdd in keyed:
            rdd.count()

        def rdd_way(u, m):
            user, item = keyed[0].lookup(int(u)), keyed[1].lookup(int(m))
            return score(user[0] if user else None, item[0] if item else None)

        ways[f"RDD partitioned by id ({ML17_SERVING_PARTITIONS}), lookup()"] = ("spark", rdd_way)
        # 5. a dict on the driver: id -> (bias, NumPy vector), filled once by a collect
        user_dict = {r.userId: (r.bias, np.asarray(r.factors)) for r in users_df.collect()}
        item_dict = {r.movieId: (r.bias, np.asarray(r.factors)) for r in items_df.collect()}
        ways["dict on the driver + NumPy dot"] = ("driver", lambda u, m: score(user_dict.get(u), item_dict.get(m)))
        # 6. ML17's Factors (NumPy arrays, rows found through a pandas index), as the streaming model holds them
        users_f, items_f = sa.factors_from_df(users_df, "userId", ML17_RANK), sa.factors_from_df(items_df, "movieId", ML17_RANK)

        def factors_way(u, m):
            return float(sa.predict_numpy(np.array([u]), np.array([m]), users_f, items_f, mu, -np.inf, np.inf)[0])

        ways["NumPy Factors on the driver (predict_numpy)"] = ("driver", factors_way)

        rows, reference = [], {}
        for label, (kind, predict) in ways.items():
            n = ML17_SERVING_REQUESTS[kind]
            requests = list(pairs.itertuples(index=False, name=None))[:n + 10]
            for u, m in requests[:10]:  # warm-up
                predict(u, m)
            latencies, answers = [], []
            for u, m in requests[10:]:
                started = time.perf_counter()
                answers.append(predict(u, m))
                latencies.append(time.perf_counter() - started)
            if not reference:
                reference = dict(zip(requests[10:], answers))
            same = max(abs(a - reference[p]) for p, a in zip(requests[10:], answers) if p in reference)
            latencies_ms = sorted(1000 * v for v in latencies)
            rows.append({"factors held as": label, "requests": n,
                         "median ms": round(statistics.median(latencies_ms), 3),
                         "p95 ms": round(latencies_ms[int(0.95 * (n - 1))], 3),
                         "requests/s": round(n / sum(latencies)),
                         "max |diff| vs first way": f"{same:.1e}"})
        for rdd in keyed:
            rdd.unpersist()
    print_table(rows, list(rows[0]))
    notes = ("one request = the user's and the movie's (bias, factors) looked up and mu + b_u + b_i + U . P computed "
             "in Python; latency per request with time.perf_counter; the same held-out pairs for every way, in a "
             f"seeded order; p95 = the 95th percentile. Spark ways: {ML17_SERVING_REQUESTS['spark']} requests, "
             f"driver ways: {ML17_SERVING_REQUESTS['driver']}.")
    print(notes)
    save_results("serving", rows, notes)
