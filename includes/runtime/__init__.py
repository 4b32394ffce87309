"""Code that runs in the notebook kernel: the classroom (set-up cell), Spark session, preflight, lab checks, MLflow."""
