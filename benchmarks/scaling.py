"""When Spark pays off: the course's workloads at growing sizes, with and without Spark (issue 24).

Run from the course folder with the course's interpreter, on an otherwise idle machine:

    .venv/bin/python benchmarks/scaling.py --plan        # the full run's sizes, memory walls, time
    .venv/bin/python benchmarks/scaling.py --quick       # smoke test: tiny sizes, a few minutes
    .venv/bin/python benchmarks/scaling.py               # the full run (about an hour)
    .venv/bin/python benchmarks/scaling.py --workloads als --backends single local --sizes 1e5 1e6

Workloads (each on data generated on disk before any timing, cached under ``work/scaling/data``):

- ``pipeline``: the Airbnb price model. Listings resampled from the course's SF listings (the
  rows drawn with replacement, noise on the numeric columns, the missing values put back where
  the ``*_na`` flags say the cleaning imputed them), so columns and types are the course's. One
  hot encoding, median imputation and a linear regression on price: scikit-learn's
  ``ColumnTransformer`` + ``LinearRegression`` on a ``pd.read_parquet`` frame, against Spark ML's
  ``StringIndexer``/``OneHotEncoder``/``Imputer``/``VectorAssembler``/``LinearRegression``.
- ``als``: matrix factorisation on MovieLens-shaped ratings (users and items growing with the
  number of ratings as across the MovieLens family; the rating histogram and the long tails of
  item popularity and user activity from ML-100K): ML16L's NumPy ALS
  (``includes.lessons.jester_als.als_numpy``, dense ratings and mask) against Spark ALS, same rank,
  iterations and regularisation.
- ``scoring``: batch scoring with ML12's scikit-learn forest (fitted once on the SF listings):
  ``pd.read_parquet`` + ``predict`` + ``to_parquet`` in one process, against an iterator pandas UDF
  that reads and writes Parquet with Spark.

Backends: ``single`` (pandas / scikit-learn / NumPy in one Python process, under an address-space
limit below the machine's RAM so it fails with ``MemoryError`` rather than waking the OOM killer),
``local`` (Spark ``local[*]``, the course's session) and ``cluster`` (a standalone master and worker
on this machine, as ``make cluster`` starts).

Each point runs in a fresh subprocess. The parent samples the resident memory of its whole process
tree every 0.1 s (the JVM and Spark's Python workers included; for ``cluster`` also the worker's
tree: its executors and their Python workers), enforces a time limit, and records the outcome: ``ok``,
``MemoryError``, ``JVM OutOfMemoryError``, ``killed (SIG...)``, ``time limit`` or ``error``. Once a
backend fails at a size, its larger sizes are recorded as ``skipped after failure`` without running.
A point shorter than 20 s runs three times (the plot uses the median). ``seconds`` is the workload
from reading its input to the fitted model (or the written predictions); the Spark session's
start-up is recorded apart (``startup_seconds``). Peak memory is the sum of the processes' RSS
(pages shared between processes count once per process, so it errs high).

Results: one JSON file (``benchmarks/results/scaling.json``; quick mode writes
``scaling-quick.json``, a smoke test's output, not a measurement) with the machine's description
and one record per (workload, backend, size, run). ``benchmarks/scaling_plot.py`` draws the curves
from that file alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
if str(COURSE_ROOT) not in sys.path:
    sys.path.insert(0, str(COURSE_ROOT))

FORMAT = "course-scaling/1"
SEED = 2424
GENERATOR_VERSION = 1  # bump when a generator changes: cached data of another version is rebuilt

WORKLOADS = ("pipeline", "als", "scoring")
BACKENDS = ("single", "local", "cluster")
SPARK_BACKENDS = ("local", "cluster")
# The full run's sizes per backend, within the hour's budget: the single process in half-decades up
# to its failure; Spark locally in decades to 3 x 10^7, past the single process's walls for the
# pipeline and ALS (10^8 would add about 38 min on paper); the cluster, which runs on the same two
# cores with more processes in between, at 10^5 and 10^6 (its fixed cost against local mode).
FULL_SIZES = {
    "single": (100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000, 100_000_000),
    "local": (100_000, 1_000_000, 10_000_000, 30_000_000),
    "cluster": (100_000, 1_000_000),
}
QUICK_SIZES = (10_000, 30_000)

OK = "ok"
MEMORY_ERROR = "MemoryError"
JVM_OOM = "JVM OutOfMemoryError"
TIME_LIMIT = "time limit"
ERROR = "error"
SKIPPED = "skipped after failure"

REPEAT_BELOW_SECONDS = 20.0  # a point faster than this runs REPEATS times (median)
REPEATS = 3
SAMPLE_INTERVAL = 0.1

# ALS settings, the same for both sides (ML16L's rank and regularisation; Spark's default 10 iterations)
ALS_SETTINGS = {"rank": 10, "iterations": 10, "reg": 0.1}
# ML12's forest (benchmarks/sections/deployment.py ML12_FOREST), fitted once on the SF listings
FOREST = {"n_estimators": 50, "max_depth": 10, "min_samples_leaf": 5, "random_state": 42, "n_jobs": 1}

# The MovieLens family (GroupLens' READMEs): ratings, users, items. The users and items of the
# generated ratings grow with the number of ratings as across these five (movielens_shape).
MOVIELENS_FAMILY = (
    ("ml-100k", 100_000, 943, 1_682),
    ("ml-1m", 1_000_209, 6_040, 3_706),
    ("ml-10m", 10_000_054, 69_878, 10_677),
    ("ml-20m", 20_000_263, 138_493, 26_744),
    ("ml-25m", 25_000_095, 162_541, 59_047),
)

LISTING_CATEGORICAL = ("host_is_superhost", "cancellation_policy", "instant_bookable", "neighbourhood_cleansed",
                       "property_type", "room_type", "bed_type")
LABEL = "price"


def work_dir() -> Path:
    from includes.paths import work_root

    return work_root() / "scaling"


# ------------------------------------------------------------------------------------------------
# Data generators (chunked, memory-bounded, cached)
# ------------------------------------------------------------------------------------------------


def _ready(folder: Path, meta: dict) -> bool:
    try:
        return json.loads((folder / "_GENERATED.json").read_text()) == meta
    except (OSError, ValueError):
        return False


def _build(folder: Path, meta: dict, write_chunks) -> Path:
    """Write the dataset into a staging folder chunk by chunk, then rename it into place."""
    import shutil

    if _ready(folder, meta):
        return folder
    staging = folder.with_name(folder.name + f".staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_chunks(staging)
    (staging / "_GENERATED.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _chunks(n: int, chunk_rows: int):
    start = 0
    while start < n:
        yield start, min(chunk_rows, n - start)
        start += chunk_rows


def listings_base():
    """The course's clean SF listings (7146 x 34) as a pandas DataFrame."""
    import pandas as pd

    from includes.data.airbnb import sf_clean_parquet

    return pd.read_parquet(sf_clean_parquet())


