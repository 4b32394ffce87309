"""Loading helpers for the MovieLens datasets: MovieLens 100K and MovieLens latest-small.

Every reader returns a Spark DataFrame with an explicit schema (no type inference, no header
guessing), so every notebook sees the same columns and types:

MovieLens 100K (``ml-100k``; tab-separated rating files, ``|``-separated metadata in Latin-1)

- :func:`ratings_100k` ``(spark, "u.data" | "ua.base" | "ua.test" | "ub.base" | ... )``:
  ``user INT, item INT, rating INT, timestamp LONG``. The column names are ALS's defaults
  (``userCol="user"``, ``itemCol="item"``, ``ratingCol="rating"``).
  ``u.data`` has 100000 ratings; ``ua.base``/``ua.test`` (and ``ub.*``) split them 90570/9430 with
  exactly 10 test ratings per user; ``u1``..``u5`` are 80000/20000 folds.
- :func:`movies_100k`: ``item INT, title STRING, release_date DATE, imdb_url STRING,
  genres ARRAY<STRING>`` (1682 movies). ``u.item`` is ISO-8859-1 (Latin-1), not UTF-8: reading it
  as UTF-8 turns "Misérables" into "Mis\\ufffdrables".
- :func:`users_100k`: ``user INT, age INT, gender STRING, occupation STRING, zip_code STRING``.
- :func:`movie_titles_100k`: ``{item: title}`` as a plain dict, read without Spark (for labelling
  recommendations on the driver).
- :data:`GENRES_100K`: the 19 genre names, in the order of ``u.item``'s flag columns.

MovieLens latest-small (``ml-latest-small``; CSV with a header, UTF-8, CRLF line endings)

- :func:`ratings_latest_small`: ``userId INT, movieId INT, rating DOUBLE, timestamp LONG``
  (100836 ratings from 0.5 to 5.0 in steps of 0.5). The names are the file's own.
- :func:`movies_latest_small`: ``movieId INT, title STRING, genres ARRAY<STRING>`` (9742 movies).

Determinism: each file is small enough (under 2.5 MB) that Spark reads it as one partition, in
file order; the rating readers make that explicit (``coalesce(1)``), because ALS and
``randomSplit`` give results that depend on how the rows are partitioned. Ask for more
partitions with ``partitions=n``: rows are then hash-partitioned by user and sorted within each
partition, which is just as reproducible.
"""

from __future__ import annotations

import os

from includes.paths import dataset_file

ML_100K = "ml-100k"
ML_LATEST_SMALL = "ml-latest-small"

SPLITS_100K = (
    "u.data",
    "ua.base", "ua.test", "ub.base", "ub.test",
    *(f"u{fold}.{part}" for fold in range(1, 6) for part in ("base", "test")),
)

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)

RATINGS_100K_DDL = "user INT, item INT, rating INT, timestamp LONG"
USERS_100K_DDL = "user INT, age INT, gender STRING, occupation STRING, zip_code STRING"
# u.item: id | title | release date | video release date (always empty) | IMDb URL | 19 genre flags
_ITEMS_100K_DDL = ", ".join(
    ["item INT", "title STRING", "release_date STRING", "video_release_date STRING", "imdb_url STRING"]
    + [f"g{index:02d} INT" for index in range(len(GENRES_100K))]
)
MOVIES_100K_COLUMNS = ("item", "title", "release_date", "imdb_url", "genres")

RATINGS_LATEST_SMALL_DDL = "userId INT, movieId INT, rating DOUBLE, timestamp LONG"
MOVIES_LATEST_SMALL_DDL = "movieId INT, title STRING, genres STRING"

LATIN_1 = "ISO-8859-1"


