"""Reading the Jester joke ratings (dataset ``jester``, file ``jester-data-1.xls``).

The file is an Excel 97-2003 workbook with one sheet and no header row: 24983 rows (one per
user) and 101 columns. Column 1 is the number of jokes the user rated; columns 2..101 are the
ratings of jokes 1..100, real numbers from -10.00 to +10.00, where the value **99 means "not
rated"**. A rating of exactly 0.0 is a real rating (the middle of the scale), not a gap.

Spark has no reader for ``.xls``, so the file is read on the driver with pandas (the
``calamine`` engine of python-calamine, about 1.5 s on an idle machine) and handed to Spark with
``spark.createDataFrame`` (with Arrow on, as the course's sessions are).

- :func:`read_jester` ``(path=None, datasets_dir=None)``: the 24983 x 100 ratings as a pandas
  DataFrame, **as stored** (99 still marks a missing rating): index ``user`` (1..24983, the row
  number in the file), columns ``"1"`` .. ``"100"`` (the joke ids, as strings so they can be
  Spark column names), dtype float64. The count column is checked against the ratings and
  dropped.
- :func:`read_jester_counts`: the file's own count column (jokes rated per user), as a Series.
"""

from __future__ import annotations

import os
from pathlib import Path

from includes.paths import dataset_file

JESTER = "jester"
JESTER_FILE = "jester-data-1.xls"
N_USERS = 24983
N_JOKES = 100
NOT_RATED = 99.0
MIN_RATING, MAX_RATING = -10.0, 10.0
JOKE_COLUMNS = tuple(str(joke) for joke in range(1, N_JOKES + 1))


def _xls_path(path: os.PathLike | str | None, datasets_dir: os.PathLike | str | None) -> Path:
    if path is None:
        return dataset_file(JESTER, JESTER_FILE, datasets_dir)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist")
    return Path(path)


def _read_sheet(path: Path):
    import pandas as pd

    sheet = pd.read_excel(path, header=None, engine="calamine")
    if sheet.shape[1] != N_JOKES + 1:
        raise ValueError(f"{path.name}: expected {N_JOKES + 1} columns (count + {N_JOKES} jokes), got {sheet.shape[1]}")
    sheet.index = pd.RangeIndex(1, len(sheet) + 1, name="user")
    return sheet


def _validated(sheet, name: str):
    """The rating columns of ``sheet`` (joke ids as column names), after checking the file's invariants."""
    ratings = sheet.iloc[:, 1:].astype("float64")
    ratings.columns = list(JOKE_COLUMNS)
    ratings.columns.name = "joke"
    values = ratings.to_numpy()
    rated = values != NOT_RATED
    if not (((values >= MIN_RATING) & (values <= MAX_RATING)) | ~rated).all():
        raise ValueError(f"{name}: a rating outside {MIN_RATING}..{MAX_RATING} that is not the code {NOT_RATED:g}")
    counts = sheet.iloc[:, 0].to_numpy()
    mismatched = (counts != rated.sum(axis=1)).nonzero()[0]
    if len(mismatched):
        user = int(ratings.index[mismatched[0]])
        raise ValueError(f"{name}: user {user} has a count of {counts[mismatched[0]]:g} "
                         f"but {int(rated[mismatched[0]].sum())} ratings that are not {NOT_RATED:g}")
    return ratings


def read_jester(path: os.PathLike | str | None = None, datasets_dir: os.PathLike | str | None = None):
    """The Jester ratings as stored: a 24983 x 100 pandas DataFrame with 99 = not rated.

    Index ``user`` (1-based row number), columns ``"1"`` .. ``"100"`` (joke ids), float64. The
    count column of the file is verified (it must equal the number of values that are not 99 in
    its row, and every such value must lie in -10..10) and then dropped; a file that breaks either
    rule raises ``ValueError``. Replacing the 99s is left to the caller on purpose.
    """
    path = _xls_path(path, datasets_dir)
    return _validated(_read_sheet(path), path.name)


def read_jester_counts(path: os.PathLike | str | None = None, datasets_dir: os.PathLike | str | None = None):
    """The file's first column, the number of jokes each user rated (a Series indexed by user)."""
    path = _xls_path(path, datasets_dir)
    return _read_sheet(path).iloc[:, 0].astype("int64").rename("n_rated")