def listing_chunk(base, rows: int, rng):
    """``rows`` listings resampled from ``base`` as an Arrow table with ``base``'s columns and types:
    rows drawn with replacement; every numeric column but the 0/1 ``*_na`` flags gets Gaussian
    noise (a tenth of its standard deviation), clipped to the column's range and rounded to its
    step (whole numbers stay whole); the values the cleaning imputed (flag 1) are missing again,
    for the imputer to fill."""
    import numpy as np
    import pyarrow as pa

    index = rng.integers(0, len(base), size=rows)
    arrays = {}
    for name in base.columns:
        column = base[name].to_numpy()
        if name in LISTING_CATEGORICAL:
            categories, codes = np.unique(column.astype(str), return_inverse=True)
            arrays[name] = pa.array(categories).take(pa.array(codes[index]))
            continue
        values = column[index]
        if not name.endswith("_na"):
            values = values + rng.standard_normal(rows) * (0.1 * column.std())
            np.clip(values, column.min(), column.max(), out=values)
            if np.all(column == np.round(column)):
                np.round(values, out=values)
            elif np.all(column * 2 == np.round(column * 2)):
                values = np.round(values * 2) / 2
            flag = f"{name}_na"
            if flag in base.columns:
                values[base[flag].to_numpy()[index] == 1] = np.nan
        arrays[name] = pa.array(values)
    return pa.table(arrays)


def generate_listings(n: int, root: Path | None = None, chunk_rows: int = 1_000_000, seed: int = SEED) -> Path:
    """A Parquet folder of ``n`` generated listings (``part-NNNNN.parquet`` of ``chunk_rows`` rows)."""
    import numpy as np
    import pyarrow.parquet as pq

    folder = Path(root or work_dir() / "data") / f"listings-{n}"
    meta = {"kind": "listings", "rows": n, "seed": seed, "version": GENERATOR_VERSION, "chunk_rows": chunk_rows}

    def write(staging: Path) -> None:
        base = listings_base()
        rng = np.random.default_rng([seed, n])
        for part, (_, rows) in enumerate(_chunks(n, chunk_rows)):
            pq.write_table(listing_chunk(base, rows, rng), staging / f"part-{part:05d}.parquet")

    return _build(folder, meta, write)


def movielens_shape(n: int) -> tuple[int, int]:
    """(users, items) for ``n`` ratings, as across the MovieLens family: interpolated in log-log
    between its members (so ML-100K's size gives ML-100K's shape); below ML-100K extrapolated with
    the 100K -> 1M slopes, above ML-25M with the least-squares slopes over the whole family."""
    import numpy as np

    x = np.log([row[1] for row in MOVIELENS_FAMILY])
    shape = []
    for column in (2, 3):
        y = np.log([row[column] for row in MOVIELENS_FAMILY])
        t = math.log(n)
        if t < x[0]:
            value = y[0] + (y[1] - y[0]) / (x[1] - x[0]) * (t - x[0])
        elif t > x[-1]:
            value = y[-1] + np.polyfit(x, y, 1)[0] * (t - x[-1])
        else:
            value = float(np.interp(t, x, y))
        shape.append(max(2, int(round(math.exp(value)))))
    return shape[0], shape[1]


