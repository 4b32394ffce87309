"""The classroom: one call gives a notebook everything it needs.

``setup("ML00a")`` runs the preflight checks, creates (or reuses) the SparkSession with Delta
Lake (:func:`includes.runtime.spark.start_session`), gives the lesson its own working directory,
and points MLflow at the course's store. Notebooks call it through
``includes/classroom_setup.py`` (the set-up cell).

Environment variables (all optional):

- ``COURSE_SPARK_MASTER``: ``local[*]`` (default) or ``spark://HOST:7077`` for a standalone
  cluster. Spark Connect (``sc://``) is refused with an explanation: the lessons use
  ``SparkContext``, the RDD API and hyperopt's SparkTrials, which Connect does not offer.
- ``COURSE_WORK_ROOT``: where per-lesson working directories live (default ``<course>/work``).
  On a multi-machine cluster this must be a path every worker can read and write.
- ``COURSE_DATASETS_DIR``: where the datasets are installed (default ``<course>/datasets``).
- ``MLFLOW_TRACKING_URI``: an MLflow tracking server or store (default: the course's
  SQLite store ``<course>/mlflow/mlflow.db``).
- ``COURSE_SHUFFLE_PARTITIONS``: ``spark.sql.shuffle.partitions`` (default 8, on a cluster too: the
  course's datasets are small).
- ``COURSE_DRIVER_MEMORY``: ``spark.driver.memory`` for local runs (default ``4g``).
- ``COURSE_DRIVER_JAVA_OPTIONS``: JVM options of the local driver (default: the parallel GC;
  set it empty for the JVM's defaults). They come after :data:`REPRODUCIBLE_JAVA_OPTIONS` and
  :data:`SHORT_LIVED_JIT_OPTIONS`, which every course JVM gets (driver and executors), so an
  option given here wins.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from includes.data.datasets import require as require_datasets
from includes.fsutil import try_lock
from includes.paths import CourseSetupError, datasets_root, display_path, mlflow_tracking_uri, work_root
from includes.runtime.numeric import numeric_environment
from includes.runtime.preflight import check_java, check_master_reachable
from includes.runtime.spark import start_session

MASTER_ENV = "COURSE_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"


def course_master() -> str:
    return os.environ.get(MASTER_ENV, "").strip() or DEFAULT_MASTER


# Keeps the lock files of this process's working directories open (and so locked) until exit.
_held_locks: dict[str, object] = {}


def error_condition(error: BaseException) -> str:
    """The Spark error condition of an exception ("DIVIDE_BY_ZERO", "DELTA_...").

    PySpark converts most JVM errors into Python exceptions with getCondition(); errors raised
    inside a job (a task failing while writing, for example) arrive as Py4JJavaError wrapping
    the JVM exception. This walks to the innermost condition so lessons can print the reason
    rather than a stack trace. Falls back to the exception's class name.
    """
    get = getattr(error, "getCondition", None)
    if callable(get) and get():
        return str(get())
    java = getattr(error, "java_exception", None)
    found = None
    while java is not None:
        try:
            condition = java.getCondition() if hasattr(java, "getCondition") else None
        except Exception:  # not a SparkThrowable
            condition = None
        if condition:
            found = str(condition)
        java = java.getCause()
    return found or type(error).__name__


def claim_working_dir(lesson: str, root: Path | None = None) -> Path:
    """Create a fresh, empty working directory for ``lesson`` and lock it for this process.

    Re-running a notebook starts from an empty directory. If another live process holds
    ``<root>/<lesson>`` (the same notebook running twice at once), this process gets
    ``<root>/<lesson>-<pid>`` instead, so parallel runs never touch each other's files.
    """
    root = Path(root) if root is not None else work_root()
    root.mkdir(parents=True, exist_ok=True)
    for name in (lesson, f"{lesson}-{os.getpid()}"):
        if name not in _held_locks:  # else a re-run in the same process: we already own it
            handle = try_lock(root / f".{name}.lock")
            if handle is None:  # another live process works there
                continue
            _held_locks[name] = handle
        directory = root / name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir()
        if name != lesson:
            atexit.register(shutil.rmtree, directory, True)
        return directory
    raise CourseSetupError(f"Could not claim a working directory for {lesson} under {root}")


_last_written: list = [None]  # the output stream written to last, by write_through's streams


def write_through(stream) -> None:
    """Keep the order of writes across ipykernel's output streams (no-op for other streams).

    Before a write to ``stream``, whatever the other stream holds is sent (flushed), so the
    frontend receives the two streams' text in the order it was written. IPython wraps
    ``stream.write`` around every cell and puts back the method it found, so the stream's class is
    swapped for a subclass whose ``write`` is a property: a wrapper assigned to it is honoured,
    and a plain method put back means the ordered write again.
    """
    base = type(stream)
    if not hasattr(stream, "flush_interval") or getattr(base, "_course_ordered", False):
        return

    def ordered_write(self, text):
        previous = _last_written[0]
        if previous is not None and previous is not self:
            previous.flush()
        _last_written[0] = self
        return base.write(self, text)

    def get_write(self):
        return self.__dict__.get("_course_write") or ordered_write.__get__(self)

    def set_write(self, value):
        plain = getattr(value, "__func__", None) in (base.write, ordered_write)
        self.__dict__["_course_write"] = None if plain else value

    wrapper = stream.__dict__.pop("write", None)  # IPython's wrapper of the running cell, if any
    stream.__class__ = type(f"Ordered{base.__name__}", (base,),
                            {"write": property(get_write, set_write), "_course_ordered": True})
    if wrapper is not None:
        stream.write = wrapper


def numeric_pin_problem() -> str | None:
    """None when this process's numpy computes as :mod:`includes.runtime.numeric` pins it; else what
    differs (it loads numpy to look)."""
    from numpy._core._multiarray_umath import __cpu_features__
    from threadpoolctl import threadpool_info

    wanted = numeric_environment()
    problems = []
    for pool in threadpool_info():
        if pool.get("internal_api") == "openblas" and "OPENBLAS_CORETYPE" in wanted \
                and pool.get("architecture") != wanted["OPENBLAS_CORETYPE"]:
            problems.append(f"numpy's OpenBLAS runs its {pool.get('architecture')} kernels, "
                            f"not {wanted['OPENBLAS_CORETYPE']}")
    if "NPY_ENABLE_CPU_FEATURES" in wanted and __cpu_features__.get("X86_V4"):
        problems.append("numpy's vector code uses AVX-512")
    return "; ".join(problems) or None


@dataclass
class Classroom:
    lesson: str
    master: str
    working_dir: Path
    datasets_dir: Path
    mlflow_tracking_uri: str
    spark: object = field(repr=False)

    def summary(self) -> str:
        version = self.spark.version
        mlflow = self.mlflow_tracking_uri
        if mlflow.startswith("sqlite:///"):
            mlflow = display_path(mlflow[len("sqlite:///"):])
        return "\n".join(
            [
                f"Classroom ready for {self.lesson}",
                f"  spark        : Apache Spark {version} with Delta Lake, master {self.master}",
                f"  working_dir  : {display_path(self.working_dir)}",
                f"  datasets_dir : {display_path(self.datasets_dir)}",
                f"  mlflow store : {mlflow}",
            ]
        )


def setup(lesson: str, datasets: tuple[str, ...] | list[str] = ()) -> Classroom:
    """Prepare everything a notebook needs; see the module docstring for the variables."""
    master = course_master()
    check_master_reachable(master)
    check_java()
    datasets_dir = datasets_root()
    require_datasets(datasets, datasets_dir)
    working_dir = claim_working_dir(lesson)
    spark = start_session(f"course-{lesson}", master, working_dir,
                          working_dir.parent / f"spark-{working_dir.name}.log")
    spark.sparkContext.setLogLevel("ERROR")
    unpinned = numeric_pin_problem()
    if unpinned:  # numpy was loaded before the set-up cell pinned it (see includes/runtime/numeric.py)
        warnings.warn(f"{unpinned}, so the last digits of some results may differ from the stored "
                      "outputs: restart the kernel and run the set-up cell first.", stacklevel=2)
    spark.sparkContext.setCheckpointDir(str(working_dir / "checkpoints"))
    spark.catalog.clearCache()

    uri = mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # also seen by Spark's Python workers
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with warnings.catch_warnings():
        # mlflow imports tqdm.auto, which warns when ipywidgets is absent; bars are off anyway
        warnings.filterwarnings("ignore", message="IProgress not found")
        import mlflow
    mlflow.set_tracking_uri(uri)
    # MLflow's INFO lines (database creation and migration, ...) carry timestamps and depend on
    # the store's history; warnings and errors still show.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # ipykernel sends what a cell prints to stdout and to stderr in batches, each stream on its own
    # schedule, so a cell that prints to both (MLflow's "Created version '1' ..." on stderr, then the
    # lesson's print) showed them in either order. Flushing one stream before the other is written
    # keeps the order in which they were written, and the stored outputs reproducible.
    for stream in (sys.stdout, sys.stderr):
        write_through(stream)
    # PySpark logs every failing DataFrame expression as a timestamped JSON line on stderr before
    # raising the same error; the exception the learner sees says it all.
    logging.getLogger("DataFrameQueryContextLogger").setLevel(logging.CRITICAL)

    return Classroom(
        lesson=lesson,
        master=master,
        working_dir=working_dir,
        datasets_dir=datasets_dir,
        mlflow_tracking_uri=uri,
        spark=spark,
    )
