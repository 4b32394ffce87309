"""Section ``neighbours``: MLE05L's item-item and user-user similarity matrices.

The lab's exported functions at growing numbers of movies and users: seconds (median of 3) and
MB. Results: ``benchmarks/results/neighbours.json``.
"""

from __future__ import annotations

from benchmarks.common import Bench, print_table, save_results, section

NEIGHBOUR_ITEMS = [1000, 2000, 4000, 8000]
NEIGHBOUR_USERS = [150, 300, 610]


@section("neighbours", "MLE05L's item-item and user-user similarities (the lab's own functions) on MovieLens "
         "latest-small, at growing numbers of movies and users: seconds (median of 3) and MB",
         datasets=("ml-latest-small",))
def bench_neighbours(bench: Bench) -> None:
    import numpy as np
    import pandas as pd

    from includes.lessons.neighbours import item_similarities, user_similarities
    from includes.paths import datasets_root

    ratings = pd.read_csv(datasets_root() / "ml-latest-small" / "ratings.csv")
    # the most rated movies first, so a prefix of n columns is the n most rated movies
    order = ratings["movieId"].value_counts().index
    R = (ratings.pivot_table(index="userId", columns="movieId", values="rating")
         .reindex(columns=order).to_numpy(dtype=float))
    print(f"ratings matrix: {R.shape[0]} users x {R.shape[1]:,} movies (all of ratings.csv)")

    def median_seconds(function, matrix) -> tuple[float, float]:
        times, result = [], None
        for _ in range(3):
            result, seconds = bench.timed(function, matrix)
            times.append(seconds)
        return float(np.median(times)), result.nbytes / 1e6

    rows = []
    for n in NEIGHBOUR_ITEMS:
        seconds, mb = median_seconds(item_similarities, R[:, :n])
        rows.append({"method": "item-based", "movies": n, "users": R.shape[0], "seconds": round(seconds, 3),
                     "similarity MB": round(mb, 1)})
    for m in NEIGHBOUR_USERS:
        seconds, mb = median_seconds(user_similarities, R[:m, :])
        rows.append({"method": "user-based", "movies": R.shape[1], "users": m, "seconds": round(seconds, 3),
                     "similarity MB": round(mb, 1)})
    print_table(rows, ["method", "movies", "users", "seconds", "similarity MB"])
    save_results("neighbours", rows, notes="NumPy on one process, BLAS threads as pinned by the course")