def ml100k_profile():
    """From ML-100K: the rating histogram {1..5: share}, the users' activity and the items'
    popularity (rating counts, sorted from the largest)."""
    import numpy as np
    import pandas as pd

    from includes.paths import dataset_file

    data = pd.read_csv(dataset_file("ml-100k", "u.data"), sep="\t", names=["user", "item", "rating", "timestamp"])
    histogram = data["rating"].value_counts(normalize=True).sort_index()
    return ({int(k): float(v) for k, v in histogram.items()},
            np.sort(data["user"].value_counts().to_numpy())[::-1].astype(float),
            np.sort(data["item"].value_counts().to_numpy())[::-1].astype(float))


def long_tail_weights(counts, size: int, rng):
    """Sampling weights for ``size`` ids whose sorted shape follows ``counts`` (interpolated on the
    rank quantile), in a random id order."""
    import numpy as np

    ranks = np.linspace(0.0, 1.0, size)
    weights = np.interp(ranks, np.linspace(0.0, 1.0, len(counts)), counts)
    weights = weights[rng.permutation(size)]
    return weights / weights.sum()


def generate_ratings(n: int, root: Path | None = None, chunk_rows: int = 2_000_000, seed: int = SEED) -> Path:
    """A Parquet folder of ``n`` MovieLens-shaped ratings ``user INT, item INT, rating FLOAT``.

    Users and items: :func:`movielens_shape`; who rates and what is rated follow ML-100K's long
    tails; a rating is a hidden rank-5 score (user and item biases + a dot product + noise) cut at
    the quantiles of ML-100K's histogram, so the ratings have the histogram and a structure to learn.
    A user rates an item at most once within a chunk of ``chunk_rows`` ratings (a dense matrix
    keeps the last of repeats across chunks)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(root or work_dir() / "data") / f"ratings-{n}"
    users, items = movielens_shape(n)
    meta = {"kind": "ratings", "rows": n, "users": users, "items": items, "seed": seed,
            "version": GENERATOR_VERSION, "chunk_rows": chunk_rows}

    def write(staging: Path) -> None:
        histogram, activity, popularity = ml100k_profile()
        rng = np.random.default_rng([seed, n])
        user_p = long_tail_weights(activity, users, rng)
        item_p = long_tail_weights(popularity, items, rng)
        user_f, item_f = rng.standard_normal((users, 5)), rng.standard_normal((items, 5))
        user_b, item_b = rng.normal(0, 0.5, users), rng.normal(0, 0.5, items)

        def draw(rows):
            u = rng.choice(users, size=rows, p=user_p)
            i = rng.choice(items, size=rows, p=item_p)
            score = user_b[u] + item_b[i] + np.einsum("ij,ij->i", user_f[u], item_f[i]) / math.sqrt(5)
            return u, i, score + rng.normal(0, 0.5, rows)

        _, _, pilot = draw(min(n, 100_000))
        shares = np.cumsum([histogram[k] for k in sorted(histogram)])[:-1]
        cuts = np.quantile(pilot, shares)
        values = np.array(sorted(histogram), dtype=np.float32)
        for part, (_, rows) in enumerate(_chunks(n, chunk_rows)):
            if rows > users * items // 2:
                raise ValueError(f"{rows} ratings in one chunk would fill over half the {users} x {items} matrix")
            u, i, score = draw(rows)
            # no (user, item) pair twice within a chunk (across chunks a pair may repeat)
            while True:
                _, first = np.unique(u.astype(np.int64) * items + i, return_index=True)
                if len(first) >= rows:
                    break
                more = draw(rows - len(first) + rows // 10 + 100)
                u, i, score = (np.concatenate([a[np.sort(first)], b]) for a, b in zip((u, i, score), more))
            keep = np.sort(first)[:rows]
            u, i, score = u[keep], i[keep], score[keep]
            table = pa.table({"user": pa.array(u.astype(np.int32)), "item": pa.array(i.astype(np.int32)),
                              "rating": pa.array(values[np.searchsorted(cuts, score)])})
            pq.write_table(table, staging / f"part-{part:05d}.parquet")

    return _build(folder, meta, write)


def forest_model(root: Path | None = None) -> Path:
    """ML12's forest fitted on the SF listings' numeric columns, saved with joblib (cached)."""
    import joblib
    from sklearn.ensemble import RandomForestRegressor

    path = Path(root or work_dir() / "data") / f"forest-v{GENERATOR_VERSION}.joblib"
    if not path.exists():
        base = listings_base()
        features = scoring_features(base.columns, base.dtypes)
        model = RandomForestRegressor(**FOREST).fit(base[features], base[LABEL])
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return path


def scoring_features(columns, dtypes) -> list[str]:
    """ML12's features: every non-string column but the label."""
    return [c for c, t in zip(columns, dtypes) if str(t) not in ("object", "string") and c != LABEL]


