"""How long a notebook's set-up cell takes, and what of it is Delta's jar resolution.

    .venv/bin/python benchmarks/startup.py [--runs 5]

Each run is a fresh Python process (as a new kernel is) that calls the set-up cell's
``classroom.setup`` and stops; the table gives min / median / max seconds per mode:

- ``recorded jars``: what notebooks do after ``make setup`` (Delta's jars from the files it
  recorded in ``.venv/course-delta-jars.txt``);
- ``Ivy resolution``: the same with ``spark.jars.packages`` resolved by Ivy at the start (what
  the course did before, and what it falls back to without the record);
- ``plain Spark``: a SparkSession without Delta or MLflow, the floor.

Run it on an idle machine: two runs at once measure contention, not start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
if str(COURSE_ROOT) not in sys.path:
    sys.path.insert(0, str(COURSE_ROOT))

MODES = ("recorded jars", "Ivy resolution", "plain Spark")


def one_start(mode: str, work: Path) -> float:
    """Seconds of one start in this process (a fresh process per call)."""
    started = time.perf_counter()
    if mode == "plain Spark":
        from pyspark.sql import SparkSession

        SparkSession.builder.master("local[*]").config("spark.ui.showConsoleProgress", "false").getOrCreate()
    else:
        from includes.runtime import classroom, spark

        if mode == "Ivy resolution":
            spark.JARS_FILE = work / "no-record.txt"  # no record: the session resolves the package
        classroom.setup("BENCH")
    return time.perf_counter() - started


def measure(mode: str, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, COURSE_WORK_ROOT=tmp, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
            proc = subprocess.run([sys.executable, __file__, "--one", mode, tmp], env=env, cwd=COURSE_ROOT,
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise SystemExit(f"{mode}: {proc.stderr[-2000:]}")
            seconds.append(float(proc.stdout.strip().splitlines()[-1]))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/startup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(f"{one_start(args.one[0], Path(args.one[1])):.3f}")
        return 0
    print(f"set-up cell start, {args.runs} fresh processes per mode (seconds)")
    print(f"{'mode':<16} {'min':>6} {'median':>7} {'max':>6}")
    for mode in MODES:
        seconds = measure(mode, args.runs)
        print(f"{mode:<16} {min(seconds):6.2f} {statistics.median(seconds):7.2f} {max(seconds):6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