def _fixed_partitions(df, partitions: int, user_col: str, item_col: str):
    """One partition in file order, or ``partitions`` hash partitions by user, sorted inside."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    df = df.coalesce(1)
    if partitions == 1:
        return df
    return df.repartition(partitions, user_col).sortWithinPartitions(user_col, item_col)


def ratings_100k(spark, split: str = "u.data", datasets_dir: os.PathLike | str | None = None,
                 partitions: int = 1):
    """The ratings of one MovieLens 100K file: ``user, item, rating, timestamp`` (all integers).

    ``split`` is a file name from :data:`SPLITS_100K`, e.g. ``"ua.base"`` (90570 ratings) or
    ``"ua.test"`` (9430). ``timestamp`` is in Unix seconds.
    """
    if split not in SPLITS_100K:
        raise ValueError(f"unknown MovieLens 100K ratings file {split!r}; expected one of {', '.join(SPLITS_100K)}")
    path = str(dataset_file(ML_100K, split, datasets_dir))
    df = spark.read.csv(path, sep="\t", schema=RATINGS_100K_DDL, header=False, mode="FAILFAST")
    return _fixed_partitions(df, partitions, "user", "item")


def movies_100k(spark, datasets_dir: os.PathLike | str | None = None):
    """The 1682 movies of ``u.item``: ``item, title, release_date (DATE), imdb_url, genres``.

    Decoded as Latin-1. ``genres`` lists the names from :data:`GENRES_100K` whose flag is set.
    One movie (item 267, title "unknown") has no release date (null).
    """
    from pyspark.sql import functions as F

    path = str(dataset_file(ML_100K, "u.item", datasets_dir))
    raw = spark.read.csv(path, sep="|", schema=_ITEMS_100K_DDL, encoding=LATIN_1, header=False,
                         quote="", mode="FAILFAST")
    flags = [F.when(F.col(f"g{index:02d}") == 1, F.lit(name)) for index, name in enumerate(GENRES_100K)]
    return raw.select(
        "item",
        "title",
        F.to_date("release_date", "d-MMM-yyyy").alias("release_date"),
        "imdb_url",
        F.filter(F.array(*flags), lambda genre: genre.isNotNull()).alias("genres"),
    ).coalesce(1)


def users_100k(spark, datasets_dir: os.PathLike | str | None = None):
    """The 943 users of ``u.user``: ``user, age, gender ("M"/"F"), occupation, zip_code``."""
    path = str(dataset_file(ML_100K, "u.user", datasets_dir))
    return spark.read.csv(path, sep="|", schema=USERS_100K_DDL, header=False, mode="FAILFAST").coalesce(1)


def movie_titles_100k(datasets_dir: os.PathLike | str | None = None) -> dict[int, str]:
    """``{item id: title}`` for the 1682 movies, read on the driver (Latin-1), no Spark needed."""
    path = str(dataset_file(ML_100K, "u.item", datasets_dir))
    titles = {}
    with open(path, encoding=LATIN_1) as handle:
        for line in handle:
            if line.strip():
                item, title, _ = line.split("|", 2)
                titles[int(item)] = title
    return titles


def ratings_latest_small(spark, datasets_dir: os.PathLike | str | None = None, partitions: int = 1):
    """MovieLens latest-small ``ratings.csv``: ``userId, movieId, rating (DOUBLE), timestamp``."""
    path = str(dataset_file(ML_LATEST_SMALL, "ratings.csv", datasets_dir))
    df = spark.read.csv(path, schema=RATINGS_LATEST_SMALL_DDL, header=True, mode="FAILFAST")
    return _fixed_partitions(df, partitions, "userId", "movieId")


def movies_latest_small(spark, datasets_dir: os.PathLike | str | None = None):
    """MovieLens latest-small ``movies.csv``: ``movieId, title, genres (ARRAY<STRING>)``.

    Titles with commas are quoted in the file; ``genres`` is the file's ``|``-separated list
    (``"(no genres listed)"`` for a few movies).
    """
    from pyspark.sql import functions as F

    path = str(dataset_file(ML_LATEST_SMALL, "movies.csv", datasets_dir))
    df = spark.read.csv(path, schema=MOVIES_LATEST_SMALL_DDL, header=True, encoding="UTF-8",
                        quote='"', escape='"', mode="FAILFAST")
    return df.withColumn("genres", F.split("genres", r"\|")).coalesce(1)
