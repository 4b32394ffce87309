import os
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



@pytest.fixture(scope="module")
def spark():
    """A plain local Spark session for unit tests (no Delta): local[2], two shuffle partitions, no
    console progress; getOrCreate reuses the one another test module of this process started. A
    module that needs other settings defines its own ``spark`` fixture."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    options = {"spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "2"}
    return SparkSession.builder.master("local[2]").appName("course-unit-tests").config(map=options).getOrCreate()


def run_until_a_cell_fails(first_cell: str) -> str:
    """Execute a notebook as a lesson whose later cell fails: ``first_cell`` (which starts something
    and prints what to look for afterwards), then a cell that raises. nbclient stops there and shuts
    the kernel down, with no cleanup cell run. Returns the first cell's printed text."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(COURSE_ROOT)!r})\n" + first_cell),
        nbformat.v4.new_code_cell("raise RuntimeError('a lesson cell fails')"),
    ])
    with pytest.raises(CellExecutionError, match="a lesson cell fails"):
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb.cells[0].outputs[0]["text"]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs: it exists and is not a zombie (a zombie has exited and only
    waits for its parent to collect it). ``/proc/<pid>/stat`` reads ``pid (command) state ...``, and
    the command may itself contain ") ", so the state is what follows the *last* ") "."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # it exited and was collected since os.kill
        return False
    except OSError:  # no /proc/<pid>/stat to read: it exists, which is all we can tell
        return True
    return stat.rsplit(") ", 1)[1][0] != "Z"


# Files whose tests are independent runs of whole notebooks (a minute or more each, no module-scoped
# state): `make test` hands them to the workers one test at a time, so both workers share them.
SCHEDULED_PER_TEST = ("tests/test_course_runs.py",)


# Each notebook's seconds in the committed `make course` record: nbval's notebooks are handed out
# longest first (after the test files, which keep collection order), so the suite does not end with
# one worker running a long notebook while the other has nothing left.
COURSE_TIMES = COURSE_ROOT / "benchmarks" / "results" / "course-times.json"


def work_order(scopes: list[str], seconds: dict[str, float]) -> list[str]:
    """``scopes`` (units of work, in collection order) in the order `make test` hands them out: every
    scope that is not a notebook first, in collection order, then the notebooks, longest first
    (``seconds`` by file stem; an unknown notebook counts as the longest, it may be new and slow)."""
    def key(scope: str):
        path = Path(scope.split("::", 1)[0])
        if path.suffix != ".ipynb":
            return (0, 0.0)
        return (1, -seconds.get(path.stem, float("inf")))

    return sorted(scopes, key=key)  # stable: ties keep collection order


def course_seconds() -> dict[str, float]:
    import json

    try:
        return json.loads(COURSE_TIMES.read_text())["notebooks"]
    except (OSError, ValueError, KeyError):
        return {}


def pytest_xdist_make_scheduler(config, log):
    """The scheduler of `make test` (`pytest -n 2 --dist loadscope --no-loadscope-reorder`).

    Every file is one unit of work, as with `--dist loadfile`: the cells of a notebook must run
    in order in one kernel (nbval), and a module's fixtures run once. Only the files in
    SCHEDULED_PER_TEST are split into single tests (each an independent whole-notebook run).
    The units are handed out in :func:`work_order`. (`--dist loadgroup` with xdist_group marks
    cannot do this here: pytest 9 no longer lets xdist 3.8 rename the nodeids, so the marks are
    ignored and every test becomes its own unit, nbval cells included.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SCHEDULED_PER_TEST else path

        def schedule(self) -> None:
            # The queue is reordered after the first units went out (the first scopes of the
            # collection, test files, which work_order keeps first anyway): a worker reports its
            # tests by their index in its own collection, so the collection itself keeps its order.
            first = self.collection is None
            super().schedule()
            if first and self.workqueue:
                from collections import OrderedDict

                order = work_order(list(self.workqueue), course_seconds())
                self.workqueue = OrderedDict((scope, self.workqueue[scope]) for scope in order)

    return CourseScheduling(config, log)
