"""Notebooks run side by side.

nbval runs every notebook once, alone in its kernel (seven of them on a real standalone cluster:
pytest.ini's course_cluster_notebooks, tests/course_plugin.py). What that run cannot show is
what these tests execute notebooks again for; they pick the shortest notebooks that prove it.
"""

import re
import threading
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
# ML01 writes Delta tables into its working directory (22 s alone on the reference machine)
TWICE = ROOT / "notebooks" / "ML01_Data_Cleansing.ipynb"


@pytest.mark.slow
def test_same_notebook_twice_at_once(notebook_runs):
    """Two kernels run the same lesson at the same time (nbval runs it once, alone): each claims
    its own working directory (<work root>/ML01 and <work root>/ML01-<pid>), so neither sees or
    deletes the other's Delta tables, and both produce their results. Both use this test's own work
    root and MLflow store, not nbval's (the notebook_runs fixture). Re-running a notebook over the state of
    an earlier run is what nbval's own run does after `make outputs`; claiming and releasing the
    directories is unit-tested in test_classroom.py."""
    results = [None, None]

    def run(slot):
        results[slot] = notebook_runs(TWICE)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    for result in results:
        assert result is not None and result.ok, result and result.error
    dirs, stores = set(), set()
    for result in results:
        setup_cell = next(c for c in result.notebook.cells if c.cell_type == "code")
        lines = "".join(o.get("text", "") for o in setup_cell.outputs).splitlines()
        dirs.add(Path(next(line for line in lines if "working_dir" in line).split(":", 1)[1].strip()))
        stores.add(next(line for line in lines if "mlflow store" in line).split(":", 1)[1].strip())
    names = sorted(d.name for d in dirs)
    assert len(dirs) == 2 and names[0] == "ML01" and re.fullmatch(r"ML01-\d+", names[1]), dirs
    assert len({d.parent for d in dirs}) == 1 and "notebook-runs" in str(dirs.pop()), "not nbval's work/"
    assert len(stores) == 1, stores
    store = stores.pop()
    assert "notebook-runs" in store and store.endswith("mlflow.db"), f"not the course's store: {store}"
