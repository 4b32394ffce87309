"""includes/lessons/search.py: search results, Hyperopt and Optuna run one way, seeded trials."""

import numpy as np
import pytest
from hyperopt import Trials, fmin, hp, rand, tpe
from hyperopt.early_stop import no_progress_loss

from includes.lessons import search

SPACE = {
    "x": hp.uniform("x", -5, 5),
    "depth": hp.quniform("depth", 1, 10, 1),
    "kind": hp.choice("kind", ["a", "b", "c"]),
}


def quadratic(params):
    return (params["x"] - 1.0) ** 2 + abs(params["depth"] - 4) + {"a": 0.0, "b": 1.0, "c": 2.0}[params["kind"]]


def optuna_space(trial):
    return {"x": trial.suggest_float("x", -5, 5), "depth": trial.suggest_int("depth", 1, 10),
            "kind": trial.suggest_categorical("kind", ["a", "b", "c"])}


def test_search_result_best_and_curves():
    result = search.SearchResult("s", [{"p": i} for i in range(5)], [3.0, 1.0, 2.0, 1.0, 0.5])
    assert result.n_trials == 5
    assert result.best_index == 4 and result.best_loss == 0.5 and result.best_params == {"p": 4}
    assert result.best_so_far() == [3.0, 1.0, 1.0, 1.0, 0.5]
    assert result.best_after(2) == 1.0 and result.best_after(5) == 0.5
    tie = search.SearchResult("t", [{}, {}, {}], [2.0, 1.0, 1.0])
    assert tie.best_index == 1  # the first of equal losses
    with pytest.raises(ValueError, match="best of 6"):
        result.best_after(6)
    with pytest.raises(ValueError, match="2 parameter sets but 1 losses"):
        search.SearchResult("bad", [{}, {}], [1.0])
    with pytest.raises(ValueError, match="no trials"):
        search.SearchResult("empty").best_index


def test_hyperopt_search_is_repeatable_and_decodes_choices():
    first, trials = search.hyperopt_search(quadratic, SPACE, rand.suggest, 10, seed=42, name="rand")
    again, _ = search.hyperopt_search(quadratic, SPACE, rand.suggest, 10, seed=42, name="rand")
    other, _ = search.hyperopt_search(quadratic, SPACE, rand.suggest, 10, seed=7, name="rand")
    assert first == again and first.params != other.params
    assert first.n_trials == 10 and len(trials.trials) == 10
    assert {p["kind"] for p in first.params} <= {"a", "b", "c"}  # the option, not hp.choice's index
    assert first.losses == [quadratic(p) for p in first.params]
    assert list(first.params[0]) == ["depth", "kind", "x"]  # sorted keys


def test_hyperopt_search_accepts_result_dicts_and_stops_early():
    def flat(params):
        return {"loss": 1.0, "status": "ok"}

    result, _ = search.hyperopt_search(flat, SPACE, tpe.suggest, 50, early_stop_fn=no_progress_loss(3))
    assert result.n_trials == 3  # the first trial counts as one without progress


def test_optuna_search_is_repeatable_and_stops_like_no_progress_loss():
    first, study = search.optuna_search(quadratic, optuna_space, 8, seed=42, name="optuna")
    again, _ = search.optuna_search(quadratic, optuna_space, 8, seed=42, name="optuna")
    assert first == again and first.n_trials == 8 and len(study.trials) == 8
    assert first.losses == [quadratic(p) for p in first.params]

    flat, _ = search.optuna_search(lambda params: 1.0, optuna_space, 50, patience=3)
    hyperopt_flat, _ = search.hyperopt_search(lambda params: 1.0, SPACE, rand.suggest, 50,
                                              early_stop_fn=no_progress_loss(3))
    assert flat.n_trials == hyperopt_flat.n_trials == 3

    losses = iter([5.0, 4.0, 4.5, 4.5, 3.0, 3.5, 3.5, 3.5, 1.0])
    improving, _ = search.optuna_search(lambda params: next(losses), optuna_space, 9, patience=3)
    assert improving.n_trials == 8  # 3.0 at trial 4, then three without progress


