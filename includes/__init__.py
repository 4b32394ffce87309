"""Shared code of the course, in rooms by audience (see includes/README.md).

- ``paths``          where things live, the set-up error (leaf: imports nothing from the package)
- ``fsutil``         lock + build in a staging folder + rename into place (leaf)
- ``runtime``        what the notebook kernel needs: the set-up cell's classroom, Spark session,
                     preflight checks, lab checks, MLflow helpers
- ``data``           the dataset installer and one reader per dataset the lessons use
- ``lessons``        algorithms two notebooks, a test or a benchmark share
- ``tools``          maintainer command-line tools: bootstrap (make setup), runner, labs, agenda, cluster

Notebooks use it through the set-up cell, ``%run ../includes/classroom_setup.py <ID> [DATASET ...]``.
"""

__all__ = ["paths", "fsutil", "runtime", "data", "lessons", "tools"]
