"""The course's modelling data: San Francisco Airbnb listings, cleaned (7146 rows x 34 columns).

Lessons read one Delta copy of it, made once per course folder by :func:`sf_clean_delta`.
Treat that table as read-only: a lesson that changes data writes its own copy under
``working_dir``. If the shared copy was modified anyway, it is rebuilt on the next call.
"""

from __future__ import annotations

import os
from pathlib import Path

from includes.fsutil import OLD_PREFIX, STAGING_PREFIX, build_into_place, exclusive_lock, remove_leftovers
from includes.paths import dataset_dir, work_root

SF_CLEAN_PARQUET = "sf-airbnb-clean.parquet"  # in dataset airbnb-sf
BOSTON_RAW_CSV = "listings.csv.gz"  # in dataset airbnb-boston-raw
SHARED_DIR_NAME = "_shared"
SF_CLEAN_DELTA_NAME = "airbnb-sf-clean.delta"
FIRST_COMMIT = "00000000000000000000.json"


def sf_clean_parquet(datasets_dir: os.PathLike | str | None = None) -> str:
    return str(dataset_dir("airbnb-sf", datasets_dir) / SF_CLEAN_PARQUET)


def boston_raw_csv(datasets_dir: os.PathLike | str | None = None) -> str:
    return str(dataset_dir("airbnb-boston-raw", datasets_dir) / BOSTON_RAW_CSV)


def _pristine(table: Path) -> bool:
    """True when the table exists and has exactly its first commit (nobody wrote to it since)."""
    log = table / "_delta_log"
    if not (log / FIRST_COMMIT).exists():
        return False
    return [p.name for p in log.glob("*.json")] == [FIRST_COMMIT]


def sf_clean_delta(spark, datasets_dir: os.PathLike | str | None = None,
                   root: os.PathLike | str | None = None) -> str:
    """Return the path of the Delta copy of the clean SF listings, creating it if needed.

    Safe when several notebooks ask at once: creation happens under a file lock, into a
    staging folder that is renamed into place only when the write succeeded.
    """
    shared = Path(root or work_root()) / SHARED_DIR_NAME
    target = shared / SF_CLEAN_DELTA_NAME
    if _pristine(target):
        return str(target)
    shared.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(shared / f".{SF_CLEAN_DELTA_NAME}.lock"):
        if not _pristine(target):
            remove_leftovers(shared, (f"{STAGING_PREFIX}{SF_CLEAN_DELTA_NAME}-", f"{OLD_PREFIX}{SF_CLEAN_DELTA_NAME}-"))
            clean = spark.read.parquet(sf_clean_parquet(datasets_dir))
            build_into_place(target, lambda staging: clean.write.format("delta").save(str(staging)))
    return str(target)
