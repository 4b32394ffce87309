import sys
from pathlib import Path

import pytest

COURSE_ROOT = Path(__file__).resolve().parent.parent
if str(COURSE_ROOT) not in sys.path:
    sys.path.insert(0, str(COURSE_ROOT))


@pytest.fixture
def fake_java(tmp_path):
    """Make an executable `java` that prints the given `-version` text; returns its JAVA_HOME."""

    def make(version_text: str, exit_code: int = 0) -> Path:
        home = tmp_path / "jdk"
        (home / "bin").mkdir(parents=True)
        java = home / "bin" / "java"
        java.write_text(f"#!/bin/sh\ncat >&2 <<'TXT'\n{version_text}\nTXT\nexit {exit_code}\n")
        java.chmod(0o755)
        return home

    return make



# Files whose tests are independent runs of whole notebooks (a minute or more each, no module-scoped
# state): `make test` hands them to the workers one test at a time, so both workers share them.
SCHEDULED_PER_TEST = ("tests/test_course_runs.py",)


def pytest_xdist_make_scheduler(config, log):
    """The scheduler of `make test` (`pytest -n 2 --dist loadscope --no-loadscope-reorder`).

    Every file is one unit of work, as with `--dist loadfile`: the cells of a notebook must run
    in order in one kernel (nbval), and a module's fixtures run once. Only the files in
    SCHEDULED_PER_TEST are split into single tests (each an independent whole-notebook run). (`--dist loadgroup` with
    xdist_group marks cannot do this here: pytest 9 no longer lets xdist 3.8 rename the
    nodeids, so the marks are ignored and every test becomes its own unit, nbval cells included.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SCHEDULED_PER_TEST else path

    return CourseScheduling(config, log)
