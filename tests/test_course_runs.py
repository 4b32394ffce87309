"""Notebooks run side by side, and on a real standalone cluster.

nbval runs every notebook once, locally, alone in its kernel. What that run cannot show is
what these tests execute notebooks again for; they pick the shortest notebooks that prove it.
"""

import os
import re
import threading
from pathlib import Path

import pytest

from includes.tools.cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
# ML01 writes Delta tables into its working directory (22 s alone on the reference machine)
TWICE = ROOT / "notebooks" / "ML01_Data_Cleansing.ipynb"
# ML00a: SparkContext, the RDD API, Python workers; ML06L: the shared Delta copy, MLflow runs,
# a registered model and its alias, a Spark-flavour model loaded back and scored by executors;
# ML09L: hyperopt's SparkTrials, each trial a Spark task fitting scikit-learn on an executor;
# ML11: xgboost.spark's barrier stage with num_workers=2 (it needs both worker cores at once);
# ML12: pandas UDFs and mlflow spark_udf scoring on executors; ML13: applyInPandas training, with
# MLflow runs and models logged from the executors; MLE06: joblibspark's backend, each scikit-learn
# fit of a GridSearchCV a Spark task on the cluster (with its stage-level resource profile)
ON_CLUSTER = tuple(ROOT / path for path in (
    "notebooks/ML00a_Spark_Review.ipynb", "solutions/ML06L_MLflow_Lab.ipynb", "solutions/ML09L_Hyperopt_Lab.ipynb",
    "notebooks/ML11_XGBoost.ipynb", "notebooks/ML12_Inference_with_Pandas_UDFs.ipynb",
    "notebooks/ML13_Training_with_Pandas_UDFs.ipynb", "notebooks/MLE06_Joblib_and_scikit_learn_at_Scale.ipynb"))


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


@pytest.mark.cluster
@pytest.mark.timeout(1800)  # a guard against hangs
def test_lessons_run_on_a_standalone_cluster(tmp_path, notebook_runs):
    """nbval runs every notebook on local[*]; this runs seven of them against a real standalone
    master and worker (COURSE_SPARK_MASTER): Delta's jars must reach the executors, Python
    workers and pandas conversions run there, MLflow's Spark-flavour model is scored by the
    cluster, SparkTrials' trials and XGBoost's barrier tasks run as executor tasks, pandas UDFs
    score and train scikit-learn models on the executors and log MLflow runs from there, and joblib's
    Spark backend runs scikit-learn's cross-validation fits as cluster tasks."""
    with LocalCluster(cores=2, memory="4g", workdir=tmp_path / "cluster") as cluster:
        env = dict(os.environ, COURSE_SPARK_MASTER=cluster.url)
        for notebook in ON_CLUSTER:
            result = notebook_runs(notebook, env=env)
            assert result.ok, f"{notebook.name} on {cluster.url}: {result.error}"
            setup_cell = next(c for c in result.notebook.cells if c.cell_type == "code")
            setup_output = "".join(o.get("text", "") for o in setup_cell.outputs)
            assert f"master {cluster.url}" in setup_output
        status = cluster.status()
        apps = {app["name"] for app in status["activeapps"] + status["completedapps"]}
        assert {f"course-{path.name.split('_')[0]}" for path in ON_CLUSTER} <= apps, apps
        assert any(w["state"] == "ALIVE" for w in status["workers"])
