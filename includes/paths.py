"""Where the course's files live: the leaf module every other part of ``includes`` may import.

It imports nothing from the package (standard library only), so the set-up tools can use it
before the virtual environment exists.

- :data:`COURSE_ROOT`: the course folder (the one holding ``includes/``).
- :func:`datasets_root`: ``$COURSE_DATASETS_DIR`` or ``<course>/datasets``.
- :func:`work_root`: ``$COURSE_WORK_ROOT`` or ``<course>/work`` (per-lesson working folders).
- :func:`mlflow_store_dir`, :func:`mlflow_tracking_uri`: the course's MLflow store.
- :func:`display_path`: a path as a learner should read it (relative to the course root).
- :class:`CourseSetupError`: the course is not ready; the message says how to fix it.
- :func:`dataset_dir`, :func:`dataset_file`: where an installed dataset is, and the one
  "dataset not installed: run make setup" error.
"""

from __future__ import annotations

import os
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
DATASETS_ENV = "COURSE_DATASETS_DIR"
WORK_ENV = "COURSE_WORK_ROOT"


class CourseSetupError(RuntimeError):
    """The course environment is not ready; the message says how to fix it."""


def datasets_root() -> Path:
    return Path(os.environ.get(DATASETS_ENV) or COURSE_ROOT / "datasets").expanduser().resolve()


def work_root() -> Path:
    return Path(os.environ.get(WORK_ENV) or COURSE_ROOT / "work").expanduser().resolve()


def mlflow_store_dir() -> Path:
    return COURSE_ROOT / "mlflow"


def course_store_uri() -> str:
    """The URI of the course's own SQLite store (``<course>/mlflow/mlflow.db``)."""
    return f"sqlite:///{mlflow_store_dir() / 'mlflow.db'}"


def mlflow_tracking_uri() -> str:
    """The tracking URI every notebook uses: $MLFLOW_TRACKING_URI or the course's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or course_store_uri()


def display_path(path: os.PathLike | str) -> str:
    """A path as a learner should read it: relative to the course root when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(COURSE_ROOT))
    except ValueError:
        return str(path)


class DatasetNotInstalled(CourseSetupError, FileNotFoundError):
    """A lesson asked for a dataset (or a file of it) that is not installed."""


def not_installed(name: str, root: os.PathLike | str | None = None, missing: os.PathLike | str | None = None):
    """The error for a dataset that is not installed, saying how to install it."""
    where = f"{missing} is missing: dataset" if missing is not None else "Dataset"
    root = Path(root) if root is not None else datasets_root()
    return DatasetNotInstalled(
        f"{where} '{name}' is not installed in {root}. Run `make setup` in the course folder "
        f"(or `python -m includes.data.datasets install {name}`)."
    )


def dataset_dir(name: str, datasets_dir: os.PathLike | str | None = None) -> Path:
    """The folder of dataset ``name`` under ``datasets_dir`` (default: :func:`datasets_root`)."""
    return Path(datasets_dir).expanduser().resolve() / name if datasets_dir else datasets_root() / name


def dataset_file(name: str, relative: os.PathLike | str, datasets_dir: os.PathLike | str | None = None) -> Path:
    """An existing file of an installed dataset; raises :func:`not_installed`'s error if it is absent."""
    folder = dataset_dir(name, datasets_dir)
    path = folder / relative
    if not path.exists():
        raise not_installed(name, folder.parent, missing=path)
    return path
