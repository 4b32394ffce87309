"""The one way the course starts Spark: :func:`start_session` (Spark with Delta Lake).

The set-up cell, the set-up's own check (``python -m includes.runtime.spark check``), the tests
and the benchmarks all start their sessions here, so every course JVM gets the same options.

Delta Lake's jars: ``delta-spark``'s pip helper asks Spark to resolve
``io.delta:delta-spark_<spark line>_2.13:<version>`` from Maven Central (Ivy) at every start.
``make setup`` resolves them once and records the jar files in the virtual environment
(:data:`JARS_FILE`); later sessions start from those local files (``spark.jars``), which skips
Ivy's resolution (and its shared cache lock when two notebooks start at once). On a standalone
cluster the driver serves the same files to the executors. Without the record (another
environment, or the Delta version changed) the session falls back to resolving the package.

The driver's class archive: a JVM spends seconds of CPU loading and verifying Spark's classes at
every start. ``make setup`` also runs one representative session (Delta, SQL, MLlib, Arrow) whose
JVM dumps the classes it loaded into :data:`CLASS_ARCHIVE` (the JDK's class data sharing,
``-XX:ArchiveClassesAtExit``); every later driver maps that file (``-XX:SharedArchiveFile``)
instead of loading them again. A missing or stale archive (another JDK) only costs the time: the
JVM then ignores it and loads the classes as usual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

# Spark's BLAS (dev.ludovic.netlib's VectorBLAS) runs on the JDK Vector API, whose vectors are as
# wide as the CPU allows: 4 doubles with AVX2, 8 with AVX-512. A dot product then adds its terms in
# another order, and results differ in the last bits from one x86 machine to the next; ill-conditioned
# fits amplify that into printed digits (ML05's all-features regression printed RMSE 220.47 on one
# machine and 220.49 on another). Capping vectors at 256 bits makes every x86-64 machine with AVX2 or AVX-512
# compute exactly the numbers stored in the notebooks.
REPRODUCIBLE_JAVA_OPTIONS = "-XX:MaxVectorSize=32"
# A course JVM lives for one lesson, and half of its CPU went to the JIT compilers: C2 alone took
# 23 of ML07's 55 JVM CPU-seconds, recompiling Spark's planning code that runs a few thousand
# times. Raising C2's (tier 4) thresholds 30-fold leaves that code to C1 and still gives C2 the
# loops that run millions of times (ALS, tree induction). Measured alone, CPU-seconds per notebook
# (wall about the same): ML07 62 -> 43-45, ML08 105 -> 93, ML16 177 -> 160; C1 only
# (-XX:TieredStopAtLevel=1) costs ML16 253.
SHORT_LIVED_JIT_OPTIONS = ("-XX:Tier4InvocationThreshold=150000 -XX:Tier4MinInvocationThreshold=18000 "
                           "-XX:Tier4CompileThreshold=450000 -XX:Tier4BackEdgeThreshold=1200000")
# what every course JVM gets, driver and executors
COURSE_JVM_OPTIONS = f"{REPRODUCIBLE_JAVA_OPTIONS} {SHORT_LIVED_JIT_OPTIONS}"
DEFAULT_DRIVER_JAVA_OPTIONS = "-XX:+UseParallelGC"
DEFAULT_SHUFFLE_PARTITIONS = 8
# Locally, Spark's default parallelism is the core count: it decides how many partitions
# `parallelize`, `createDataFrame` from pandas and file reads make, and with them the per-partition
# random streams of randomSplit and sample, and the order of every sum. Fixed at the reference
# machine's 2, a laptop with 8 cores (local[*] = local[8]) prints the stored numbers too; its tasks
# still run on all cores.
LOCAL_DEFAULT_PARALLELISM = 2
JARS_FILE = Path(sys.prefix) / "course-delta-jars.txt"
CLASS_ARCHIVE = Path(sys.prefix) / "course-spark-classes.jsa"


def delta_package() -> str:
    """The Maven coordinate delta-spark's pip helper asks for (it follows the pyspark line)."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    # a fresh builder (not SparkSession.builder, which the session's options go to)
    return configure_spark_with_delta_pip(SparkSession.Builder())._options["spark.jars.packages"]


def recorded_jars(package: str, jars_file: Path | None = None) -> list[str] | None:
    """The local jar files recorded for ``package`` by ``make setup`` (in :data:`JARS_FILE` unless
    ``jars_file`` is given), or None when the record is absent, stale or names a missing file."""
    try:
        lines = (JARS_FILE if jars_file is None else jars_file).read_text(encoding="utf-8").split("\n")
    except OSError:
        return None
    if not lines or lines[0] != package:
        return None
    jars = [line for line in lines[1:] if line]
    if not jars or not all(Path(urlparse(jar).path).is_file() for jar in jars):
        return None
    return jars


