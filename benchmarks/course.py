"""Fit times, throughput and accuracy of the course's models and queries on this machine.

Run from the course folder with the course's interpreter:

    .venv/bin/python benchmarks/course.py              # every section
    .venv/bin/python benchmarks/course.py als          # only the named sections
    .venv/bin/python benchmarks/course.py --list       # what the sections are

This is a script, not a test: it prints numbers for the prose of the notebooks (which never print
timings themselves, because their stored outputs must be reproducible). Timings depend on the
machine and on whatever else runs on it, so the header prints the cores and the load average.

Sections (each a module of ``benchmarks/sections/``, whose docstring has the detail; the shared
pieces are in ``benchmarks/common.py``; a section gets a ``Bench`` whose Spark session starts on
first use, so sections that need no Spark stay fast):

- ``als``: MovieLens 100K, ``ua.base`` -> ``ua.test`` (lesson ML16). ALS with the settings of the
  003 notebook, the tuned ALS of ML16 (its TrainValidationSplit search and the chosen settings),
  and ML16's baseline predictor + ALS on its residuals.
- ``jester``: the Jester lab (ML16L): loading, Arrow on/off, NumPy ALS against Spark ALS.
- ``streaming``: ML17's streaming SGD on MovieLens latest-small replayed as files: per-batch
  latency, Spark jobs per batch and throughput, with and without the per-batch held-out
  evaluation, and with larger batches; the final held-out RMSE against batch ALS retrained on all
  training ratings. Results: ``benchmarks/results/streaming.json``.
- ``serving``: one (user, movie) prediction from ML17's offline factor tables: cached DataFrames
  (filter + first), a Delta table in one file and one range-partitioned by id (data skipping), an
  RDD partitioned by id (``lookup``), a dict and NumPy arrays on the driver; median and p95
  latency per request. Results: ``benchmarks/results/serving.json``.
- ``neighbours``: MLE05L's item-item and user-user similarity matrices (the lab's exported
  functions) at growing numbers of movies and users: seconds and MB. Results:
  ``benchmarks/results/neighbours.json``.
- ``tuning``: the Airbnb price models: ML08's CrossValidator grid with parallelism 1 and 2, ML09's
  Hyperopt TPE, random search and Optuna TPE on its budget and a larger one (best validation
  RMSE, seconds), ML09L's SparkTrials with parallelism 1 and 2.
- ``deployment``: ML12's scikit-learn forest scored by Spark in four ways (scalar and iterator
  pandas UDF, ``mapInPandas``, ``mlflow.pyfunc.spark_udf``), rows/s at two Arrow batch sizes;
  ML11's SparkXGBRegressor fit with 1 and 2 workers; ML10's REST endpoint (``mlflow models serve``
  of a Spark pipeline and of a scikit-learn model: start-up, memory, latency, requests/s) and batch
  scoring rows/s.
- ``realtime``: ML18's hashtag query on the posts feed: from the socket at ML18's rate, five times
  faster and as fast as possible (posts/s, micro-batch duration, end-to-end latency from the
  server's send to the committed micro-batch), and from files into Delta or memory.
- ``joblib``: MLE06's GridSearchCV (24 forest fits) in one process, with loky and with
  joblibspark's Spark backend (seconds, best CV RMSE, the same scores every way).
- ``forecasting``: MLE03's 19 MovieLens genre series (monthly ratings): one damped-trend model per
  series, a Python loop on the driver (default BLAS threads and one thread) vs
  ``groupBy.applyInPandas``, also for ten times as many series.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # the course folder: `benchmarks` and `includes`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from includes.runtime import numeric  # noqa: E402  (standard library only)

numeric.pin()  # before numpy loads, so the benchmarks compute like the notebooks and the tests

from benchmarks.common import Bench  # noqa: E402  (after the path above)
from benchmarks.sections import load as load_sections  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    sections = load_sections()
    parser = argparse.ArgumentParser(prog="python benchmarks/course.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", help=f"sections to run (default: all): {', '.join(sections)}")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    if args.list:
        for entry in sections.values():
            print(f"{entry.name:<12}{entry.description}")
        return 0
    unknown = [name for name in args.sections if name not in sections]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections)}")

    import pyspark

    from includes.data import datasets

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min); pyspark {pyspark.__version__}")
    bench = Bench()
    for name in args.sections or list(sections):
        entry = sections[name]
        print(f"\n== {entry.name}: {entry.description}")
        missing = [dataset for dataset in entry.datasets if not datasets.is_installed(dataset)]
        if missing:  # from $COURSE_DATASETS_MIRROR if set, else the original URLs
            datasets.install(missing)
        started = time.perf_counter()
        entry.run(bench)
        print(f"(section {entry.name}: {time.perf_counter() - started:.1f} s)")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nload average at the end: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