def prepare(workload: str, size: int, root: Path | None = None) -> dict:
    """Generate (or find cached) what a point needs; returns its paths."""
    if workload == "als":
        return {"data": str(generate_ratings(size, root))}
    paths = {"data": str(generate_listings(size, root))}
    if workload == "scoring":
        paths["model"] = str(forest_model(root))
    return paths


# ------------------------------------------------------------------------------------------------
# The workloads (run inside the point's subprocess)
# ------------------------------------------------------------------------------------------------


def pipeline_single(paths: dict) -> dict:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    df = pd.read_parquet(paths["data"])
    categorical = [c for c in LISTING_CATEGORICAL if c in df.columns]
    numeric = [c for c in df.columns if c not in categorical and c != LABEL]
    model = Pipeline([
        ("prepare", ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
                                       ("impute", SimpleImputer(strategy="median"), numeric)])),
        ("regression", LinearRegression()),
    ]).fit(df.drop(columns=[LABEL]), df[LABEL])
    return {"rows": len(df), "coefficients": int(model[-1].coef_.shape[0])}


def pipeline_spark(spark, paths: dict) -> dict:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression

    df = spark.read.parquet(paths["data"])
    categorical = [c for c in LISTING_CATEGORICAL if c in df.columns]
    numeric = [c for c in df.columns if c not in categorical and c != LABEL]
    indexed = [f"{c}_index" for c in categorical]
    encoded = [f"{c}_ohe" for c in categorical]
    imputed = [f"{c}_imputed" for c in numeric]
    model = Pipeline(stages=[
        StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="skip"),
        OneHotEncoder(inputCols=indexed, outputCols=encoded),
        Imputer(strategy="median", inputCols=numeric, outputCols=imputed),
        VectorAssembler(inputCols=encoded + imputed, outputCol="features"),
        LinearRegression(featuresCol="features", labelCol=LABEL),
    ]).fit(df)
    return {"coefficients": int(model.stages[-1].coefficients.size)}


def als_single(paths: dict) -> dict:
    import numpy as np
    import pandas as pd

    from includes.lessons.jester_als import als_numpy

    ratings = pd.read_parquet(paths["data"])
    users, items = int(ratings["user"].max()) + 1, int(ratings["item"].max()) + 1
    R = np.zeros((users, items))
    M = np.zeros((users, items))
    R[ratings["user"].to_numpy(), ratings["item"].to_numpy()] = ratings["rating"].to_numpy()
    M[ratings["user"].to_numpy(), ratings["item"].to_numpy()] = 1.0
    X, Y = als_numpy(R, M, ALS_SETTINGS["rank"], ALS_SETTINGS["iterations"], ALS_SETTINGS["reg"], seed=SEED)
    return {"users": users, "items": items, "factors": [list(X.shape), list(Y.shape)]}


def als_spark(spark, paths: dict) -> dict:
    from pyspark.ml.recommendation import ALS

    ratings = spark.read.parquet(paths["data"])
    model = ALS(userCol="user", itemCol="item", ratingCol="rating", rank=ALS_SETTINGS["rank"],
                maxIter=ALS_SETTINGS["iterations"], regParam=ALS_SETTINGS["reg"], seed=SEED).fit(ratings)
    return {"rank": model.rank}


def scoring_single(paths: dict) -> dict:
    import joblib
    import pandas as pd

    model = joblib.load(paths["model"])
    features = list(model.feature_names_in_)
    df = pd.read_parquet(paths["data"], columns=features)
    predictions = pd.DataFrame({"prediction": model.predict(df)})
    predictions.to_parquet(paths["output"])
    return {"rows": len(predictions)}


def scoring_spark(spark, paths: dict) -> dict:
    from typing import Iterator, Tuple

    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    model_path = paths["model"]
    df = spark.read.parquet(paths["data"])
    import joblib

    features = list(joblib.load(model_path).feature_names_in_)

    def predict(batches):
        model = joblib.load(model_path)  # once per task
        for columns in batches:
            yield pd.Series(model.predict(pd.concat(columns, axis=1, keys=features)))

    # this module has `from __future__ import annotations`: pandas_udf reads the hints as objects
    predict.__annotations__ = {"batches": Iterator[Tuple[pd.Series, ...]], "return": Iterator[pd.Series]}
    score = pandas_udf("double")(predict)
    df.select(score(*features).alias("prediction")).write.mode("overwrite").parquet(paths["output"])
    return {}


SINGLE = {"pipeline": pipeline_single, "als": als_single, "scoring": scoring_single}
SPARK = {"pipeline": pipeline_spark, "als": als_spark, "scoring": scoring_spark}