def session_options(app_name: str, master: str, working_dir: Path, jars: list[str] | None = None,
                    archive_to: Path | None = None) -> dict[str, str]:
    """Every Spark option of a course session (see :mod:`includes.runtime.classroom` for the variables).

    The driver maps :data:`CLASS_ARCHIVE` if it exists; ``archive_to`` instead makes it dump the
    classes it loads into that file when it exits (:func:`write_class_archive`)."""
    local = master.startswith("local")
    # The course's datasets are the same few megabytes on a cluster as on a laptop, so the
    # small-data settings below hold for every master; COURSE_SHUFFLE_PARTITIONS raises them.
    shuffle = os.environ.get("COURSE_SHUFFLE_PARTITIONS") or str(DEFAULT_SHUFFLE_PARTITIONS)
    options = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.warehouse.dir": str(Path(working_dir) / "spark-warehouse"),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if not jars:
        options["spark.jars.packages"] = delta_package()
    elif not local:
        # for the executors, which the driver serves them to; the driver itself has them on its
        # class path (driver_class_path)
        options["spark.jars"] = ",".join(jars)
    # Small data: Spark's defaults (200 shuffle partitions, 50 partitions for Delta's log replay,
    # 10000 tasks for the file listing VACUUM runs) cost minutes in task overhead, locally and on
    # a standalone cluster alike.
    options["spark.sql.shuffle.partitions"] = shuffle
    options["spark.databricks.delta.snapshotPartitions"] = shuffle
    options["spark.sql.sources.parallelPartitionDiscovery.parallelism"] = shuffle
    driver_java_options = COURSE_JVM_OPTIONS
    if local:
        options["spark.default.parallelism"] = str(LOCAL_DEFAULT_PARALLELISM)
        options["spark.driver.memory"] = os.environ.get("COURSE_DRIVER_MEMORY", "4g")
        # The throughput GC suits short-lived course JVMs. The JIT stays at its default: limiting it
        # to C1 (-XX:TieredStopAtLevel=1) saved ~4 s of warm-up but made long JVM computations 2x
        # slower (ALS rank 50: 13.9 s vs 7.0 s; ML16L 152 s vs 100 s, on 2 cores).
        own = os.environ.get("COURSE_DRIVER_JAVA_OPTIONS", DEFAULT_DRIVER_JAVA_OPTIONS)
        driver_java_options = f"{driver_java_options} {own}".strip()
    else:
        options["spark.executor.extraJavaOptions"] = COURSE_JVM_OPTIONS
    if archive_to is not None:
        driver_java_options = f"{driver_java_options} -XX:ArchiveClassesAtExit={archive_to}"
    elif CLASS_ARCHIVE.is_file():
        driver_java_options = f"{driver_java_options} -XX:SharedArchiveFile={CLASS_ARCHIVE}"
    options["spark.driver.extraJavaOptions"] = driver_java_options
    return options


def driver_class_path(jars: list[str] | None) -> str | None:
    """The driver's extra class path: Delta's recorded jars, after Spark's own (the launcher's
    ``SPARK_DIST_CLASSPATH``), or None without a record (Ivy then resolves the package).

    Through ``spark.jars`` a local session copied the jars (120 MB) into its scratch folder and
    loaded them with a second class loader, on every start. Appended to the class path they are
    read in place, and a class Spark ships itself still comes from Spark's jar, as with
    ``spark.jars``. The driver has the same class path on every master, so the class archive
    make setup writes locally fits a cluster's driver too; a cluster's executors get the jars
    through ``spark.jars`` (the driver serves them the files)."""
    if not jars:
        return None
    return os.pathsep.join(urlparse(jar).path for jar in jars)


