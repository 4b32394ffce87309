"""The shared Delta copy of the clean listings, and MLflow experiments that start clean."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also run as a script: python tests/test_shared_data.py WORK NAME
    sys.path.insert(0, str(ROOT))

from includes.data.airbnb import FIRST_COMMIT, SF_CLEAN_DELTA_NAME, SHARED_DIR_NAME  # noqa: E402


def make_shared_copy(work: Path, name: str) -> None:  # pragma: no cover - runs in the subprocesses
    """What a notebook does: start a course session, ask for the shared copy, print what it got."""
    from includes.data.airbnb import sf_clean_delta
    from includes.runtime.spark import start_session

    spark = start_session("test-shared", "local[1]", work, work / f"spark-{name}.log")
    path = sf_clean_delta(spark, root=work)
    df = spark.read.format("delta").load(path)
    print(json.dumps({"path": path, "rows": df.count(), "columns": len(df.columns)}))


@pytest.mark.slow
def test_two_notebooks_asking_at_once_get_one_complete_copy(tmp_path):
    from includes.data.datasets import is_installed

    if not is_installed("airbnb-sf"):
        pytest.skip("airbnb-sf is not installed (make setup)")
    procs = [subprocess.Popen([sys.executable, __file__, str(tmp_path), str(n)], cwd=ROOT,
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
    from includes.runtime.tracking import fresh_experiment, fresh_registered_model

    experiment = fresh_experiment("TEST_fresh")
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"  # the UI's training view
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


if __name__ == "__main__":
    make_shared_copy(Path(sys.argv[1]), sys.argv[2])
