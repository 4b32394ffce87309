"""includes/movielens.py: the MovieLens readers return the real files with the documented schemas."""

import os
import sys

import pytest

from includes.data import movielens
from includes.data.datasets import is_installed

pytestmark = pytest.mark.skipif(
    not (is_installed("ml-100k") and is_installed("ml-latest-small")),
    reason="MovieLens datasets not installed (python -m includes.data.datasets install ml-100k ml-latest-small)",
)


@pytest.fixture(scope="module")
def spark():
    """A small local session (no Delta needed); reuses one if the test process already has it."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("test-movielens")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session


def fields(df):
    return [(f.name, f.dataType.simpleString()) for f in df.schema.fields]


def test_ua_split_has_the_grouplens_sizes_and_schema(spark):
    base = movielens.ratings_100k(spark, "ua.base")
    test = movielens.ratings_100k(spark, "ua.test")
    expected = [("user", "int"), ("item", "int"), ("rating", "int"), ("timestamp", "bigint")]
    assert fields(base) == expected and fields(test) == expected
    assert base.count() == 90570
    assert test.count() == 9430
    assert base.rdd.getNumPartitions() == 1  # one partition, file order: reproducible ALS results


def test_ua_test_holds_ten_ratings_of_every_user_and_is_disjoint_from_ua_base(spark):
    from pyspark.sql import functions as F

    base = movielens.ratings_100k(spark, "ua.base")
    test = movielens.ratings_100k(spark, "ua.test")
    per_user = test.groupBy("user").count()
    assert per_user.count() == 943
    assert per_user.agg(F.min("count"), F.max("count")).first() == (10, 10)
    assert base.join(test, ["user", "item"]).count() == 0
    assert base.unionByName(test).distinct().count() == movielens.ratings_100k(spark, "u.data").count() == 100000
    assert base.agg(F.min("rating"), F.max("rating")).first() == (1, 5)


def test_first_rows_are_the_files_first_lines(spark):
    first = movielens.ratings_100k(spark, "u.data").first()
    assert first.asDict() == {"user": 196, "item": 242, "rating": 3, "timestamp": 881250949}


def test_unknown_ratings_file_is_rejected(spark):
    with pytest.raises(ValueError, match="ua.base"):
        movielens.ratings_100k(spark, "ua.train")


def test_partitions_option_is_reproducible(spark):
    def layout():
        df = movielens.ratings_100k(spark, "ua.base", partitions=4)
        return df.rdd.getNumPartitions(), df.rdd.glom().map(lambda rows: (len(rows), rows[:2])).collect()

    partitions, first = layout()
    assert partitions == 4
    assert sum(size for size, _ in first) == 90570
    assert layout() == (partitions, first)
    with pytest.raises(ValueError):
        movielens.ratings_100k(spark, "ua.base", partitions=0)


def test_movies_are_decoded_as_latin_1(spark):
    from pyspark.sql import functions as F

    movies = movielens.movies_100k(spark)
    assert fields(movies) == [("item", "int"), ("title", "string"), ("release_date", "date"),
                              ("imdb_url", "string"), ("genres", "array<string>")]
    rows = {row.item: row for row in movies.collect()}
    assert len(rows) == 1682
    assert rows[543].title == "Misérables, Les (1995)"
    assert rows[1633].title == "Á köldum klaka (Cold Fever) (1994)"
    assert not any("\ufffd" in row.title for row in rows.values())
    assert rows[1].genres == ["Animation", "Children's", "Comedy"]
    assert str(rows[1].release_date) == "1995-01-01"
    # every date parses, including single-digit days such as "4-Feb-1971"; only item 267 has none
    assert [item for item, row in rows.items() if row.release_date is None] == [267]
    assert movies.filter(F.size("genres") == 0).count() == 0


def test_movie_titles_dict_matches_spark_reader(spark):
    titles = movielens.movie_titles_100k()
    assert len(titles) == 1682
    assert titles[50] == "Star Wars (1977)"
    assert titles[1104] == "C'est arrivé près de chez vous (1992)"
    spark_titles = {row.item: row.title for row in movielens.movies_100k(spark).select("item", "title").collect()}
    assert spark_titles == titles


def test_users(spark):
    users = movielens.users_100k(spark)
    assert fields(users) == [("user", "int"), ("age", "int"), ("gender", "string"),
                             ("occupation", "string"), ("zip_code", "string")]
    assert users.count() == 943
    assert users.orderBy("user").first().asDict() == {
        "user": 1, "age": 24, "gender": "M", "occupation": "technician", "zip_code": "85711"}


def test_latest_small_ratings_and_movies(spark):
    from pyspark.sql import functions as F

    ratings = movielens.ratings_latest_small(spark)
    assert fields(ratings) == [("userId", "int"), ("movieId", "int"), ("rating", "double"), ("timestamp", "bigint")]
    summary = ratings.agg(F.count("*"), F.countDistinct("userId"), F.min("rating"), F.max("rating")).first()
    assert tuple(summary) == (100836, 610, 0.5, 5.0)

    movies = movielens.movies_latest_small(spark)
    assert fields(movies) == [("movieId", "int"), ("title", "string"), ("genres", "array<string>")]
    rows = {row.movieId: row for row in movies.collect()}
    assert len(rows) == 9742
    assert rows[11].title == "American President, The (1995)"  # quoted in the file: it has a comma
    assert rows[1].genres == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert not any(genre.endswith("\r") for row in rows.values() for genre in row.genres)


def test_missing_dataset_says_how_to_install(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="includes.data.datasets install ml-100k"):
        movielens.ratings_100k(spark, "ua.base", datasets_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="ml-100k"):
        movielens.movie_titles_100k(datasets_dir=tmp_path)
