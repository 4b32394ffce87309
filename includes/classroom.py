"""The classroom: one call gives a notebook everything it needs.

``setup("ML00a")`` runs the preflight checks, creates (or reuses) the SparkSession with Delta
Lake, gives the lesson its own working directory, and points MLflow at the course's store.
Notebooks call it through ``includes/classroom_setup.py`` (the one setup cell).

Environment variables (all optional):

- ``COURSE_SPARK_MASTER``: ``local[*]`` (default), ``spark://HOST:7077`` for a standalone
  cluster, or ``sc://HOST:15002`` for a Spark Connect server.
- ``COURSE_WORK_ROOT``: where per-lesson working directories live (default ``<course>/work``).
  On a multi-machine cluster this must be a path every worker can read and write.
- ``COURSE_DATASETS_DIR``: where the datasets are installed (default ``<course>/datasets``).
- ``MLFLOW_TRACKING_URI``: an MLflow tracking server or store (default: the course's
  SQLite store ``<course>/mlflow/mlflow.db``).
- ``COURSE_SHUFFLE_PARTITIONS``: ``spark.sql.shuffle.partitions`` (default 8 locally).
- ``COURSE_DRIVER_MEMORY``: ``spark.driver.memory`` for local runs (default ``4g``).
- ``COURSE_DRIVER_JAVA_OPTIONS``: JVM options of the local driver (default: the parallel GC;
  set it empty for the JVM's defaults). They come after :data:`REPRODUCIBLE_JAVA_OPTIONS`,
  which every course JVM gets (driver and executors), so an option given here wins.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .preflight import CourseSetupError, check_java, check_master_reachable

COURSE_ROOT = Path(__file__).resolve().parent.parent
MASTER_ENV = "COURSE_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
DEFAULT_DRIVER_JAVA_OPTIONS = "-XX:+UseParallelGC"
# Spark's BLAS (dev.ludovic.netlib's VectorBLAS) runs on the JDK Vector API, whose vectors are as
# wide as the CPU allows: 4 doubles with AVX2, 8 with AVX-512. A dot product then adds its terms in
# another order, and results differ in the last bits from one x86 machine to the next; ill-conditioned
# fits amplify that into printed digits (ML05's all-features regression: RMSE 220.49 with AVX2,
# 220.47 with AVX-512). Capping vectors at 256 bits makes every x86-64 machine with AVX2 or AVX-512
# compute exactly the numbers stored in the notebooks.
REPRODUCIBLE_JAVA_OPTIONS = "-XX:MaxVectorSize=32"
DEFAULT_SHUFFLE_PARTITIONS = 8


def course_master() -> str:
    return os.environ.get(MASTER_ENV, "").strip() or DEFAULT_MASTER


def datasets_root() -> Path:
    return Path(os.environ.get("COURSE_DATASETS_DIR") or COURSE_ROOT / "datasets").resolve()


def work_root() -> Path:
    return Path(os.environ.get("COURSE_WORK_ROOT") or COURSE_ROOT / "work").resolve()


def mlflow_store_dir() -> Path:
    return COURSE_ROOT / "mlflow"


def mlflow_tracking_uri() -> str:
    """The tracking URI every notebook uses: $MLFLOW_TRACKING_URI or the course's SQLite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{mlflow_store_dir() / 'mlflow.db'}"


def display_path(path: os.PathLike | str) -> str:
    """A path as a learner should read it: relative to the course root when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(COURSE_ROOT))
    except ValueError:
        return str(path)


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
        lock_path = root / f".{name}.lock"
        if name in _held_locks:  # re-run in the same process: we already own it
            handle = _held_locks[name]
        else:
            handle = open(lock_path, "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
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


def _configure_python_workers() -> None:
    # Workers must run the kernel's interpreter, or pandas UDFs fail with
    # "No module named 'pandas'" when another python is found first on PATH.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable


def _session_builder(lesson: str, master: str, working_dir: Path):
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(f"course-{lesson}")
    local = master.startswith("local")
    shuffle = os.environ.get("COURSE_SHUFFLE_PARTITIONS") or (str(DEFAULT_SHUFFLE_PARTITIONS) if local else None)
    options = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.warehouse.dir": str(working_dir / "spark-warehouse"),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if shuffle:
        # Small data on few cores: the defaults (200 shuffle partitions, 50 partitions for Delta's
        # log replay, 10000 tasks for the file listing VACUUM runs) cost minutes in task overhead.
        options["spark.sql.shuffle.partitions"] = shuffle
        options["spark.databricks.delta.snapshotPartitions"] = shuffle
        options["spark.sql.sources.parallelPartitionDiscovery.parallelism"] = shuffle
    driver_java_options = REPRODUCIBLE_JAVA_OPTIONS
    if local:
        options["spark.driver.memory"] = os.environ.get("COURSE_DRIVER_MEMORY", "4g")
        # The throughput GC suits short-lived course JVMs. The JIT stays at its default: limiting it
        # to C1 (-XX:TieredStopAtLevel=1) saved ~4 s of warm-up but made long JVM computations 2x
        # slower (ALS rank 50: 13.9 s vs 7.0 s; ML16L 152 s vs 100 s; ML03 60 s vs 61 s, ML00b
        # 103 s vs 97 s, on 2 cores).
        own = os.environ.get("COURSE_DRIVER_JAVA_OPTIONS", DEFAULT_DRIVER_JAVA_OPTIONS)
        driver_java_options = f"{driver_java_options} {own}".strip()
    else:
        options["spark.executor.extraJavaOptions"] = REPRODUCIBLE_JAVA_OPTIONS
    options["spark.driver.extraJavaOptions"] = driver_java_options
    for key, value in options.items():
        builder = builder.config(key, value)
    return configure_spark_with_delta_pip(builder)


def _launch_jvm(builder, log_path: Path) -> None:
    """Start the JVM with its console output going to a log file instead of the notebook.

    ipykernel captures everything written to the process's stdout/stderr, so without this the
    JVM's warnings and Ivy's dependency report would land in whichever cell runs at the time.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    conf = SparkConf()
    for key, value in builder._options.items():
        conf.set(key, value)
    log = open(log_path, "ab")
    gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": subprocess.STDOUT})
    SparkContext._ensure_initialized(gateway=gateway, conf=conf)


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
    from . import datasets as course_datasets

    master = course_master()
    check_master_reachable(master)
    if not master.startswith("sc://"):
        check_java()
    datasets_dir = datasets_root()
    course_datasets.require(datasets, datasets_dir)
    working_dir = claim_working_dir(lesson)
    _configure_python_workers()

    if master.startswith("sc://"):
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.remote(master).getOrCreate()
    else:
        builder = _session_builder(lesson, master, working_dir)
        _launch_jvm(builder, working_dir.parent / f"spark-{working_dir.name}.log")
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
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
