"""What the benchmark sections share (``benchmarks/course.py`` runs them; each section is a module of
``benchmarks/sections/``): the section registry (:func:`section`), :class:`Bench` (the Spark session
on first use, ``timed``), :func:`print_table`, :func:`save_results` (``benchmarks/results/<section>.json``
with the machine's description), the seed, and the data and settings several sections use: the
Airbnb train/test split (tuning, deployment, joblib; the last two also with its numeric features and
the training half in pandas) and ML17's split and offline model (streaming, serving).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
if str(COURSE_ROOT) not in sys.path:
    sys.path.insert(0, str(COURSE_ROOT))

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SEED = 5757
# The settings of ML17 that the streaming and serving sections share; keep them in step with the notebook.
ML17_SPLIT = {"heldout_fraction": 0.1, "seed": 42, "offline_fraction": 0.6}
ML17_RANK = 10  # the offline model is sa.fit_offline_model with its defaults (as in the notebook)


@dataclass
class Section:
    name: str
    description: str
    run: Callable[["Bench"], None]
    datasets: tuple[str, ...] = ()


SECTIONS: dict[str, Section] = {}


def section(name: str, description: str, datasets: tuple[str, ...] = ()):
    """Register a benchmark section under ``name`` (selectable on the command line); ``datasets``
    are installed (from the mirror or the original URLs) before it runs if they are missing."""

    def register(function: Callable[["Bench"], None]) -> Callable[["Bench"], None]:
        SECTIONS[name] = Section(name, description, function, tuple(datasets))
        return function

    return register


@dataclass
class Bench:
    """Shared state of a benchmark run: the Spark session (started on first use) and helpers."""

    _spark: object = field(default=None, repr=False)

    @property
    def spark(self):
        if self._spark is None:
            from includes.runtime.classroom import setup

            started = time.perf_counter()
            classroom = setup("benchmarks")
            self._spark = classroom.spark
            print(f"(Spark session started in {time.perf_counter() - started:.1f} s, master {classroom.master})")
        return self._spark

    @staticmethod
    def timed(function, *args, **kwargs):
        """(result, seconds) of one call."""
        started = time.perf_counter()
        result = function(*args, **kwargs)
        return result, time.perf_counter() - started


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def save_results(section_name: str, rows: list[dict], notes: str = "") -> Path:
    """Write a section's table to ``benchmarks/results/<section>.json`` with the machine's description
    (:func:`includes.tools.machine.describe`; the load average is the one at the end)."""
    import datetime as dt
    import json

    from includes.tools.machine import describe

    machine = describe()
    machine["load_average_at_end"] = [round(v, 1) for v in machine.pop("load_average")]
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{section_name}.json"
    path.write_text(json.dumps({
        "section": section_name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "rows": rows, "notes": notes}, indent=1) + "\n")
    print(f"(results written to {path.relative_to(COURSE_ROOT)})")
    return path


def airbnb_split(spark):
    """The SF listings (cleaned, Delta) split 80/20 with seed 42, both halves cached: (train_df, test_df)."""
    from includes.data.airbnb import sf_clean_delta

    airbnb_df = spark.read.format("delta").load(sf_clean_delta(spark))
    train_df, test_df = airbnb_df.randomSplit([0.8, 0.2], seed=42)
    return train_df.cache(), test_df.cache()


def airbnb_numeric_features(df) -> list[str]:
    """The Airbnb columns a scikit-learn model fits on: the numeric ones other than price, in the table's order."""
    return [name for name, dtype in df.dtypes if dtype != "string" and name != "price"]


def airbnb_for_sklearn(spark):
    """:func:`airbnb_split` with what the scikit-learn sections fit on: (train_df, test_df, features,
    train_pdf), ``features`` from :func:`airbnb_numeric_features`, ``train_pdf`` the training half in pandas."""
    train_df, test_df = airbnb_split(spark)
    return train_df, test_df, airbnb_numeric_features(train_df), train_df.toPandas()


def ml17_offline_model(spark):
    """ML17's data split and offline model: (offline_df, stream_df, heldout_df, mu, users_df, items_df, train_df)."""
    from pyspark.sql import functions as F

    from includes.lessons import streaming_sgd as sa
    from includes.data.movielens import ratings_latest_small

    ratings_df = ratings_latest_small(spark).cache()
    train_df, heldout_df = sa.holdout_split(ratings_df, ML17_SPLIT["heldout_fraction"], ML17_SPLIT["seed"])
    cutoff = sa.time_cutoff(train_df, ML17_SPLIT["offline_fraction"])
    offline_df = train_df.filter(F.col("timestamp") < cutoff).cache()
    stream_df = train_df.filter(F.col("timestamp") >= cutoff).cache()
    mu, users_df, items_df = sa.fit_offline_model(offline_df, rank=ML17_RANK)
    return offline_df, stream_df, heldout_df.cache(), mu, users_df, items_df, train_df