def configure_python_workers() -> None:
    """Workers run the kernel's interpreter (else pandas UDFs fail with "No module named 'pandas'")."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable


def start_session(app_name: str, master: str, working_dir: os.PathLike | str, log_path: os.PathLike | str,
                  use_recorded_jars: bool = True, archive_to: Path | None = None):
    """Start (or reuse) this process's SparkSession with Delta Lake, the JVM's console output in ``log_path``.

    ipykernel captures everything written to the process's stdout/stderr, so without the log file
    the JVM's warnings and Ivy's dependency report would land in whichever cell runs at the time.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    configure_python_workers()
    jars = recorded_jars(delta_package()) if use_recorded_jars else None
    options = session_options(app_name, master, Path(working_dir), jars, archive_to)
    if SparkContext._gateway is None:
        conf = SparkConf()
        for key, value in options.items():
            conf.set(key, value)
        class_path = driver_class_path(jars)
        saved = os.environ.get("SPARK_DIST_CLASSPATH")
        if class_path:  # launch_gateway hands the JVM a copy of this process's environment
            os.environ["SPARK_DIST_CLASSPATH"] = class_path
        try:
            with open(log_path, "ab") as log:
                # Its own session: a kernel that is killed (its whole process group at once) still
                # closes the JVM's stdin, and the JVM then exits by itself and runs Spark's
                # shutdown hooks, which delete its scratch folders (/tmp/spark-*, blockmgr-*).
                gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": subprocess.STDOUT,
                                                             "start_new_session": True})
        finally:
            if class_path:
                if saved is None:
                    os.environ.pop("SPARK_DIST_CLASSPATH")
                else:
                    os.environ["SPARK_DIST_CLASSPATH"] = saved
        SparkContext._ensure_initialized(gateway=gateway, conf=conf)
    builder = SparkSession.builder
    for key, value in options.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def check(jars_file: Path | None = None) -> str:
    """The set-up's check: start Spark + Delta with Ivy's resolution, write and read a Delta table,
    record the resolved jar files for later sessions. Returns a one-line report."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "spark.log"
        try:
            spark = start_session("setup-check", "local[1]", tmp, log, use_recorded_jars=False)
        except Exception:
            if log.exists():
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        spark.range(3).write.format("delta").save(tmp + "/t")
        rows = spark.read.format("delta").load(tmp + "/t").count()
        if rows != 3:
            raise RuntimeError(f"a Delta table of 3 rows read back {rows} rows")
        jars = [jar for jar in spark.sparkContext.getConf().get("spark.jars", "").split(",") if jar]
        version, lanes, blas = spark.version, *blas_lanes(spark)
        spark.stop()
    package = delta_package()
    jars_file = JARS_FILE if jars_file is None else jars_file
    if jars:
        jars_file.write_text("\n".join([package, *jars]) + "\n", encoding="utf-8")
    return (f"Spark {version} with Delta Lake ({package}, {len(jars)} jars recorded in {jars_file.name}); "
            f"BLAS {blas}, {lanes} double lanes: OK")


def write_class_archive(archive: Path | None = None) -> str:
    """Run one representative course session (a Delta table written, read and aggregated, an MLlib
    pipeline fitted, a DataFrame to pandas through Arrow) in a driver that dumps the classes it
    loaded when it exits, and install the dump as ``archive`` (default :data:`CLASS_ARCHIVE`).
    The dump goes to a temporary name first: a half-written archive is never installed. Returns a
    one-line report."""
    from pyspark import SparkContext

    archive = CLASS_ARCHIVE if archive is None else Path(archive)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "spark.log"
        spark = start_session("setup-class-archive", "local[2]", tmp, log, archive_to=partial)
        from pyspark.ml import Pipeline
        from pyspark.ml.feature import StringIndexer, VectorAssembler
        from pyspark.ml.regression import LinearRegression
        from pyspark.sql import functions as F

        df = spark.range(200).select("id", (F.col("id") % 3).cast("string").alias("group"),
                                     (F.col("id") * 2.0 + 1).alias("label"))
        df.write.format("delta").save(tmp + "/t")
        table = spark.read.format("delta").load(tmp + "/t")
        table.groupBy("group").agg(F.avg("label")).orderBy("group").collect()
        Pipeline(stages=[StringIndexer(inputCol="group", outputCol="group_index"),
                         VectorAssembler(inputCols=["id", "group_index"], outputCol="features"),
                         LinearRegression()]).fit(table).transform(table).toPandas()
        gateway = SparkContext._gateway
        spark.stop()
        # the JVM exits when its stdin closes and writes the archive on its way out
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=300)
        SparkContext._gateway = SparkContext._jvm = None
    if not partial.is_file():
        raise RuntimeError("the driver wrote no class archive; sessions start without one")
    # a truncated archive (a full disk during the dump) crashes every JVM that maps it, while a whole
    # one is at worst ignored: a JVM that maps it must start (here without Spark's class path)
    java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    with tempfile.TemporaryDirectory() as tmp:  # where a crashing JVM leaves its report
        probe = subprocess.run([str(java), f"-XX:SharedArchiveFile={partial}", "-Xshare:auto", "-version"],
                               cwd=tmp, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        partial.unlink()
        raise RuntimeError(f"the class archive the driver wrote is damaged (java exit {probe.returncode}); "
                           "sessions start without one")
    partial.replace(archive)
    return f"Spark driver's class archive: {archive.name}, {archive.stat().st_size / 2 ** 20:.0f} MB"


def blas_lanes(spark) -> tuple[int, str]:
    """How many doubles the driver's Vector API adds at once, and Spark's BLAS implementation."""
    jvm = spark._jvm
    return (int(jvm.jdk.incubator.vector.DoubleVector.SPECIES_PREFERRED.length()),
            str(jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m includes.runtime.spark")
    parser.add_argument("command", choices=["check", "archive"])
    parser.add_argument("--jars-file", type=Path, help=f"where to record Delta's jar files (default {JARS_FILE})")
    parser.add_argument("--archive", type=Path, help=f"where to write the driver's class archive (default {CLASS_ARCHIVE})")
    args = parser.parse_args(argv)
    print(check(args.jars_file) if args.command == "check" else write_class_archive(args.archive))
    return 0


if __name__ == "__main__":
    sys.exit(main())
