"""`make test` on two workers: notebooks stay in one kernel, the lab runs are shared.

A small project gets this repository's tests/conftest.py and is run with the xdist options of
the Makefile's test target: a notebook whose cells depend on each other must pass strict nbval
(its cells ran in order in one kernel), and the tests of a file listed in SCHEDULED_PER_TEST
must be spread over both workers.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def make_test_options() -> list[str]:
    """The xdist options of `make test`, read from the Makefile."""
    recipe = (ROOT / "Makefile").read_text()
    match = re.search(r"-m pytest (-n \d+ --dist \S+(?: --no-loadscope-reorder)?) ", recipe)
    assert match, "make test no longer runs pytest with -n N --dist MODE"
    return match.group(1).split()


def write_notebook(path: Path, seconds: float) -> None:
    cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})\nx += 1"),
        nbformat.v4.new_code_cell("print(x)"),
        nbformat.v4.new_code_cell("print(x * 10)"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    nbformat.write(notebook, path)


def test_notebooks_keep_one_kernel_and_lab_runs_are_shared(tmp_path):
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    # stands in for tests/test_course_runs.py: four independent tests that record their worker
    (tmp_path / "tests" / "test_course_runs.py").write_text(
        "import os, time\nimport pytest\n\n\n"
        "@pytest.mark.parametrize('n', range(4))\n"
        "def test_run(n):\n"
        "    time.sleep(1.5)\n"
        "    with open(os.path.join(os.path.dirname(__file__), 'workers.txt'), 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n")
    (tmp_path / "nbs").mkdir()
    for name in ("a", "b"):
        write_notebook(tmp_path / "nbs" / f"{name}.ipynb", seconds=0.5)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *make_test_options(), "tests", "--nbval", "nbs", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "12 passed" in proc.stdout, proc.stdout[-2000:]
    workers = (tmp_path / "tests" / "workers.txt").read_text().split()
    assert len(workers) == 4 and len(set(workers)) == 2, f"the four runs went to {workers}"


def test_notebooks_go_out_longest_first_after_the_test_files():
    from tests.conftest import work_order

    scopes = ["tests/test_a.py", "notebooks/A_x.ipynb", "tests/test_course_runs.py::test_one",
              "solutions/B_y.ipynb", "notebooks/C_z.ipynb", "tests/test_b.py", "notebooks/D_w.ipynb"]
    seconds = {"A_x": 30.0, "B_y": 90.0, "D_w": 30.0}
    assert work_order(scopes, seconds) == [
        "tests/test_a.py", "tests/test_course_runs.py::test_one", "tests/test_b.py",
        "notebooks/C_z.ipynb",  # not in the record: a new notebook counts as the longest
        "solutions/B_y.ipynb", "notebooks/A_x.ipynb", "notebooks/D_w.ipynb"]


def test_the_committed_course_record_times_every_notebook_the_suite_runs():
    from tests.conftest import course_seconds

    executed = {p.stem for folder in ("notebooks", "solutions") for p in (ROOT / folder).glob("*.ipynb")}
    assert set(course_seconds()) == executed
