"""Notebooks run again and side by side, and on a real standalone cluster."""

import os
import threading
from pathlib import Path

import pytest

from includes.tools.cluster import LocalCluster
from includes.tools.runner import execute

ROOT = Path(__file__).resolve().parent.parent
ML00A = ROOT / "notebooks" / "ML00a_Spark_Review.ipynb"
ML00B = ROOT / "notebooks" / "ML00b_Delta_Lake_Review.ipynb"


@pytest.mark.slow
def test_same_notebook_twice_at_once():
    """Two kernels run the Delta lesson at the same time: each claims its own working directory
    (work/ML00b and work/ML00b-<pid>), so neither sees the other's tables. Running a notebook
    again over the state of an earlier run is covered by nbval, which runs it once more; claiming
    and releasing the directories is unit-tested in test_classroom.py."""
    results = [None, None]

    def run(slot):
        results[slot] = execute(ML00B)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    for result in results:
        assert result is not None and result.ok, result and result.error


@pytest.mark.cluster
@pytest.mark.timeout(1800)  # a guard against hangs: 2 lessons took 1151 s at load 9
def test_lessons_run_on_a_standalone_cluster(tmp_path):
    with LocalCluster(cores=2, memory="4g", workdir=tmp_path / "cluster") as cluster:
        env = dict(os.environ, COURSE_SPARK_MASTER=cluster.url)
        for notebook in (ML00A, ML00B):
            result = execute(notebook, env=env)
            assert result.ok, f"{notebook.name} on {cluster.url}: {result.error}"
            setup_cell = next(c for c in result.notebook.cells if c.cell_type == "code")
            setup_output = "".join(o.get("text", "") for o in setup_cell.outputs)
            assert f"master {cluster.url}" in setup_output
        status = cluster.status()
        apps = {app["name"] for app in status["activeapps"] + status["completedapps"]}
        assert {"course-ML00a", "course-ML00b"} <= apps, apps
        assert any(w["state"] == "ALIVE" for w in status["workers"])
