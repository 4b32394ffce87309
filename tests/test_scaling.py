"""The scaling benchmark (benchmarks/scaling.py, issue 24): its data generators, its measuring
harness, its results format and the plot drawn from that file, on tiny sizes (no Spark here: the
benchmark's quick mode runs the Spark backends)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scaling = _load("scaling")
scaling_plot = _load("scaling_plot")
GIB = 1 << 30


# ------------------------------------------------------------------------------------------------
# generators
# ------------------------------------------------------------------------------------------------


def test_movielens_shape_grows_like_the_family():
    for name, ratings, users, items in scaling.MOVIELENS_FAMILY:
        assert scaling.movielens_shape(ratings) == (users, items), name
    sizes = [10**4, 10**5, 10**6, 10**7, 10**8]
    shapes = [scaling.movielens_shape(n) for n in sizes]
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(shapes, shapes[1:]))
    # users grow almost linearly with the ratings, items much slower: the density falls
    densities = [n / (u * i) for n, (u, i) in zip(sizes, shapes)]
    assert densities == sorted(densities, reverse=True)


def test_generated_ratings_have_ml100k_histogram_long_tail_and_no_repeats(tmp_path):
    import pandas as pd

    n = 20_000
    folder = scaling.generate_ratings(n, tmp_path, chunk_rows=8_000)
    ratings = pd.read_parquet(folder)
    users, items = scaling.movielens_shape(n)
    assert len(ratings) == n and sorted(p.name for p in folder.glob("part-*.parquet")) == \
        ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert str(ratings["user"].dtype) == "int32" and str(ratings["item"].dtype) == "int32"
    assert ratings["user"].between(0, users - 1).all() and ratings["item"].between(0, items - 1).all()
    histogram, _, _ = scaling.ml100k_profile()
    shares = ratings["rating"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert max(abs(shares[float(k)] - v) for k, v in histogram.items()) < 0.02, (shares, histogram)
    # long tail: the tenth most popular items hold far more than a tenth of the ratings
    counts = ratings["item"].value_counts()
    assert counts.iloc[: max(1, items // 10)].sum() / n > 0.3
    for _, chunk in ratings.groupby(ratings.index // 8_000):
        assert not chunk.duplicated(["user", "item"]).any()
    # the hidden structure: a user's mean rating says something about the user's other ratings
    halves = ratings.assign(half=ratings.index % 2).groupby(["user", "half"])["rating"].mean().unstack().dropna()
    assert halves[0].corr(halves[1]) > 0.3


def test_generated_data_is_cached_and_rebuilt_when_stale(tmp_path):
    folder = scaling.generate_ratings(3_000, tmp_path)
    part = folder / "part-00000.parquet"
    stamp = part.stat().st_mtime_ns
    assert scaling.generate_ratings(3_000, tmp_path) == folder and part.stat().st_mtime_ns == stamp
    meta = json.loads((folder / "_GENERATED.json").read_text())
    (folder / "_GENERATED.json").write_text(json.dumps({**meta, "version": -1}))
    scaling.generate_ratings(3_000, tmp_path)
    assert json.loads((folder / "_GENERATED.json").read_text()) == meta
    assert not list(tmp_path.glob("*.staging-*"))


def test_generated_listings_keep_the_course_columns_types_and_missing_values(tmp_path):
    import numpy as np
    import pandas as pd

    base = scaling.listings_base()
    folder = scaling.generate_listings(5_000, tmp_path, chunk_rows=2_000)
    listings = pd.read_parquet(folder)
    assert len(listings) == 5_000 and len(list(folder.glob("part-*.parquet"))) == 3
    assert list(listings.columns) == list(base.columns)
    assert listings.dtypes.astype(str).to_dict() == base.dtypes.astype(str).to_dict()
    for name in scaling.LISTING_CATEGORICAL:
        assert set(listings[name]) <= set(base[name]), name
    numeric = [c for c in base.columns if c not in scaling.LISTING_CATEGORICAL and not c.endswith("_na")]
    noisy = 0
    for name in numeric:
        values = listings[name].dropna()
        assert values.between(base[name].min(), base[name].max()).all(), name
        if (base[name] == base[name].round()).all():
            assert (values == values.round()).all(), f"{name} should stay whole"
        noisy += not set(values) <= set(base[name])
        flag = f"{name}_na"
        if flag in base.columns:
            assert (listings[name].isna() == (listings[flag] == 1)).all(), f"{name} missing exactly where {flag}"
    assert noisy >= 5, "the numeric columns are not resampled with noise"
    assert listings.isna().any().sum() >= 5 and np.isfinite(listings["price"]).all()


def test_one_hot_width_and_on_paper_memory():
    base = scaling.listings_base()
    assert sum(base[c].nunique() for c in scaling.LISTING_CATEGORICAL) == scaling.ONE_HOT_COLUMNS
    assert len(scaling.scoring_features(base.columns, base.dtypes)) == 26
    users, items = scaling.movielens_shape(10**6)
    assert scaling.single_peak_bytes("als", 10**6) == 3 * 8 * users * items
    assert scaling.single_peak_bytes("pipeline", 10**6) == 10**6 * (272 + 32 * (scaling.ONE_HOT_COLUMNS + 26))


def test_plan_expects_the_walls_on_a_24_gib_machine():
    settings = scaling.settings_for(False, ram=24 * GIB)
    rows = scaling.plan(scaling.WORKLOADS, scaling.BACKENDS, scaling.FULL_SIZES, settings)
    expect = {(r["workload"], r["backend"], r["size"]): r["expect"] for r in rows}
    # dense R, M and M * R: 16.7 GiB at 10^7 ratings (ML-10M's 69878 x 10677), under the 19.2 GiB limit,
    # with the 1.8 GiB of address space the process holds before its data: near the 18.8 GiB limit
    assert expect[("als", "single", 10_000_000)] == "ok or MemoryError (near the limit)"
    assert expect[("als", "single", 3_000_000)] == "ok" and expect[("als", "single", 30_000_000)] == "MemoryError"
    assert expect[("als", "single", 100_000_000)] == scaling.SKIPPED
    assert expect[("pipeline", "single", 3_000_000)] == "ok"
    assert expect[("pipeline", "single", 10_000_000)] == "MemoryError"
    assert expect[("scoring", "single", 100_000_000)] == "MemoryError"
    assert all(expect[(w, "local", 10**5)] == "ok" for w in scaling.WORKLOADS)
    assert settings["single_address_space"] == int(0.8 * 24 * GIB) and settings["driver_memory"] == "12g"


# ------------------------------------------------------------------------------------------------
# harness
# ------------------------------------------------------------------------------------------------


def test_measure_sees_the_memory_of_the_whole_process_tree(tmp_path):
    # a child that starts a grandchild holding 300 MB: the peak counts both
    grandchild = "import time; b = bytearray(300 * 2**20); time.sleep(1.5)"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    measured = scaling.measure([sys.executable, "-c", code], time_limit=60, log_path=tmp_path / "log")
    assert measured["returncode"] == 0 and not measured["timed_out"]
    assert measured["peak_rss_bytes"] >= 300 * 2**20 and measured["peak_process_rss_bytes"] == measured["peak_rss_bytes"]
    assert scaling.outcome_of(measured, {"outcome": "ok"}) == "ok"


def test_measure_adds_the_watched_processes(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); time.sleep(30)"])
    try:
        import time

        time.sleep(1.0)
        measured = scaling.measure([sys.executable, "-c", "import time; time.sleep(0.5)"], time_limit=60,
                                   also_watch=(other.pid,))
    finally:
        other.kill()
        other.wait()
    assert measured["peak_rss_bytes"] - measured["peak_process_rss_bytes"] >= 200 * 2**20


def test_time_limit_kills_the_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    measured = scaling.measure([sys.executable, "-c", code], time_limit=2.0)
    assert measured["timed_out"] and measured["process_seconds"] < 10
    assert scaling.outcome_of(measured, None) == scaling.TIME_LIMIT
    import psutil

    def grandchild_gone() -> bool:
        try:
            return psutil.Process(int(pid_file.read_text())).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # SIGKILL to the group is delivered asynchronously: on a loaded machine the grandchild can
    # still be on its way out when measure() returns, so give it a few seconds, not a minute
    deadline = time.monotonic() + 5
    while not grandchild_gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert grandchild_gone(), "the point's grandchild outlived the time limit"


def test_address_space_limit_gives_memory_error_not_the_oom_killer(tmp_path):
    code = "import numpy as np; a = np.ones((40_000, 40_000))"  # 12.8 GB
    measured = scaling.measure([sys.executable, "-c", code], time_limit=60, address_space=2 * GIB,
                               log_path=tmp_path / "log")
    assert measured["returncode"] == 1
    assert "MemoryError" in (tmp_path / "log").read_text()


def test_outcomes():
    base = {"timed_out": False, "returncode": 0}
    assert scaling.outcome_of({**base, "returncode": -9}, None) == "killed (SIGKILL)"
    assert scaling.outcome_of({**base, "returncode": 3}, {"outcome": "MemoryError"}) == "MemoryError"
    assert scaling.outcome_of({**base, "returncode": 1}, None) == scaling.ERROR
    assert scaling.outcome_of({**base, "timed_out": True, "returncode": -9}, None) == scaling.TIME_LIMIT


def test_child_environment_per_backend():
    settings = scaling.settings_for(False, ram=24 * GIB)
    local = scaling.child_env(settings, "local", "local[*]")
    cluster = scaling.child_env(settings, "cluster", "spark://127.0.0.1:7077")
    assert local["COURSE_DRIVER_MEMORY"] == "12g" and "PYSPARK_SUBMIT_ARGS" not in local
    assert "spark.executor.memory=12g" in cluster["PYSPARK_SUBMIT_ARGS"]
    assert "spark.driver.memory=2g" in cluster["PYSPARK_SUBMIT_ARGS"]
    assert cluster["PYSPARK_SUBMIT_ARGS"].endswith("pyspark-shell")
    assert local["OPENBLAS_NUM_THREADS"] == "2"


def test_a_real_single_process_point_and_the_results_file(tmp_path):
    out = tmp_path / "results.json"
    settings = {**scaling.settings_for(True), "repeats": 1}
    lines = []
    results = scaling.run(["als"], ["single"], [3_000], settings, root=tmp_path / "work", out=out, mode="quick",
                          echo=lines.append)
    assert json.loads(out.read_text()) == results
    assert results["format"] == scaling.FORMAT and results["mode"] == "quick"
    for key in ("cpu", "logical_cores", "ram_bytes", "os", "java", "spark", "pandas", "scikit-learn", "numpy",
                "numeric_pin", "load_average_at_start", "load_average_at_end"):
        assert key in results["machine"], key
    [record] = results["records"]
    assert record["outcome"] == "ok", record
    assert record["workload"] == "als" and record["backend"] == "single" and record["size"] == 3_000
    assert 0 < record["seconds"] < record["process_seconds"] and record["peak_rss_bytes"] > 50 * 2**20
    users, items = scaling.movielens_shape(3_000)
    assert record["detail"]["factors"] == [[users, 10], [items, 10]]
    assert not (tmp_path / "work" / "runs" / "als-single-3000-0").exists()
    [row] = scaling.summary(results)
    assert row["outcome"] == "ok" and row["runs"] == 1 and float(row["median s"]) == pytest.approx(record["seconds"], abs=0.01)


def test_repeats_short_points_and_skips_sizes_after_a_failure(tmp_path, monkeypatch):
    calls = []

    def fake_point(workload, backend, size, run, settings, *, root, cluster=None):
        calls.append((size, run))
        outcome = "MemoryError" if size >= 300 else "ok"
        seconds = 5.0 if size == 100 else 30.0
        return {"workload": workload, "backend": backend, "size": size, "run": run, "outcome": outcome,
                "seconds": seconds, "process_seconds": seconds + 1, "peak_rss_bytes": size, "peak_process_rss_bytes": size}

    monkeypatch.setattr(scaling, "run_point", fake_point)
    settings = {**scaling.settings_for(False), "repeats": 3}
    results = scaling.run(["pipeline"], ["single"], [100, 200, 300, 400], settings, root=tmp_path,
                          out=tmp_path / "r.json", mode="full", echo=lambda line: None)
    assert calls == [(100, 0), (100, 1), (100, 2), (200, 0), (300, 0)]
    assert [(r["size"], r["outcome"]) for r in results["records"]][-2:] == [(300, "MemoryError"), (400, scaling.SKIPPED)]


# ------------------------------------------------------------------------------------------------
# plot, from a results file
# ------------------------------------------------------------------------------------------------


def _record(workload, backend, size, seconds=None, outcome="ok", peak=GIB, run=0):
    record = {"workload": workload, "backend": backend, "size": size, "run": run, "outcome": outcome}
    if outcome != scaling_plot.SKIPPED:
        record.update(process_seconds=(seconds or 3.0) + 5, peak_rss_bytes=peak, peak_process_rss_bytes=peak)
    if seconds is not None:
        record["seconds"] = seconds
    return record


def _results(records):
    machine = {"ram_bytes": 24 * GIB, "cpu": "x", "logical_cores": 2, "os": "Linux", "spark": "4.2.0", "numpy": "2.4.6"}
    return {"format": scaling.FORMAT, "mode": "full", "machine": machine,
            "settings": {"single_address_space": int(19.2 * GIB)}, "records": records}


SYNTHETIC = _results([
    _record("pipeline", "single", 10**5, 1.0), _record("pipeline", "single", 10**6, 10.0),
    _record("pipeline", "single", 10**7, None, "MemoryError", peak=19 * GIB),
    _record("pipeline", "single", 10**8, outcome=scaling_plot.SKIPPED),
    _record("pipeline", "local", 10**5, 10.0), _record("pipeline", "local", 10**6, 10.0, run=0),
    _record("pipeline", "local", 10**6, 4.0, run=1), _record("pipeline", "local", 10**6, 5.0, run=2),
    _record("pipeline", "local", 10**7, 40.0), _record("pipeline", "local", 10**8, 400.0),
    _record("als", "single", 10**5, 1.0), _record("als", "single", 10**6, 8.0),
    _record("als", "single", 10**7, None, "killed (SIGKILL)"),
    _record("als", "local", 10**5, 20.0), _record("als", "local", 10**6, 30.0), _record("als", "local", 10**7, 90.0),
    _record("scoring", "single", 10**5, 9.0), _record("scoring", "local", 10**5, 3.0),
])


def test_points_take_the_median_and_the_first_failure():
    rows = scaling_plot.points(SYNTHETIC, "pipeline", "local")
    assert [r["seconds"] for r in rows] == [10.0, 5.0, 40.0, 400.0]
    single = scaling_plot.points(SYNTHETIC, "pipeline", "single")
    assert single[2]["outcome"] == "MemoryError" and single[2]["seconds"] is None and single[2]["failed_after"] == 8.0
    assert scaling_plot.failure(SYNTHETIC, "pipeline") == {"size": 10**7, "outcome": "MemoryError"}
    assert scaling_plot.failure(SYNTHETIC, "pipeline", "local") is None


def test_crossover_measured_below_and_at_the_wall():
    cross = scaling_plot.crossover(SYNTHETIC, "pipeline")
    # log ratios: log(10) at 1e5, log(0.5) at 1e6 -> crossing at the fraction log10/(log10-log0.5) of the decade
    fraction = math.log(10) / (math.log(10) - math.log(0.5))
    assert cross["kind"] == "measured" and cross["size"] == pytest.approx(10 ** (5 + fraction))
    assert scaling_plot.crossover(SYNTHETIC, "scoring") == {"size": 10**5, "kind": "below"}
    assert scaling_plot.crossover(SYNTHETIC, "als") == {"size": 10**7, "kind": "wall"}
    assert scaling_plot.crossover(SYNTHETIC, "als", spark="cluster") is None


def test_crossover_interpolates_each_curve_over_the_sizes_of_either():
    # single measured at 1e5, 3e5, 1e6; Spark at 1e5 and 1e6 only: Spark's line is interpolated at 3e5
    results = _results([_record("pipeline", "single", 10**5, 1.0), _record("pipeline", "single", 3 * 10**5, 2.0),
                        _record("pipeline", "single", 10**6, 100.0),
                        _record("pipeline", "local", 10**5, 10.0), _record("pipeline", "local", 10**6, 10.0)])
    cross = scaling_plot.crossover(results, "pipeline")
    # at 3e5 Spark (10 s) is still slower than single (2 s); between 3e5 and 1e6 the lines cross
    log_gap_300k, log_gap_1m = math.log(10 / 2), math.log(10 / 100)
    x0, x1 = math.log(3 * 10**5), math.log(10**6)
    expected = math.exp(x0 + (x1 - x0) * log_gap_300k / (log_gap_300k - log_gap_1m))
    assert cross == {"size": pytest.approx(expected), "kind": "measured"}


def test_plot_draws_time_and_memory_with_the_marks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "results.json"
    path.write_text(json.dumps(SYNTHETIC))
    figure = scaling_plot.plot_scaling(scaling_plot.load(path))
    axes = figure.axes
    assert len(axes) == 6 and all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "one process fails (MemoryError) at 1e7" in labels
    crossing = scaling_plot.describe_size(scaling_plot.crossover(SYNTHETIC, "pipeline")["size"])
    assert crossing == "5.9e5" and f"Spark local[*] faster from ≈ {crossing}" in labels, labels
    memory_labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert "RAM 24 GiB" in memory_labels and "one process's limit 19.2 GiB" in memory_labels
    assert "MemoryError" in [t.get_text() for t in axes[0].texts]
    assert "killed (SIGKILL)" in [t.get_text() for t in axes[2].texts]
    ticks = [axes[0].yaxis.get_major_formatter()(v) for v in (1, 2, 3, 5, 10, 40, 100)]
    assert ticks == ["1", "2", "", "5", "10", "", "100"], "plain seconds at 1, 2, 5 x 10^k"
    plt.close(figure)
    out = tmp_path / "plot.png"
    assert scaling_plot.main([str(path), str(out)]) == 0 and out.stat().st_size > 10_000
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a scaling benchmark results file"):
        scaling_plot.load(tmp_path / "bad.json")
    (tmp_path / "quick.json").write_text(json.dumps({**SYNTHETIC, "mode": "quick"}))
    with pytest.raises(ValueError, match="quick mode's smoke test, not measurements"):
        scaling_plot.load(tmp_path / "quick.json")
    assert scaling_plot.load(tmp_path / "quick.json", allow_quick=True)["mode"] == "quick"


def test_the_committed_quick_run_is_a_complete_smoke_test():
    """benchmarks/results/scaling-quick.json: the quick mode's output (tiny sizes, a machine under
    load: not a measurement), every workload on every backend, every point ok, drawable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = ROOT / "benchmarks" / "results" / "scaling-quick.json"
    with pytest.raises(ValueError, match="smoke test"):
        scaling_plot.load(path)
    results = scaling_plot.load(path, allow_quick=True)
    assert results["mode"] == "quick" and results["format"] == scaling.FORMAT
    points = {(r["workload"], r["backend"], r["size"]): r["outcome"] for r in results["records"]}
    assert points == {(w, b, n): "ok" for w in scaling.WORKLOADS for b in scaling.BACKENDS for n in scaling.QUICK_SIZES}
    spark = [r for r in results["records"] if r["backend"] != "single"]
    assert all(r["startup_seconds"] > 0 for r in spark)
    cluster = [r for r in results["records"] if r["backend"] == "cluster"]
    assert all(r["peak_rss_bytes"] > r["peak_process_rss_bytes"] for r in cluster), "the worker's tree is counted"
    plt.close(scaling_plot.plot_scaling(results))


