"""Unit tests of includes.classroom helpers (one of them starts a JVM)."""
import os
import subprocess
import sys

from includes import classroom
from includes.classroom import claim_working_dir, display_path, error_condition


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
    inside = classroom.COURSE_ROOT / "work" / "MLX" / "table"
    assert display_path(inside) == os.path.join("work", "MLX", "table")
    assert display_path("/elsewhere/x") == "/elsewhere/x"


def test_every_course_jvm_gets_the_reproducible_vector_width(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DRIVER_JAVA_OPTIONS", "-XX:MaxVectorSize=64 -Xss4m")
    local = classroom._session_builder("MLX", "local[2]", tmp_path)._options
    # the course's options first, so that the user's own (here a wider vector) win
    assert local["spark.driver.extraJavaOptions"] == "-XX:MaxVectorSize=32 -XX:MaxVectorSize=64 -Xss4m"
    monkeypatch.delenv("COURSE_DRIVER_JAVA_OPTIONS")
    local = classroom._session_builder("MLX", "local[2]", tmp_path)._options
    assert local["spark.driver.extraJavaOptions"] == "-XX:MaxVectorSize=32 -XX:+UseParallelGC"
    cluster = classroom._session_builder("MLX", "spark://somewhere:7077", tmp_path)._options
    assert cluster["spark.driver.extraJavaOptions"] == classroom.REPRODUCIBLE_JAVA_OPTIONS
    assert cluster["spark.executor.extraJavaOptions"] == classroom.REPRODUCIBLE_JAVA_OPTIONS


SPECIES_PROBE = """
from includes import classroom
jvm = classroom.setup("MLX").spark._jvm
print(jvm.jdk.incubator.vector.DoubleVector.SPECIES_PREFERRED.length(),
      jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName())
"""


def test_spark_blas_adds_four_lanes_even_on_an_avx512_machine(tmp_path):
    """On an AVX-512 CPU the JVM would pick 8 lanes, and ML05's stored RMSE 220.49 became 220.47."""
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DRIVER_JAVA_OPTIONS"}
    env.update(COURSE_SPARK_MASTER="local[1]", COURSE_WORK_ROOT=str(tmp_path / "work"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    probe = subprocess.run([sys.executable, "-c", SPECIES_PROBE], cwd=classroom.COURSE_ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.split() == ["4", "VectorBLAS"]