def test_comparison_table_rounds_and_names_the_best():
    a = search.SearchResult("A", [{"d": 3.0, "k": "x"}, {"d": 5.0, "k": "y"}], [2.3456, 1.2345])
    b = search.SearchResult("B", [{"d": 2.0, "k": "z"}], [1.5])
    table = search.comparison_table([a, b], first_n=1)
    assert list(table.columns) == ["search", "trials", "best loss", "best of first 1", "best trial", "best params"]
    assert table["best loss"].tolist() == [1.23, 1.5]
    assert table["best of first 1"].tolist() == [2.35, 1.5]
    assert table["best params"].tolist() == ["d=5, k=y", "d=2, k=z"]


def test_trial_seed_depends_on_seed_and_trial_only():
    seeds = [search.trial_seed(42, tid) for tid in range(50)]
    assert seeds == [search.trial_seed(42, tid) for tid in range(50)]
    assert len(set(seeds)) == 50
    assert search.trial_seed(43, 0) != search.trial_seed(42, 0)
    assert all(0 <= s < 2**32 for s in seeds)


def drive(algo, batches):
    """Call ``algo`` the way fmin does, with the given batch sizes of new ids and a fresh (ignored)
    seed per call; return ``{tid: vals}``."""
    from hyperopt import Domain

    domain = Domain(quadratic, SPACE)
    trials = Trials()
    tid, rng = 0, np.random.default_rng(0)
    for size in batches:
        ids = trials.new_trial_ids(size)
        assert ids == list(range(tid, tid + size))
        tid += size
        trials.insert_trial_docs(algo(ids, domain, trials, rng.integers(2**31 - 1)))
        trials.refresh()
    return {t["tid"]: t["misc"]["vals"] for t in trials.trials}


def test_seeded_per_trial_gives_trial_k_the_same_parameters_whatever_the_batches():
    algo = search.seeded_per_trial(42)
    one_by_one = drive(algo, [1] * 6)
    assert drive(algo, [2, 2, 2]) == one_by_one == drive(algo, [1, 3, 2]) == drive(algo, [6])
    assert len({v["x"][0] for v in one_by_one.values()}) == 6
    assert drive(search.seeded_per_trial(7), [1] * 6) != one_by_one
    # plain rand.suggest draws a batch from one seed per call: batch sizes change the trials
    assert drive(rand.suggest, [2, 2, 2]) != drive(rand.suggest, [1] * 6)


def test_seeded_per_trial_through_fmin_with_different_queue_lengths():
    """fmin's max_queue_len is how many ids one call may ask for (SparkTrials: up to parallelism)."""
    def run(queue):
        trials = Trials()
        fmin(quadratic, SPACE, search.seeded_per_trial(42), max_evals=7, trials=trials, max_queue_len=queue,
             rstate=np.random.default_rng(queue), show_progressbar=False)
        return search.from_hyperopt_trials(trials, SPACE)

    assert run(1) == run(2) == run(3)


# hyperopt starts trial threads with pyspark.inheritable_thread_target without a session: PySpark warns
@pytest.mark.filterwarnings("ignore:Spark session is not provided:UserWarning")
def test_seeded_per_trial_with_spark_trials_parallelism_1_and_2(spark):
    """Trials run as Spark tasks and finish in a timing-dependent order; the parameters of trial k
    must not depend on it."""
    from hyperopt import SparkTrials

    def slow_quadratic(params):  # pickled by value into the Python workers
        import time

        time.sleep(0.05 * (params["depth"] % 4))  # trials of different lengths finish out of order
        return (params["x"] - 1.0) ** 2 + params["depth"]

    def run(parallelism):
        trials = SparkTrials(parallelism=parallelism, spark_session=spark)
        fmin(slow_quadratic, SPACE, search.seeded_per_trial(42), max_evals=4, trials=trials,
             rstate=np.random.default_rng(parallelism), show_progressbar=False)
        assert trials.count_successful_trials() == 4
        return search.from_hyperopt_trials(trials, SPACE)

    serial, parallel = run(1), run(2)
    assert serial.params == parallel.params and serial.losses == parallel.losses