def test_the_committed_full_run_covers_the_plan_up_to_each_wall():
    """benchmarks/results/scaling.json (what ML00a shows): a full-mode run of FULL_SIZES, every point
    either measured, failed with a recorded outcome, or skipped after its backend failed at a smaller
    size; short points ran REPEATS times; the single process reached a wall in every workload."""
    results = scaling_plot.load(ROOT / "benchmarks" / "results" / "scaling.json")
    assert results["mode"] == "full" and results["settings"]["repeats"] == scaling.REPEATS
    outcomes = {}
    for record in results["records"]:
        outcomes.setdefault((record["workload"], record["backend"], record["size"]), []).append(record)
    planned = {(w, b, n) for w in scaling.WORKLOADS for b in scaling.BACKENDS for n in scaling.FULL_SIZES[b]}
    assert set(outcomes) == planned
    for (workload, backend, size), records in outcomes.items():
        failed_before = any(r["outcome"] not in (scaling.OK, scaling.SKIPPED)
                            for (w, b, n), rs in outcomes.items() if (w, b) == (workload, backend) and n < size
                            for r in rs)
        if failed_before:
            assert [r["outcome"] for r in records] == [scaling.SKIPPED], (workload, backend, size)
        elif all(r["outcome"] == scaling.OK for r in records) and records[0]["seconds"] < scaling.REPEAT_BELOW_SECONDS:
            assert len(records) == scaling.REPEATS, (workload, backend, size)
    for workload in scaling.WORKLOADS:
        assert scaling_plot.failure(results, workload) is not None, workload


def test_load_names_what_a_results_file_lacks(tmp_path):
    broken = {**SYNTHETIC, "records": [{k: v for k, v in SYNTHETIC["records"][0].items() if k != "seconds"}]}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="record 0 lacks seconds"):
        scaling_plot.load(tmp_path / "broken.json")
