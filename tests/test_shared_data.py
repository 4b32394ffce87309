"""The shared Delta copy of the clean listings, and MLflow experiments that start clean."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from includes.airbnb import FIRST_COMMIT, SF_CLEAN_DELTA_NAME, SHARED_DIR_NAME

ROOT = Path(__file__).resolve().parent.parent

MAKE_COPY = """
import json, sys
sys.path.insert(0, {root!r})
from includes.classroom import _session_builder, _launch_jvm
from includes.airbnb import sf_clean_delta
from pathlib import Path
work = Path(sys.argv[1])
builder = _session_builder("test-shared", "local[1]", work)
_launch_jvm(builder, work / f"spark-{{sys.argv[2]}}.log")
spark = builder.getOrCreate()
path = sf_clean_delta(spark, root=work)
df = spark.read.format("delta").load(path)
print(json.dumps({{"path": path, "rows": df.count(), "columns": len(df.columns)}}))
"""


@pytest.mark.slow
def test_two_notebooks_asking_at_once_get_one_complete_copy(tmp_path):
    from includes.datasets import is_installed

    if not is_installed("airbnb-sf"):
        pytest.skip("airbnb-sf is not installed (make setup)")
    script = MAKE_COPY.format(root=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    table = tmp_path / SHARED_DIR_NAME / SF_CLEAN_DELTA_NAME
    assert {r["path"] for r in results} == {str(table)}
    assert all(r["rows"] == 7146 and r["columns"] == 34 for r in results)
    assert [p.name for p in (table / "_delta_log").glob("*.json")] == [FIRST_COMMIT]  # written once
    assert not list((tmp_path / SHARED_DIR_NAME).glob(".staging-*"))


def test_fresh_experiment_forgets_earlier_runs_and_models(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    from includes.tracking import fresh_experiment, fresh_registered_model

    experiment = fresh_experiment("TEST_fresh")
    with mlflow.start_run():
        mlflow.log_metric("rmse", 1.0)
    assert len(mlflow.search_runs([experiment.experiment_id])) == 1
    again = fresh_experiment("TEST_fresh")
    assert again.experiment_id == experiment.experiment_id
    assert len(mlflow.search_runs([again.experiment_id])) == 0

    client = mlflow.MlflowClient()
    client.create_registered_model("TEST_model")
    fresh_registered_model("TEST_model")
    assert client.search_registered_models(filter_string="name = 'TEST_model'") == []
    fresh_registered_model("TEST_model")  # absent: no error