def run_point_here(workload: str, backend: str, paths: dict, master: str | None, result_file: Path) -> int:
    """The body of a point's subprocess: run the workload once, write the result file."""
    result = {"outcome": OK}
    try:
        if backend == "single":
            started = time.perf_counter()
            result["detail"] = SINGLE[workload](paths)
            result["seconds"] = time.perf_counter() - started
        else:
            from includes.runtime.spark import start_session

            run_dir = Path(paths["run_dir"])
            started = time.perf_counter()
            spark = start_session(f"scaling-{workload}", master, run_dir, run_dir / "spark.log")
            spark.sparkContext.setLogLevel("ERROR")
            result["startup_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            result["detail"] = SPARK[workload](spark, paths)
            result["seconds"] = time.perf_counter() - started
    except MemoryError as error:
        result = {"outcome": MEMORY_ERROR, "error": f"{type(error).__name__}: {error}"[:500]}
    except Exception as error:  # a failing job: record what it was
        text = f"{type(error).__name__}: {error}"
        oom = "OutOfMemoryError" in text or "Java heap space" in text
        result = {"outcome": JVM_OOM if oom else ERROR, "error": text[:2000]}
    result_file.write_text(json.dumps(result))
    return 0 if result["outcome"] == OK else 3


# ------------------------------------------------------------------------------------------------
# The harness: a fresh subprocess per point, memory sampled, limits enforced
# ------------------------------------------------------------------------------------------------


def tree(root) -> list:
    """``root`` (a psutil.Process) and its descendants that are still alive."""
    import psutil

    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def rss(processes) -> int:
    import psutil

    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def _limit_address_space(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def measure(command: list[str], *, time_limit: float, env: dict | None = None, address_space: int | None = None,
            also_watch: tuple = (), log_path: Path | None = None, interval: float = SAMPLE_INTERVAL) -> dict:
    """Run ``command`` in a new process group; return its wall seconds, the peak of the summed RSS
    of its process tree (and of the trees of the ``also_watch`` processes), its return code and
    whether the time limit stopped it. ``address_space`` sets RLIMIT_AS (bytes) in the child: only
    for processes that start no JVM."""
    import psutil

    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    started = time.perf_counter()
    try:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=_limit_address_space(address_space) if address_space else None)
    finally:
        if log_path:
            log.close()
    root = psutil.Process(child.pid)
    watched = [psutil.Process(p) if isinstance(p, int) else p for p in also_watch]
    seen: dict[int, object] = {}
    peak = peak_own = 0
    timed_out = False
    try:
        while child.poll() is None:
            own = tree(root)
            for process in own:
                seen.setdefault(process.pid, process)
            own_rss = rss(own)
            total = own_rss + sum(rss(tree(w)) for w in watched)
            peak, peak_own = max(peak, total), max(peak_own, own_rss)
            if time.perf_counter() - started > time_limit:
                timed_out = True
                break
            time.sleep(interval)
    finally:  # the time limit, or this process interrupted: the point's process group goes
        if child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
    seconds = time.perf_counter() - started
    # anything of the point's tree still alive (a JVM that outlived its Python) is stopped by id
    for process in seen.values():
        try:
            if process.is_running() and process.pid != child.pid:
                process.kill()
        except psutil.Error:
            pass
    return {"process_seconds": seconds, "peak_rss_bytes": peak, "peak_process_rss_bytes": peak_own,
            "returncode": child.returncode, "timed_out": timed_out}


def outcome_of(measured: dict, result: dict | None) -> str:
    """The point's outcome from the harness's view and the child's result file (None if absent)."""
    if measured["timed_out"]:
        return TIME_LIMIT
    code = measured["returncode"]
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed ({name})"
    if result is None:
        return ERROR
    return result.get("outcome", ERROR)


# ------------------------------------------------------------------------------------------------
# Settings, machine, plan
# ------------------------------------------------------------------------------------------------


def total_ram() -> int:
    import psutil

    return psutil.virtual_memory().total


def settings_for(quick: bool, ram: int | None = None) -> dict:
    """Limits and memory settings: quick mode keeps everything small; the full run gives the single
    process an address-space limit of 80 % of RAM and a Spark JVM half of it."""
    ram = ram or total_ram()
    gib = 1 << 30
    if quick:
        return {"time_limit": 300.0, "single_address_space": min(int(0.8 * ram), 8 * gib), "driver_memory": "2g",
                "cluster_driver_memory": "1g", "executor_memory": "1g", "worker_memory": "2g", "repeats": 1}
    half = max(1, int(0.5 * ram / gib))
    # on the cluster the driver only plans and collects small results: the executor gets the memory
    return {"time_limit": 900.0, "single_address_space": int(0.8 * ram), "driver_memory": f"{half}g",
            "cluster_driver_memory": "2g", "executor_memory": f"{half}g", "worker_memory": f"{half + 1}g",
            "repeats": REPEATS}


def machine() -> dict:
    """The machine's description (includes/tools/machine.py), with the load average at the start."""
    from includes.tools.machine import describe

    described = describe()
    described["load_average_at_start"] = described.pop("load_average")
    return described


# bytes per row a single process holds at its peak (see plan()), and listings' one-hot width
ONE_HOT_COLUMNS = 80  # categories of the 7 string columns of the SF listings (tests/test_scaling.py counts them)


# What the single process's address space holds before its data: measured with the course's
# environment, 0.6 GiB after importing numpy, pandas, pyarrow and scikit-learn, 1.7 GiB once pyarrow
# has read a Parquet file (its mimalloc pool reserves address space, its threads their stacks).
# RLIMIT_AS counts reserved address space, not resident memory.
SINGLE_BASELINE_BYTES = int(1.8 * (1 << 30))


def single_peak_bytes(workload: str, size: int, one_hot: int = ONE_HOT_COLUMNS) -> float:
    """On paper: what the single-process version holds at its peak, in bytes.

    - pipeline: the frame (27 float64 + 7 string references = 272 B/row) and four copies of the
      dense design matrix (one-hot + 26 numeric float64 columns): ColumnTransformer's parts and
      their stacked output, LinearRegression's centred copy, LAPACK's copy in lstsq. (Measured at
      10^6 rows on the reference machine: 3.5 GiB of RSS, this says 3.4 GiB.)
    - als: the dense ratings R, the mask M and the temporary M * R: 3 * 8 * users * items.
    - scoring: the frame of 26 float64 features, Arrow's copy while reading, the float32 copy the
      forest predicts on: (2 * 208 + 104) B/row.
    """
    if workload == "pipeline":
        return size * (272 + 4 * 8 * (one_hot + 26))
    if workload == "als":
        users, items = movielens_shape(size)
        return 3 * 8 * users * items
    if workload == "scoring":
        return size * (2 * 208 + 104)
    raise ValueError(workload)


# On paper, for --plan (an idle 2-core machine; to be replaced by the full run's measurements):
# seconds of a run = start-up + fixed + size / rows per second, per (workload, backend). The rates
# are half the speed of probes at 10^6 rows on the reference machine under a load of 5-10 (from
# other work) on its 2 cores: pipeline one process 90 s, Spark local 59 s; ALS NumPy 16.6 s, Spark
# 24 s; scoring one process 8.8 s, Spark 31 s (start-ups apart). The cluster: local's, a fifth
# slower (quick mode's ratio).
# - pipeline: four passes over the data in Spark (StringIndexer, Imputer's quantiles, the
#   regression's summary and its normal equations: a 106 x 106 outer product per row); pandas
#   reads once, one-hot encodes and solves least squares with LAPACK's SVD-based gelsd.
# - als (Spark): 10 iterations of two half-steps over every rating, plus building the blocks;
#   the NumPy side is estimated from its flops instead (ALS_DENSE_FLOPS).
# - scoring: 50 trees of depth 10 on one core (the forest's n_jobs=1), on two in Spark, which
#   also moves every row through Arrow to its Python workers and back and writes Parquet.
STARTUP_SECONDS = {"single": 2.0, "local": 12.0, "cluster": 18.0}
PLAN_SPEED = {
    ("pipeline", "single"): (1.0, 25_000), ("pipeline", "local"): (20.0, 60_000),
    ("pipeline", "cluster"): (25.0, 50_000),
    ("als", "single"): (1.0, None), ("als", "local"): (15.0, 200_000), ("als", "cluster"): (20.0, 170_000),
    ("scoring", "single"): (1.0, 220_000), ("scoring", "local"): (14.0, 125_000),
    ("scoring", "cluster"): (18.0, 105_000),
}
ALS_DENSE_FLOPS = 15e9  # dense ALS: M @ outer (2 * users * items * rank^2 flops per side) with 2 BLAS threads
GENERATE_ROWS_PER_SECOND = {"listings": 400_000, "ratings": 800_000}  # on paper, idle


def estimate_seconds(workload: str, backend: str, size: int) -> float:
    """On paper: the seconds of one run of a point, start-up included (see PLAN_SPEED)."""
    fixed, speed = PLAN_SPEED[(workload, backend)]
    fixed += STARTUP_SECONDS[backend]
    if workload == "als" and backend == "single":
        users, items = movielens_shape(size)
        per_iteration = 2 * 2 * users * items * ALS_SETTINGS["rank"] ** 2 + 6 * users * items
        return fixed + size / 1e6 + ALS_SETTINGS["iterations"] * per_iteration / ALS_DENSE_FLOPS
    return fixed + size / speed


def sizes_for(sizes, backend: str) -> tuple:
    """``sizes``: one list for every backend, or a {backend: sizes} dict (FULL_SIZES)."""
    return tuple(sorted(sizes[backend] if isinstance(sizes, dict) else sizes))


def plan(workloads, backends, sizes, settings: dict) -> list[dict]:
    """The points of a run with what to expect of each, on paper: the single process's peak memory
    (:func:`single_peak_bytes`) against its address-space limit, the seconds (:func:`estimate_seconds`,
    times the repeats of a short point, capped by the time limit)."""
    rows = []
    for workload in workloads:
        for backend in backends:
            failed = None
            for size in sizes_for(sizes, backend):
                row = {"workload": workload, "backend": backend, "size": size}
                estimate = estimate_seconds(workload, backend, size)
                short = estimate - STARTUP_SECONDS[backend] < REPEAT_BELOW_SECONDS
                need = single_peak_bytes(workload, size) if backend == "single" else None
                if need is not None:
                    row["single peak GiB"] = f"{need / (1 << 30):,.1f}"
                if failed:
                    row["expect"], seconds = SKIPPED, 0.0
                elif need is not None and need + SINGLE_BASELINE_BYTES > settings["single_address_space"]:
                    row["expect"] = failed = "MemoryError"
                    seconds = min(estimate, 60.0)  # it fails while allocating
                elif estimate > settings["time_limit"]:
                    row["expect"] = failed = TIME_LIMIT
                    seconds = settings["time_limit"]
                else:
                    near = need is not None and need + SINGLE_BASELINE_BYTES > 0.85 * settings["single_address_space"]
                    row["expect"] = "ok or MemoryError (near the limit)" if near else OK
                    seconds = estimate * (settings["repeats"] if short else 1)
                row["est. s"] = round(seconds)
                rows.append(row)
    return rows


def generation_seconds(workloads, sizes) -> float:
    """On paper: the seconds to generate every dataset of a run (once; later runs find them cached)."""
    every = sorted({s for b in BACKENDS for s in sizes_for(sizes, b)}) if isinstance(sizes, dict) else sorted(sizes)
    seconds = 0.0
    if {"pipeline", "scoring"} & set(workloads):
        seconds += sum(every) / GENERATE_ROWS_PER_SECOND["listings"]
    if "als" in workloads:
        seconds += sum(every) / GENERATE_ROWS_PER_SECOND["ratings"]
    return seconds


# ------------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------------


def child_env(settings: dict, backend: str, cluster_master: str | None) -> dict:
    from includes.runtime.numeric import pin

    env = dict(os.environ)
    pin(env)
    env["PYTHONPATH"] = os.pathsep.join([str(COURSE_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if backend == "local":
        env["COURSE_DRIVER_MEMORY"] = settings["driver_memory"]
    if backend == "cluster":
        env["PYSPARK_SUBMIT_ARGS"] = (f"--conf spark.executor.memory={settings['executor_memory']} "
                                      f"--conf spark.driver.memory={settings['cluster_driver_memory']} pyspark-shell")
    return env


def run_point(workload: str, backend: str, size: int, run: int, settings: dict, *, root: Path,
              cluster=None) -> dict:
    """One measured run of one point in a fresh subprocess; returns its record."""
    import shutil

    paths = prepare(workload, size, root / "data")
    tag = f"{workload}-{backend}-{size}-{run}"
    run_dir = root / "runs" / tag
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    paths["run_dir"] = str(run_dir)
    paths["output"] = str(run_dir / "predictions.parquet")
    result_file = run_dir / "result.json"
    master = {"local": "local[*]", "cluster": cluster.url if cluster else None}.get(backend)
    command = [sys.executable, str(Path(__file__).resolve()), "--point", workload, backend,
               json.dumps(paths), str(result_file)] + (["--master", master] if master else [])
    load = list(os.getloadavg())
    measured = measure(command, time_limit=settings["time_limit"], env=child_env(settings, backend, master),
                       address_space=settings["single_address_space"] if backend == "single" else None,
                       also_watch=(cluster.processes[-1].pid,) if backend == "cluster" and cluster else (),
                       log_path=root / "logs" / f"{tag}.log")
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        result = None
    record = {"workload": workload, "backend": backend, "size": size, "run": run,
              "outcome": outcome_of(measured, result), "load_average_before": load,
              **{k: measured[k] for k in ("process_seconds", "peak_rss_bytes", "peak_process_rss_bytes")}}
    for key in ("seconds", "startup_seconds", "detail", "error"):
        if result and key in result:
            record[key] = result[key]
    if record["outcome"] != OK and "error" not in record:
        log = root / "logs" / f"{tag}.log"
        record["error"] = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    shutil.rmtree(run_dir, ignore_errors=True)  # predictions and Spark's files: not kept
    return record


def run(workloads, backends, sizes, settings: dict, *, root: Path, out: Path, mode: str,
        echo=print) -> dict:
    """Every point, in order of size per (workload, backend); writes ``out`` after each point."""
    results = {"format": FORMAT, "mode": mode, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "settings": {**settings, "als": ALS_SETTINGS, "forest": FOREST, "seed": SEED,
                                                  "repeat_below_seconds": REPEAT_BELOW_SECONDS},
               "records": []}
    cluster = None
    try:
        for workload in workloads:
            for backend in backends:
                if backend == "cluster" and cluster is None:
                    from includes.tools.cluster import LocalCluster

                    cluster = LocalCluster(cores=os.cpu_count() or 2, memory=settings["worker_memory"],
                                           workdir=root / "cluster", timeout=300).start()
                    echo(f"(standalone cluster at {cluster.url})")
                failed = False
                for size in sizes_for(sizes, backend):
                    if failed:
                        results["records"].append({"workload": workload, "backend": backend, "size": size,
                                                   "run": 0, "outcome": SKIPPED})
                        echo(f"{workload:9s} {backend:8s} {size:>12,d}  {SKIPPED}")
                        continue
                    for index in range(settings["repeats"]):
                        record = run_point(workload, backend, size, index, settings, root=root, cluster=cluster)
                        results["records"].append(record)
                        echo(f"{workload:9s} {backend:8s} {size:>12,d}  run {index}  {record['outcome']:12s} "
                             f"{record.get('seconds', float('nan')):8.1f} s  "
                             f"(start-up {record.get('startup_seconds', 0):.1f} s)  "
                             f"peak {record['peak_rss_bytes'] / (1 << 20):8,.0f} MiB")
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_text(json.dumps(results, indent=1))
                        if record["outcome"] != OK:
                            failed = True
                            break
                        if record.get("seconds", math.inf) >= REPEAT_BELOW_SECONDS:
                            break
    finally:
        if cluster is not None:
            cluster.stop()
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return results


def summary(results: dict) -> list[dict]:
    """One row per (workload, backend, size): the median seconds of the ok runs, the peak memory,
    the outcome (the first failure's, if any run failed)."""
    groups: dict[tuple, list] = {}
    for record in results["records"]:
        groups.setdefault((record["workload"], record["backend"], record["size"]), []).append(record)
    rows = []
    for (workload, backend, size), records in groups.items():
        ok = [r for r in records if r["outcome"] == OK]
        failed = [r["outcome"] for r in records if r["outcome"] != OK]
        row = {"workload": workload, "backend": backend, "size": size, "runs": len(records),
               "outcome": failed[0] if failed else OK}
        row["median s"] = f"{statistics.median(r['seconds'] for r in ok):.2f}" if ok else "-"
        startup = [r["startup_seconds"] for r in ok if "startup_seconds" in r]
        row["start-up s"] = f"{statistics.median(startup):.1f}" if startup else "-"
        peaks = [r["peak_rss_bytes"] for r in records if "peak_rss_bytes" in r]
        row["peak MiB"] = f"{max(peaks) / (1 << 20):,.0f}" if peaks else "-"
        rows.append(row)
    return rows


def print_table(rows: list[dict], columns: list[str], echo=print) -> None:
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    echo("  ".join(c.ljust(widths[c]) for c in columns))
    echo("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def parse_size(text: str) -> int:
    value = float(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number of rows: {text}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"smoke test: sizes {QUICK_SIZES}, one run each")
    parser.add_argument("--plan", action="store_true", help="print the points with on-paper memory and time; run nothing")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--sizes", nargs="+", type=parse_size,
                        help="rows (ratings for als) for every backend, e.g. 1e5 1e6; default FULL_SIZES or QUICK_SIZES")
    parser.add_argument("--out", type=Path, help="results file (default benchmarks/results/scaling[-quick].json)")
    parser.add_argument("--work", type=Path, help="data and scratch folder (default work/scaling)")
    parser.add_argument("--single-limit-gib", type=float,
                        help="the single process's address-space limit (default: 80 %% of RAM; quick mode 8)")
    parser.add_argument("--point", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--master", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    # SIGTERM ends the run like Ctrl-C: the running point's processes and the cluster are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.point:  # inside a point's subprocess
        workload, backend, paths, result_file = args.point
        return run_point_here(workload, backend, json.loads(paths), args.master, Path(result_file))

    sizes = sorted(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    settings = settings_for(args.quick)
    if args.single_limit_gib:
        settings["single_address_space"] = int(args.single_limit_gib * (1 << 30))
    mode = "quick" if args.quick else "full"
    if args.plan:
        rows = plan(args.workloads, args.backends, sizes, settings)
        print_table(rows, ["workload", "backend", "size", "single peak GiB", "expect", "est. s"])
        total = sum(row["est. s"] for row in rows) + generation_seconds(args.workloads, sizes)
        print(f"\nestimated on paper: {total / 60:.0f} min, of which {generation_seconds(args.workloads, sizes) / 60:.0f} "
              f"min generate the data (cached for later runs); time limit {settings['time_limit']:.0f} s per run, "
              f"single-process address space {settings['single_address_space'] / (1 << 30):.1f} GiB, "
              f"Spark local driver {settings['driver_memory']}, cluster executor {settings['executor_memory']} "
              f"(worker {settings['worker_memory']}, driver {settings['cluster_driver_memory']})")
        return 0
    root = (args.work or work_dir()).resolve()
    out = args.out or COURSE_ROOT / "benchmarks" / "results" / ("scaling-quick.json" if args.quick else "scaling.json")
    shown = "; ".join(f"{b} {', '.join(f'{n:,d}' for n in sizes_for(sizes, b))}" for b in args.backends)
    print(f"scaling benchmark, {mode} mode: {', '.join(args.workloads)}; sizes {shown}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    started = time.perf_counter()
    results = run(args.workloads, args.backends, sizes, settings, root=root, out=out, mode=mode)
    print()
    print_table(summary(results), ["workload", "backend", "size", "runs", "outcome", "median s", "start-up s", "peak MiB"])
    print(f"\n{len(results['records'])} records in {out} ({(time.perf_counter() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
