"""MLflow helpers: course experiments and registered models that start clean on every run.

A lesson's experiment is reset when the lesson starts (its earlier runs are marked deleted),
the same way its working directory is, so what the lesson prints about "its" runs does not
depend on how often it ran before. Deleted runs stay in the store (``mlflow gc`` purges them).
"""

from __future__ import annotations


from pathlib import Path

from includes.paths import mlflow_tracking_uri

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def _artifact_location(name: str) -> str | None:
    """Artifacts of a SQLite store (the course's own: mlflow/mlflow.db) live next to it, in
    artifacts/ (MLflow's default, ./mlruns, would land in the notebook's folder)."""
    uri = mlflow_tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None  # a tracking server decides where artifacts go
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return (Path(uri[len("sqlite:///"):]).parent / "artifacts" / safe).resolve().as_uri()


def fresh_experiment(name: str):
    """Create (or reuse) experiment ``name``, delete its earlier runs, make it the active one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name, artifact_location=_artifact_location(name))
        except MlflowException:  # created by a concurrent run in the meantime
            pass
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    experiment = mlflow.set_experiment(name)
    # the kind MLflow records for model-development experiments (MLflow 3.17's UI still opens every
    # experiment on its GenAI view; "Model training" or ?workflowType=machine_learning shows the runs)
    client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    for run in client.search_runs([experiment.experiment_id], max_results=50000):
        client.delete_run(run.info.run_id)
    return client.get_experiment(experiment.experiment_id)


def fresh_registered_model(name: str) -> None:
    """Delete registered model ``name`` (all its versions) if it exists, so versions restart at 1."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        client.delete_registered_model(name)
    except MlflowException:
        pass  # it did not exist
