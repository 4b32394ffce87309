"""Unit tests of includes.classroom helpers that need no JVM."""
import os

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
