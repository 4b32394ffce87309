"""Unit tests of includes.runtime.classroom helpers (one of them starts a JVM)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from includes.paths import COURSE_ROOT, display_path
from includes.runtime.classroom import claim_working_dir, error_condition
from includes.runtime.spark import (REPRODUCIBLE_JAVA_OPTIONS, SHORT_LIVED_JIT_OPTIONS, delta_package,
                                    driver_class_path, recorded_jars, session_options)
from tests.conftest import pid_alive


class FakeJava:
    """Stands in for a py4j JVM exception object."""

    def __init__(self, condition=None, cause=None, throwable=True):
        self._condition, self._cause = condition, cause
        if throwable:
            self.getCondition = lambda: self._condition

    def getCause(self):
        return self._cause


class FakePy4JError(Exception):
    def __init__(self, java):
        super().__init__("An error occurred while calling o88.save.")
        self.java_exception = java


class Converted(Exception):
    def getCondition(self):
        return "DELTA_FAILED_TO_MERGE_FIELDS"


def test_converted_error_gives_its_own_condition():
    assert error_condition(Converted()) == "DELTA_FAILED_TO_MERGE_FIELDS"


def test_job_failure_gives_the_innermost_reason():
    java = FakeJava("TASK_WRITE_FAILED", FakeJava(None, FakeJava("DIVIDE_BY_ZERO"), throwable=False))
    assert error_condition(FakePy4JError(java)) == "DIVIDE_BY_ZERO"


def test_error_without_condition_falls_back_to_class_name():
    assert error_condition(FakePy4JError(FakeJava(None, throwable=False))) == "FakePy4JError"
    assert error_condition(ValueError("x")) == "ValueError"


def test_working_dirs_are_reset_and_never_shared(tmp_path):
    first = claim_working_dir("MLX", root=tmp_path)
    (first / "leftover").write_text("from an earlier run")
    again = claim_working_dir("MLX", root=tmp_path)
    assert again == first and not (again / "leftover").exists()


def test_display_path_is_relative_to_the_course_root():
    inside = COURSE_ROOT / "work" / "MLX" / "table"
    assert display_path(inside) == os.path.join("work", "MLX", "table")
    assert display_path("/elsewhere/x") == "/elsewhere/x"


def test_every_course_jvm_gets_the_reproducible_vector_width(tmp_path, monkeypatch):
    from includes.runtime import spark

    monkeypatch.setattr(spark, "CLASS_ARCHIVE", tmp_path / "absent.jsa")  # its option: the test below
    monkeypatch.setenv("COURSE_DRIVER_JAVA_OPTIONS", "-XX:MaxVectorSize=64 -Xss4m")
    local = session_options("MLX", "local[2]", tmp_path, jars=["x.jar"])
    # the course's options first, so that the user's own (here a wider vector) win
    assert local["spark.driver.extraJavaOptions"] == f"-XX:MaxVectorSize=32 {SHORT_LIVED_JIT_OPTIONS} -XX:MaxVectorSize=64 -Xss4m"
    monkeypatch.delenv("COURSE_DRIVER_JAVA_OPTIONS")
    local = session_options("MLX", "local[2]", tmp_path, jars=["x.jar"])
    assert local["spark.driver.extraJavaOptions"] == f"-XX:MaxVectorSize=32 {SHORT_LIVED_JIT_OPTIONS} -XX:+UseParallelGC"
    cluster = session_options("MLX", "spark://somewhere:7077", tmp_path, jars=["x.jar"])
    assert cluster["spark.driver.extraJavaOptions"] == f"{REPRODUCIBLE_JAVA_OPTIONS} {SHORT_LIVED_JIT_OPTIONS}"
    # locally the partition count does not follow the core count (a cluster keeps its own)
    assert session_options("MLX", "local[*]", tmp_path, jars=["x.jar"])["spark.default.parallelism"] == "2"
    assert "spark.default.parallelism" not in cluster
    assert cluster["spark.executor.extraJavaOptions"] == f"{REPRODUCIBLE_JAVA_OPTIONS} {SHORT_LIVED_JIT_OPTIONS}"


def test_small_data_partition_counts_hold_on_every_master(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_SHUFFLE_PARTITIONS", raising=False)
    keys = ("spark.sql.shuffle.partitions", "spark.databricks.delta.snapshotPartitions",
            "spark.sql.sources.parallelPartitionDiscovery.parallelism")
    for master in ("local[*]", "local[2]", "spark://somewhere:7077"):
        options = session_options("MLX", master, tmp_path, jars=["x.jar"])
        assert [options[key] for key in keys] == ["8"] * 3, master
    monkeypatch.setenv("COURSE_SHUFFLE_PARTITIONS", "64")
    options = session_options("MLX", "spark://somewhere:7077", tmp_path, jars=["x.jar"])
    assert [options[key] for key in keys] == ["64"] * 3


def test_recorded_jars_are_used_only_when_current_and_present(tmp_path):
    jar = tmp_path / "delta.jar"
    jar.write_bytes(b"PK")
    record = tmp_path / "jars.txt"
    record.write_text(f"io.delta:delta-spark_4.2_2.13:4.4.0\nfile://{jar}\n")
    assert recorded_jars("io.delta:delta-spark_4.2_2.13:4.4.0", record) == [f"file://{jar}"]
    assert recorded_jars("io.delta:delta-spark_4.2_2.13:4.5.0", record) is None  # Delta upgraded
    # locally the driver reads them from its class path; a cluster's driver serves them to executors
    options = session_options("MLX", "local[1]", tmp_path, jars=[f"file://{jar}"])
    assert "spark.jars" not in options and "spark.jars.packages" not in options
    assert driver_class_path([f"file://{jar}", f"file://{jar}.2"]) == f"{jar}:{jar}.2"
    options = session_options("MLX", "spark://somewhere:7077", tmp_path, jars=[f"file://{jar}"])
    assert options["spark.jars"] == f"file://{jar}" and "spark.jars.packages" not in options
    assert driver_class_path(None) is None
    assert session_options("MLX", "local[1]", tmp_path)["spark.jars.packages"].startswith("io.delta:delta-spark_")
    jar.unlink()
    assert recorded_jars("io.delta:delta-spark_4.2_2.13:4.4.0", record) is None  # cache cleaned
    assert recorded_jars("io.delta:delta-spark_4.2_2.13:4.4.0", tmp_path / "absent.txt") is None


def test_setup_check_records_the_jars_and_spark_blas_adds_four_lanes(tmp_path):
    """`make setup`'s check: Spark + Delta start, the resolved jars are recorded, and the driver's
    BLAS adds 4 doubles at a time even on an AVX-512 CPU (where the JVM would pick 8 lanes and
    ML05's stored RMSE 220.47 changed in its last digits)."""
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DRIVER_JAVA_OPTIONS"}
    record = tmp_path / "jars.txt"
    probe = subprocess.run([sys.executable, "-m", "includes.runtime.spark", "check", "--jars-file", str(record)],
                           cwd=COURSE_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "BLAS VectorBLAS, 4 double lanes: OK" in probe.stdout, probe.stdout
    lines = record.read_text().split()
    assert lines[0] == delta_package() and len(lines) > 1
    assert recorded_jars(lines[0], record) == lines[1:]


def test_drivers_map_the_class_archive_when_there_is_one(tmp_path, monkeypatch):
    """Every driver, local or on a cluster, maps the class archive make setup wrote; without one
    it starts as before; the session that writes the archive does not map one."""
    from includes.runtime import spark

    archive = tmp_path / "classes.jsa"
    monkeypatch.setattr(spark, "CLASS_ARCHIVE", archive)
    for master in ("local[1]", "spark://somewhere:7077"):
        assert "SharedArchiveFile" not in session_options("MLX", master, tmp_path)["spark.driver.extraJavaOptions"]
    archive.write_bytes(b"archive")
    for master in ("local[1]", "spark://somewhere:7077"):
        options = session_options("MLX", master, tmp_path)
        assert options["spark.driver.extraJavaOptions"].endswith(f"-XX:SharedArchiveFile={archive}")
        assert "SharedArchiveFile" not in options.get("spark.executor.extraJavaOptions", "")
    dump = session_options("MLX", "local[2]", tmp_path, archive_to=tmp_path / "new.jsa")["spark.driver.extraJavaOptions"]
    assert dump.endswith(f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}") and "SharedArchiveFile" not in dump


def test_make_setup_wrote_a_class_archive_that_a_course_driver_maps(tmp_path):
    """make setup's class archive is whole and fits the course's driver: with -Xshare:on a JVM
    refuses to start (or crashes) when it cannot map the archive, so a session that starts and
    counts proves the driver runs on the archived classes."""
    from includes.runtime.spark import CLASS_ARCHIVE

    assert CLASS_ARCHIVE.is_file(), f"make setup wrote no class archive ({display_path(CLASS_ARCHIVE)}): run make setup"
    env = {**os.environ, "COURSE_DRIVER_JAVA_OPTIONS": "-XX:+UseParallelGC -Xshare:on"}
    code = ("import sys, tempfile; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
            "from includes.runtime.spark import start_session\n"
            "with tempfile.TemporaryDirectory() as tmp:\n"
            "    spark = start_session('archive-probe', 'local[1]', tmp, Path(tmp) / 'spark.log')\n"
            "    print('rows', spark.range(3).count(), spark.sparkContext.getConf().get('spark.driver.extraJavaOptions'))\n")
    probe = subprocess.run([sys.executable, "-c", code, str(COURSE_ROOT)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0 and "rows 3" in probe.stdout, probe.stdout[-2000:] + probe.stderr[-3000:]
    assert probe.stdout.strip().endswith(f"-Xshare:on -XX:SharedArchiveFile={CLASS_ARCHIVE}")


def test_a_killed_kernel_leaves_no_driver_jvm_or_spark_scratch_behind(tmp_path):
    """nbval and Jupyter stop a kernel by killing its whole process group. The driver JVM (in its
    own session) then sees its stdin close, exits by itself and deletes its scratch folder: it
    used to die with the kernel and leave /tmp/spark-* (with 120 MB of jars) after every notebook.
    Locally Delta's jars are on the driver's class path, not copied into that folder."""
    code = ("import os, signal, sys, tempfile; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
            "from includes.runtime.spark import start_session\n"
            "from pyspark import SparkContext, SparkFiles\n"
            "spark = start_session('kill-probe', 'local[1]', sys.argv[2], Path(sys.argv[2]) / 'spark.log')\n"
            "spark.range(3).write.format('delta').save(sys.argv[2] + '/table')\n"
            "files = Path(SparkFiles.getRootDirectory())\n"
            "print('rows', spark.read.format('delta').load(sys.argv[2] + '/table').count(), 'copied jars',\n"
            "      len(list(files.glob('*.jar'))), 'jvm', SparkContext._gateway.proc.pid, 'scratch', files.parent,\n"
            "      flush=True)\n"
            "os.killpg(0, signal.SIGKILL)\n")
    probe = subprocess.run([sys.executable, "-c", code, str(COURSE_ROOT), str(tmp_path)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, start_new_session=True)
    assert probe.returncode == -signal.SIGKILL and "rows 3 copied jars 0 jvm" in probe.stdout, \
        probe.stdout[-2000:] + probe.stderr[-3000:]
    words = probe.stdout.split()
    jvm, scratch = int(words[words.index("jvm") + 1]), Path(words[words.index("scratch") + 1])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (pid_alive(jvm) or scratch.exists()):
        time.sleep(0.2)
    assert not pid_alive(jvm), f"the driver JVM {jvm} outlived its killed kernel by 60 s"
    assert not scratch.exists(), f"the driver JVM left its scratch folder {scratch}"


def test_stdout_and_stderr_keep_the_order_they_were_written_in():
    """A cell that prints to both streams (MLflow's messages go to stderr) stores them in write
    order, in every cell after the set-up cell (IPython re-wraps the streams around each cell)."""
    import nbformat
    from nbclient import NotebookClient

    setup = (f"import sys; sys.path.insert(0, {str(COURSE_ROOT)!r})\n"
             "from includes.runtime.classroom import write_through\n"
             "write_through(sys.stdout); write_through(sys.stderr)")
    interleaved = "for i in range(20):\n    print('out', i)\n    print('err', i, file=sys.stderr)"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(interleaved),
                                         nbformat.v4.new_code_cell(interleaved)])
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    for cell in nb.cells[1:]:
        assert [o.name for o in cell.outputs] == ["stdout", "stderr"] * 20
        assert cell.outputs[1].text == "err 0\n" and cell.outputs[-2].text == "out 19\n"
