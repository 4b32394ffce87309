"""ML17's SGD update (includes/lessons/streaming_update.py, vectorised NumPy) against hand computations
and the rating-by-rating reference, and exactly-once streaming (includes/lessons/streaming_sgd.py).

The NumPy reference of the update is checked against a small example computed by hand. The
Spark parts run in a separate process (this file run as a script), because they need a session
with Delta Lake and a test process may already hold a plain one. A few thousand synthetic
ratings are replayed as files through Structured Streaming, and three runs must end with the
same model tables and the same per-batch metrics:

- (a) ``all``: every file in one availableNow run;
- (b) ``interrupted``: the query stops after the first file; when the rest has arrived it is
  restarted from its checkpoint and "crashes" in batch 1 after computing the update, before its
  commit; restarted, it runs batch 1 again and crashes right after its commit, before Spark
  records the batch in its checkpoint; restarted once more, it runs batch 1 a third time, which
  the function skips;
- (c) ``replayed``: on the checkpoint of (a), the commit file of the last batch is deleted (a crash
  after the model update but before the checkpoint commit), so Spark runs that fully applied
  batch again; then the batch function is called directly with it once more.

The model of (a) is also compared with the NumPy reference applied file by file, and a negative
control shows that applying a batch twice would move the model far beyond the tolerances.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from includes.lessons import streaming_sgd as sa  # noqa: E402
from includes.lessons import streaming_update  # noqa: E402
from includes.lessons.replay import ReplayFiles, replay_stream  # noqa: E402

# ------------------------------------------------------------------------------------------------
# The update math in NumPy, against a hand computation
# ------------------------------------------------------------------------------------------------
# mu = 3.0 after 10 ratings; gamma = 0.1, reg = 0.5, rank 2
HAND_USERS = {1: (0.2, [1.0, 0.0]), 2: (-0.1, [0.0, 1.0])}
HAND_ITEMS = {10: (0.5, [0.5, 0.5]), 20: (0.0, [1.0, -1.0])}
HAND_RATINGS = [(1, 10, 4.0), (1, 20, 3.0), (2, 10, 5.0)]
# predictions 4.2, 4.2, 3.9 -> errors -0.2, -1.2, 1.1. Every entity has at most 2 ratings, so
# eta = min(0.1, 1/n) = 0.1 everywhere.
# user 1: b 0.2 + 0.1 * ((-0.2 - 0.1) + (-1.2 - 0.1)) = 0.04
#         U [1, 0] + 0.1 * ((-0.2*[.5,.5] - .5*[1,0]) + (-1.2*[1,-1] - .5*[1,0])) = [0.77, 0.11]
# user 2: b -0.1 + 0.1 * (1.1 + 0.05) = 0.015;  U [0, 1] + 0.1 * (1.1*[.5,.5] - .5*[0,1]) = [0.055, 1.005]
# item 10: b 0.5 + 0.1 * ((-0.2 - 0.25) + (1.1 - 0.25)) = 0.54
#          P [.5,.5] + 0.1 * ((-0.2*[1,0] - .5*[.5,.5]) + (1.1*[0,1] - .5*[.5,.5])) = [0.43, 0.56]
# item 20: b 0 + 0.1 * (-1.2) = -0.12;  P [1,-1] + 0.1 * (-1.2*[1,0] - .5*[1,-1]) = [0.83, -0.95]
# mu: (3.0 * 10 + 12.0) / 13
HAND_EXPECTED_USERS = {1: (0.04, [0.77, 0.11]), 2: (0.015, [0.055, 1.005])}
HAND_EXPECTED_ITEMS = {10: (0.54, [0.43, 0.56]), 20: (-0.12, [0.83, -0.95])}
HAND_EXPECTED_MU = 42.0 / 13.0
HAND_BATCH_RMSE = math.sqrt((0.2 ** 2 + 1.2 ** 2 + 1.1 ** 2) / 3)


def assert_tables_close(actual: dict, expected: dict, tol: float = 1e-12):
    assert set(actual) == set(expected)
    for key, (bias, factors) in expected.items():
        assert actual[key][0] == pytest.approx(bias, abs=tol), f"bias of {key}"
        assert np.asarray(actual[key][1]) == pytest.approx(np.asarray(factors), abs=tol), f"factors of {key}"


def test_numpy_update_matches_the_hand_computation():
    mu, seen, users, items = sa.sgd_update_numpy(3.0, 10, HAND_USERS, HAND_ITEMS, HAND_RATINGS, gamma=0.1, reg=0.5)
    assert mu == pytest.approx(HAND_EXPECTED_MU) and seen == 13
    assert_tables_close(users, HAND_EXPECTED_USERS)
    assert_tables_close(items, HAND_EXPECTED_ITEMS)


def test_step_is_capped_at_one_over_the_ratings_in_the_batch():
    # gamma = 1: user 1 and item 10 have 2 ratings -> eta 0.5; user 2 and item 20 have 1 -> eta 1
    _, _, users, items = sa.sgd_update_numpy(3.0, 10, HAND_USERS, HAND_ITEMS, HAND_RATINGS, gamma=1.0, reg=0.5)
    assert users[1][0] == pytest.approx(0.2 + 0.5 * (-1.6))
    assert users[2][0] == pytest.approx(-0.1 + 1.0 * 1.15)
    assert items[10][1] == pytest.approx(np.array([0.5, 0.5]) + 0.5 * np.array([-0.7, 0.6]))
    assert items[20][0] == pytest.approx(-1.2)


def test_entities_outside_the_batch_and_an_empty_batch_change_nothing():
    users = {**HAND_USERS, 3: (0.7, [0.3, 0.3])}
    mu, seen, new_users, _ = sa.sgd_update_numpy(3.0, 10, users, HAND_ITEMS, HAND_RATINGS, 0.1, 0.5)
    assert new_users[3][0] == 0.7 and list(new_users[3][1]) == [0.3, 0.3]
    mu, seen, same_users, same_items = sa.sgd_update_numpy(3.0, 10, users, HAND_ITEMS, [], 0.1, 0.5)
    assert (mu, seen) == (3.0, 10)
    assert_tables_close(same_users, users, 0.0)
    assert_tables_close(same_items, HAND_ITEMS, 0.0)


def test_one_rating_is_one_plain_sgd_step_of_the_source_formulas():
    # b_x <- b_x + gamma (e - reg b_x), U_x <- U_x + gamma (e P_y - reg U_x), with the old values on the right
    gamma, reg = 0.05, 0.1
    u, p = np.array([0.3, -0.2, 0.1]), np.array([0.4, 0.5, -0.6])
    e = 4.5 - (3.5 + 0.1 - 0.2 + u @ p)
    _, _, users, items = sa.sgd_update_numpy(3.5, 100, {7: (0.1, u)}, {9: (-0.2, p)}, [(7, 9, 4.5)], gamma, reg)
    assert users[7][0] == pytest.approx(0.1 + gamma * (e - reg * 0.1))
    assert users[7][1] == pytest.approx(u + gamma * (e * p - reg * u))
    assert items[9][0] == pytest.approx(-0.2 + gamma * (e - reg * -0.2))
    assert items[9][1] == pytest.approx(p + gamma * (e * u - reg * p))


def test_params_are_validated():
    with pytest.raises(ValueError):
        sa.SGDParams(rank=0, gamma=0.1, reg=0.1)
    with pytest.raises(ValueError):
        sa.SGDParams(rank=2, gamma=0.0, reg=0.1)
    with pytest.raises(ValueError):
        sa.SGDParams(rank=2, gamma=0.1, reg=-1.0)
    with pytest.raises(ValueError):
        sa.SGDParams(rank=2, gamma=0.1, reg=0.1, epochs=0)


def factors(table: dict, rank: int, seen: dict | None = None) -> streaming_update.Factors:
    seen = seen or {}
    keys = sorted(table)
    return streaming_update.Factors(np.array(keys, dtype=np.int64), np.array([float(table[k][0]) for k in keys]),
                                    np.array([table[k][1] for k in keys], dtype=float).reshape(len(keys), rank),
                                    np.array([seen.get(k, 0) for k in keys], dtype=np.int64))


def as_dict(side: streaming_update.Factors) -> dict:
    return {int(k): (float(b), f.tolist()) for k, b, f in zip(side.ids, side.bias, side.factors)}


def ratings_pdf(rows, first_ts: int = 100):
    import pandas as pd

    return pd.DataFrame([(u, i, r, first_ts + n) for n, (u, i, r) in enumerate(rows)],
                        columns=["userId", "movieId", "rating", "timestamp"])


def test_lesson_update_matches_the_hand_computation():
    update = streaming_update.sgd_update(ratings_pdf(HAND_RATINGS), factors(HAND_USERS, 2), factors(HAND_ITEMS, 2),
                                         3.0, sa.SGDParams(rank=2, gamma=0.1, reg=0.5))
    assert_tables_close(as_dict(update.users), HAND_EXPECTED_USERS)
    assert_tables_close(as_dict(update.items), HAND_EXPECTED_ITEMS)
    stats = update.stats
    assert (stats["ratings"], stats["users"], stats["items"], stats["new_users"], stats["new_items"]) == (3, 2, 2, 0, 0)
    assert stats["batch_rmse"] == pytest.approx(HAND_BATCH_RMSE)
    assert stats["rating_sum"] == 12.0
    assert (stats["first_timestamp"], stats["last_timestamp"]) == (100, 102)


def test_lesson_update_with_several_epochs_and_new_entities_matches_the_reference():
    """Three passes over a batch with repeated users and items, some of them new, with ratings
    seen before and kappa, against the rating-by-rating reference; an empty batch changes nothing."""
    rng = np.random.default_rng(3)
    users = {u: (float(rng.normal(0, 0.3)), rng.normal(0, 0.3, 4).tolist()) for u in range(1, 9)}
    items = {i: (float(rng.normal(0, 0.3)), rng.normal(0, 0.3, 4).tolist()) for i in range(1, 13)}
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(1, 12, 80), rng.integers(1, 16, 80))}
    rows = [(u, i, float(rng.integers(1, 11)) / 2) for u, i in sorted(pairs)]
    user_seen, item_seen = {u: 3 * u for u in users}, {i: i % 4 for i in items}
    params = sa.SGDParams(rank=4, gamma=0.2, reg=0.1, kappa=2.0, epochs=3, init_scale=0.1, seed=7)
    update = streaming_update.sgd_update(ratings_pdf(rows), factors(users, 4, user_seen), factors(items, 4, item_seen),
                                         3.4, params)
    assert (update.stats["new_users"], update.stats["new_items"]) == (
        len({u for u, _, _ in rows} - set(users)), len({i for _, i, _ in rows} - set(items)))
    new_users = as_dict(update.users)
    full_users, full_items = dict(users), dict(items)
    for key in set(new_users) - set(users):
        start = streaming_update.init_factors(np.array([key]), 4, 0.1, 7, "user")[0]
        full_users[key] = (0.0, start)
    for key in set(as_dict(update.items)) - set(items):
        full_items[key] = (0.0, streaming_update.init_factors(np.array([key]), 4, 0.1, 7, "item")[0])
    seen = {**{("user", k): v for k, v in user_seen.items()}, **{("item", k): v for k, v in item_seen.items()}}
    _, _, ref_users, ref_items = sa.sgd_update_numpy(3.4, 100, full_users, full_items, rows, 0.2, 0.1, epochs=3,
                                                     kappa=2.0, seen=seen)
    assert_tables_close(new_users, ref_users, 1e-12)
    assert_tables_close(as_dict(update.items), ref_items, 1e-12)
    # the counts went up by the batch's ratings
    assert dict(zip(update.users.ids.tolist(), update.users.seen.tolist())) == {
        k: v for (side, k), v in seen.items() if side == "user"}
    one_pass = streaming_update.sgd_update(ratings_pdf(rows), factors(users, 4, user_seen), factors(items, 4, item_seen),
                                           3.4, sa.SGDParams(rank=4, gamma=0.2, reg=0.1, kappa=2.0, epochs=1,
                                                        init_scale=0.1, seed=7))
    assert one_pass.stats["batch_rmse"] == update.stats["batch_rmse"]  # measured before the first pass
    assert max(abs(one_pass.users.bias - update.users.bias)) > 1e-3  # the extra passes did move the model
    empty = streaming_update.sgd_update(ratings_pdf([]), factors(users, 4), factors(items, 4), 3.4, params)
    assert as_dict(empty.users) == as_dict(factors(users, 4)) and empty.stats["ratings"] == 0


def initial_factors() -> dict:
    """The start every new entity of the scenarios gets: {salt: {id: factors}} for ids 1..199."""
    ids = np.arange(1, 200)
    return {salt: dict(zip(ids.tolist(), streaming_update.init_factors(ids, RANK, PARAMS["init_scale"],
                                                                       PARAMS["seed"], salt).tolist()))
            for salt in ("user", "item")}


# ------------------------------------------------------------------------------------------------
# Synthetic data for the streaming scenarios
# ------------------------------------------------------------------------------------------------
RANK = 3
PARAMS = dict(rank=RANK, gamma=0.05, reg=0.1, kappa=5.0, epochs=2, init_scale=0.1, seed=7)
N_FILES = 2
STREAM_RATINGS = 2400


def synthetic_data(seed: int = 11):
    """Offline tables for users 1..60 and items 1..120, a stream of 2400 ratings that also
    brings users 61..80 and items 121..160, and 300 held-out ratings."""
    rng = np.random.default_rng(seed)
    true_u, true_i = rng.normal(0, 0.6, (81, RANK)), rng.normal(0, 0.6, (161, RANK))
    users = {u: (float(rng.normal(0, 0.3)), rng.normal(0, 0.3, RANK).round(6).tolist()) for u in range(1, 61)}
    items = {i: (float(rng.normal(0, 0.3)), rng.normal(0, 0.3, RANK).round(6).tolist()) for i in range(1, 121)}

    def ratings(n, first_ts):
        us = rng.integers(1, 81, n)
        it = rng.integers(1, 161, n)
        raw = 3.5 + (true_u[us] * true_i[it]).sum(axis=1) + rng.normal(0, 0.5, n)
        stars = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
        return [(int(u), int(i), float(r), first_ts + k) for k, (u, i, r) in enumerate(zip(us, it, stars))]

    stream = ratings(STREAM_RATINGS, 1_000_000)
    # one rating per (user, item) pair, like MovieLens
    seen, unique = set(), []
    for row in stream:
        if (row[0], row[1]) not in seen:
            seen.add((row[0], row[1]))
            unique.append(row)
    heldout = [r[:3] for r in ratings(300, 0)]
    return {"users": users, "items": items, "stream": unique, "heldout": heldout, "mu": 3.5, "seen": 5000}


# ------------------------------------------------------------------------------------------------
# The scenario runner (executed in a subprocess: python tests/test_streaming_sgd.py OUT_DIR)
# ------------------------------------------------------------------------------------------------


def _run_scenarios(out_dir: Path) -> None:  # pragma: no cover - runs in the subprocess

    from includes.runtime.spark import start_session

    os.environ["COURSE_SHUFFLE_PARTITIONS"] = "1"
    spark = start_session("test-streaming-sgd", "local[2]", out_dir, out_dir / "spark.log")
    spark.sparkContext.setLogLevel("ERROR")

    data = synthetic_data()
    params = sa.SGDParams(**PARAMS)
    results: dict = {}

    def table_df(table, key, ddl):
        return spark.createDataFrame([(k, float(b), [float(x) for x in f]) for k, (b, f) in table.items()], ddl)

    stream_df = spark.createDataFrame(data["stream"], sa.RATINGS_DDL)
    replay = ReplayFiles(stream_df, N_FILES, order_by=sa.REPLAY_ORDER, prefix="ratings")
    results["files"] = [chunk[["userId", "movieId", "rating"]].values.tolist() for chunk in replay.chunks]
    users_df = table_df(data["users"], "userId", sa.USERS_DDL)
    items_df = table_df(data["items"], "movieId", sa.ITEMS_DDL)
    heldout_df = spark.createDataFrame(data["heldout"], "userId INT, movieId INT, rating DOUBLE")

    # the offline model is written once and copied for every scenario (Delta tables are folders)
    template = out_dir / "template"
    sa.StreamingSGD(template, params).initialize(users_df, items_df, heldout_df, data["mu"], data["seen"])

    def fresh(name, on_stage=None):
        root = out_dir / name
        shutil.copytree(template, root / "model")
        return root, sa.StreamingSGD(root / "model", params, app_id=f"test-{name}", on_stage=on_stage)

    def run(root, model):
        query = (replay_stream(spark, root / "incoming", sa.RATINGS_DDL).writeStream.foreachBatch(model)
                 .option("checkpointLocation", str(root / "checkpoint")).trigger(availableNow=True).start())
        try:
            query.awaitTermination()
            return None
        except Exception as error:  # the simulated crash
            return str(error)

    def snapshot_rows(model):  # {batch_id: rows it appended to the model table}
        return {int(k): int(v) for k, v in spark.read.format("delta").load(model.path("model"))
                .groupBy("batch_id").count().toPandas().values}

    def snapshot(root, model):
        users, items, mu = model.tables_after(spark)
        progress = model.progress(spark).toPandas()
        history = spark.sql(f"DESCRIBE HISTORY delta.`{model.path('model')}`").select("version", "operation").toPandas()
        return {
            "users": {r.userId: (r.bias, r.factors) for r in users.collect()},
            "items": {r.movieId: (r.bias, r.factors) for r in items.collect()},
            "mu": mu,
            "progress": json.loads(progress.to_json(orient="records")),
            "model_history": history.sort_values("version").operation.tolist(),
            "rows_per_batch": snapshot_rows(model),
            "checkpoint_commits": sorted(int(p.name) for p in (root / "checkpoint" / "commits").iterdir()
                                         if p.name.isdigit()),
        }

    def scenario_all_then_replayed():
        # (a) every file in one go
        root, model = fresh("all")
        replay.write(root / "incoming")
        results["all_error"] = run(root, model)
        results["all"] = snapshot(root, model)
        # (c) replays of a batch that was fully applied, on the checkpoint of (a): Spark re-runs the
        # last batch when its commit file is missing; then the batch function gets it once more
        model = sa.StreamingSGD(root / "model", params, app_id="test-all")
        last = N_FILES - 1
        for name in (str(last), f".{last}.crc"):
            (root / "checkpoint" / "commits" / name).unlink()
        results["replay_error"] = run(root, model)
        batch = spark.read.csv(str(root / "incoming" / replay.file_name(last)), schema=sa.RATINGS_DDL, header=True)
        model(batch, last)
        results["replayed"] = snapshot(root, model)
        # (d) a new model started on the same folder (same application id), streamed again with a
        # new checkpoint: every batch must be written again, not dropped as already seen
        model = sa.StreamingSGD(root / "model", params, app_id="test-all")
        model.initialize(users_df, items_df, heldout_df, data["mu"], data["seen"])
        shutil.rmtree(root / "checkpoint")
        results["reinitialized_error"] = run(root, model)
        results["reinitialized"] = snapshot(root, model)

    def scenario_interrupted():
        # (b) stopped after the first file; restarted from the checkpoint when the rest has arrived,
        # with a crash in batch 1 before its commit; restarted, with a crash in batch 1 right after
        # its commit; restarted again
        def crash_before_commit(batch_id, stage):
            if batch_id == 1 and stage == "computed":
                raise RuntimeError("simulated crash before the commit")

        def crash_after_commit(batch_id, stage):
            if batch_id == 1 and stage == "committed":
                raise RuntimeError("simulated crash after the commit")

        root, model = fresh("interrupted")
        replay.write(root / "incoming", [0])
        results["stopped_error"] = run(root, model)
        results["stopped_batches"] = model.progress(spark).toPandas().batch_id.tolist()
        replay.write(root / "incoming", range(1, N_FILES))
        results["crash_error"] = run(root, sa.StreamingSGD(root / "model", params, app_id="test-interrupted",
                                                           on_stage=crash_before_commit))
        results["crashed_batches"] = model.progress(spark).toPandas().batch_id.tolist()
        results["crash_after_error"] = run(root, sa.StreamingSGD(root / "model", params, app_id="test-interrupted",
                                                                 on_stage=crash_after_commit))
        results["crashed_after_batches"] = model.progress(spark).toPandas().batch_id.tolist()
        results["crashed_after_commits"] = sorted(int(p.name) for p in (root / "checkpoint" / "commits").iterdir()
                                                  if p.name.isdigit())
        results["resumed_error"] = run(root, model)
        results["interrupted"] = snapshot(root, model)

    # the two independent scenarios run side by side (separate folders, queries and models) to
    # overlap their waiting; an exception in the thread is re-raised here
    failures = []

    def in_thread():
        try:
            scenario_all_then_replayed()
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    thread = threading.Thread(target=in_thread)
    thread.start()
    scenario_interrupted()
    # (e) a batch of three ratings handed to the function directly
    root, model = fresh("small")
    model(spark.createDataFrame([(1, 5, 4.0, 1), (2, 5, 3.0, 2), (200, 5, 5.0, 3)], sa.RATINGS_DDL), 0)
    results["small_rows_per_batch"] = snapshot_rows(model)
    thread.join()
    if failures:
        raise failures[0]

    (out_dir / "results.json").write_text(json.dumps(results))
    spark.stop()


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("streaming_als")
    proc = subprocess.run([sys.executable, __file__, str(out_dir)], capture_output=True, text=True, timeout=900,
                          cwd=str(ROOT))
    results_path = out_dir / "results.json"
    assert proc.returncode == 0 and results_path.exists(), (
        f"scenario runner failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    results = json.loads(results_path.read_text())
    shutil.rmtree(out_dir, ignore_errors=True)

    def keyed(table):
        return {int(key): (bias, factors) for key, (bias, factors) in table.items()}

    for name in ("all", "interrupted", "replayed", "reinitialized"):
        results[name]["users"] = keyed(results[name]["users"])
        results[name]["items"] = keyed(results[name]["items"])
    return results


def test_new_entities_start_small_seeded_and_distinct():
    init = initial_factors()
    users = np.array([init["user"][k] for k in sorted(init["user"])])
    assert users.shape == (199, RANK)
    assert np.abs(users).max() <= PARAMS["init_scale"] + 1e-12
    assert np.abs(users).mean() > PARAMS["init_scale"] / 4  # not all (near) zero
    assert len({tuple(row) for row in users}) == 199  # every id its own start
    assert init["user"][5] != init["item"][5]  # users and items draw different numbers
    assert initial_factors()["user"] == init["user"]  # deterministic
    # an id's start does not depend on the other ids of its batch
    alone = streaming_update.init_factors(np.array([5]), RANK, PARAMS["init_scale"], PARAMS["seed"], "user")
    assert alone[0].tolist() == init["user"][5]


def numpy_reference(scenarios, counts: dict | None = None):
    """The offline tables updated file by file with sgd_update_numpy (``counts``, if given, ends
    with the ratings seen per entity)."""
    data = synthetic_data()
    users = {k: (b, np.array(f)) for k, (b, f) in data["users"].items()}
    items = {k: (b, np.array(f)) for k, (b, f) in data["items"].items()}
    mu, seen = data["mu"], data["seen"]
    counts = {} if counts is None else counts  # ratings seen per entity (the offline tables carry none)
    init = initial_factors()
    for rows in scenarios["files"]:
        ratings = [(int(u), int(i), float(r)) for u, i, r in rows]
        for u, i, _ in ratings:
            users.setdefault(u, (0.0, np.array(init["user"][u])))
            items.setdefault(i, (0.0, np.array(init["item"][i])))
        mu, seen, users, items = sa.sgd_update_numpy(mu, seen, users, items, ratings, PARAMS["gamma"], PARAMS["reg"],
                                                     PARAMS["epochs"], PARAMS["kappa"], counts)
    return mu, seen, users, items


def test_streamed_model_equals_the_numpy_reference(scenarios):
    assert scenarios["all_error"] is None
    mu, seen, users, items = numpy_reference(scenarios)
    final = scenarios["all"]
    assert final["mu"] == pytest.approx(mu, abs=1e-12)
    assert final["progress"][-1]["ratings_seen"] == seen
    assert_tables_close(final["users"], users, 1e-9)
    assert_tables_close(final["items"], items, 1e-9)
    # the stream really brought new users and items, and changed the model
    assert len(final["users"]) > len(synthetic_data()["users"])
    assert len(final["items"]) > len(synthetic_data()["items"])


def test_every_batch_is_recorded_once_with_its_own_table_versions(scenarios):
    progress = scenarios["all"]["progress"]
    assert [row["batch_id"] for row in progress] == [sa.OFFLINE_BATCH_ID, *range(N_FILES)]
    assert sum(row["ratings"] for row in progress) == len(synthetic_data()["stream"])
    assert [row["model_version"] for row in progress] == list(range(N_FILES + 1))
    assert scenarios["all"]["model_history"] == ["WRITE"] * (N_FILES + 1)
    # the offline model is every user and item; a batch appends only the users and items it rated
    data = synthetic_data()
    assert scenarios["all"]["rows_per_batch"] == {
        str(sa.OFFLINE_BATCH_ID): len(data["users"]) + len(data["items"]),
        **{str(batch): len({u for u, _, _ in rows}) + len({i for _, i, _ in rows})
           for batch, rows in enumerate(scenarios["files"])}}
    # a batch of three ratings (two known users, one new; one movie) appends four rows, not the model
    assert scenarios["small_rows_per_batch"] == {str(sa.OFFLINE_BATCH_ID): len(data["users"]) + len(data["items"]),
                                                 "0": 4}
    # on this synthetic data the held-out error falls as the stream teaches the model the new users
    assert progress[-1]["heldout_rmse"] < progress[0]["heldout_rmse"]


MODEL_COLUMNS = ("batch_id", "ratings", "users", "items", "new_users", "new_items", "first_timestamp",
                 "last_timestamp", "mu", "ratings_seen", "batch_rmse", "heldout_rmse")


def assert_same_model(run: dict, reference: dict):
    assert_tables_close(run["users"], reference["users"], 1e-12)
    assert_tables_close(run["items"], reference["items"], 1e-12)
    assert run["mu"] == pytest.approx(reference["mu"], abs=1e-12)
    assert len(run["progress"]) == len(reference["progress"])
    for got, want in zip(run["progress"], reference["progress"]):
        for column in MODEL_COLUMNS:
            if isinstance(want[column], float):
                assert got[column] == pytest.approx(want[column], abs=1e-12), (column, want["batch_id"])
            else:
                assert got[column] == want[column], (column, want["batch_id"])


def test_a_run_stopped_part_way_and_crashed_mid_batch_ends_like_the_run_in_one_go(scenarios):
    assert scenarios["stopped_error"] is None
    assert scenarios["stopped_batches"] == [sa.OFFLINE_BATCH_ID, 0]
    assert "simulated crash before the commit" in scenarios["crash_error"]
    assert scenarios["crashed_batches"] == [sa.OFFLINE_BATCH_ID, 0]  # batch 1 left nothing behind
    assert "simulated crash after the commit" in scenarios["crash_after_error"]
    assert scenarios["crashed_after_batches"] == [sa.OFFLINE_BATCH_ID, 0, 1]  # batch 1 is in the table...
    assert scenarios["crashed_after_commits"] == [0]  # ...but not in Spark's checkpoint: it runs again
    interrupted = scenarios["interrupted"]
    # and its third run was skipped: one commit per batch, as many versions as the run in one go
    assert interrupted["model_history"] == ["WRITE"] * (N_FILES + 1)
    assert [row["model_version"] for row in interrupted["progress"]] == list(range(N_FILES + 1))
    assert scenarios["resumed_error"] is None
    assert interrupted["checkpoint_commits"] == list(range(N_FILES))
    assert_same_model(interrupted, scenarios["all"])


def test_replaying_an_applied_batch_changes_nothing(scenarios):
    assert scenarios["replay_error"] is None
    replayed = scenarios["replayed"]
    assert replayed["checkpoint_commits"] == list(range(N_FILES))  # Spark ran the batch again...
    assert replayed["model_history"] == scenarios["all"]["model_history"]  # ...but nothing was written
    assert [row["model_version"] for row in replayed["progress"]] == list(range(N_FILES + 1))
    assert_same_model(replayed, scenarios["all"])


def test_a_new_model_on_an_old_folder_applies_every_batch(scenarios):
    """The old table's records must not make the new stream skip its batches as already applied."""
    assert scenarios["reinitialized_error"] is None
    again = scenarios["reinitialized"]
    assert again["model_history"] == scenarios["all"]["model_history"]
    assert [row["model_version"] for row in again["progress"]] == list(range(N_FILES + 1))
    assert_same_model(again, scenarios["all"])


def test_the_comparison_would_catch_a_batch_applied_twice(scenarios):
    """Negative control: applying the last file once more moves the model far beyond the tolerance."""
    counts = {}
    mu, seen, users, items = numpy_reference(scenarios, counts)
    ratings = [(int(u), int(i), float(r)) for u, i, r in scenarios["files"][-1]]
    _, _, twice_users, _ = sa.sgd_update_numpy(mu, seen, users, items, ratings, PARAMS["gamma"], PARAMS["reg"],
                                               PARAMS["epochs"], PARAMS["kappa"], counts)
    moved = max(abs(twice_users[k][0] - users[k][0]) for k in users)
    assert moved > 1e-3


if __name__ == "__main__":
    _run_scenarios(Path(sys.argv[1]))
