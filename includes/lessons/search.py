"""Hyperparameter searches run one way, whichever library proposes the trials (ML09, ML09L).

ML09 compares Hyperopt's TPE, Hyperopt's random search and Optuna's TPE on the same objective,
the same budget and the same seed; ML09L distributes a random search with ``SparkTrials``. What
they share lives here:

- :class:`SearchResult`: one search as data (the parameters and the loss of every trial in trial
  order), with the best trial and the best-so-far curve;
- :func:`hyperopt_search` and :func:`optuna_search` run a search and return a ``SearchResult``;
  :func:`from_hyperopt_trials` reads one from a finished ``Trials``/``SparkTrials`` object;
- :func:`comparison_table` puts several results side by side, rounded;
- :func:`seeded_per_trial`: a Hyperopt ``algo`` whose trial ``k`` gets parameters that depend only
  on ``(seed, k)``, so a parallel random search proposes the same trials however the parallel
  trials happen to finish (see its docstring);
- :func:`trial_seed`: the seed of trial ``k``.

The objective always takes a dict of decoded parameters (what ``hyperopt.space_eval`` returns,
``hp.choice`` already turned into the chosen value) and returns a loss to minimise, either a
number or Hyperopt's ``{"loss": ..., "status": "ok"}`` dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class SearchResult:
    """One search: ``params[i]`` and ``losses[i]`` belong to trial ``i`` (trial order)."""

    name: str
    params: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def __post_init__(self):
        if len(self.params) != len(self.losses):
            raise ValueError(f"{self.name}: {len(self.params)} parameter sets but {len(self.losses)} losses")

    @property
    def n_trials(self) -> int:
        return len(self.losses)

    @property
    def best_index(self) -> int:
        """The trial with the lowest loss (the first one if several tie)."""
        if not self.losses:
            raise ValueError(f"{self.name}: no trials")
        return min(range(len(self.losses)), key=lambda i: (self.losses[i], i))

    @property
    def best_loss(self) -> float:
        return self.losses[self.best_index]

    @property
    def best_params(self) -> dict:
        return self.params[self.best_index]

    def best_so_far(self) -> list[float]:
        """The lowest loss among trials ``0..i``, for every ``i``."""
        curve, best = [], float("inf")
        for loss in self.losses:
            best = min(best, loss)
            curve.append(best)
        return curve

    def best_after(self, n: int) -> float:
        """The lowest loss among the first ``n`` trials."""
        if not 1 <= n <= self.n_trials:
            raise ValueError(f"{self.name}: asked for the best of {n} trials, it has {self.n_trials}")
        return min(self.losses[:n])


def _loss(value) -> float:
    return float(value["loss"] if isinstance(value, dict) else value)


def from_hyperopt_trials(trials, space, name: str = "hyperopt") -> SearchResult:
    """A :class:`SearchResult` from a finished Hyperopt ``Trials`` (or ``SparkTrials``).

    Trials are taken in trial-id order, whatever order they finished in; only trials with status
    ``ok`` are kept. Parameters are decoded with ``space_eval`` (``hp.choice`` gives the value).
    """
    from hyperopt import STATUS_OK, space_eval

    params, losses = [], []
    for trial in sorted(trials.trials, key=lambda t: t["tid"]):
        if trial["result"].get("status") != STATUS_OK:
            continue
        vals = {key: values[0] for key, values in trial["misc"]["vals"].items() if len(values)}
        params.append(dict(sorted(space_eval(space, vals).items())))
        losses.append(float(trial["result"]["loss"]))
    return SearchResult(name, params, losses)


def hyperopt_search(objective: Callable[[dict], Any], space, algo, max_evals: int, seed: int = 42,
                    trials=None, early_stop_fn=None, name: str = "hyperopt") -> tuple[SearchResult, object]:
    """Run ``hyperopt.fmin`` and return ``(SearchResult, trials)``.

    ``rstate`` is ``numpy.random.default_rng(seed)`` (Hyperopt 0.3 needs a ``Generator``), the
    progress bar is off, ``trials`` defaults to a fresh (serial) ``Trials``.
    """
    import numpy as np
    from hyperopt import Trials, fmin

    trials = Trials() if trials is None else trials
    fmin(fn=objective, space=space, algo=algo, max_evals=max_evals, trials=trials,
         rstate=np.random.default_rng(seed), show_progressbar=False, early_stop_fn=early_stop_fn)
    return from_hyperopt_trials(trials, space, name), trials


def optuna_search(objective: Callable[[dict], Any], suggest: Callable[[object], dict], n_trials: int,
                  sampler=None, seed: int = 42, patience: int | None = None,
                  name: str = "Optuna") -> tuple[SearchResult, object]:
    """Run an Optuna study and return ``(SearchResult, study)``.

    ``suggest(trial)`` draws one parameter dict from an ``optuna.Trial`` (``suggest_int``,
    ``suggest_categorical``, ...); ``objective`` gets that dict, as in :func:`hyperopt_search`.
    ``sampler`` defaults to ``TPESampler(seed=seed)``. Optuna's per-trial INFO lines are silenced.
    ``patience`` stops the study the way ``hyperopt.early_stop.no_progress_loss(patience)`` stops
    ``fmin``: after ``patience`` trials in a row that did not beat the best loss so far.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if sampler is None else sampler
    drawn: dict[int, dict] = {}

    def run_trial(trial):
        drawn[trial.number] = params = dict(sorted(suggest(trial).items()))
        return _loss(objective(params))

    stalled = {"best": None, "count": 0}

    def stop_without_progress(study, trial):
        if trial.state != optuna.trial.TrialState.COMPLETE:
            return
        if stalled["best"] is None:  # as no_progress_loss: the first trial already counts as one
            stalled["best"], stalled["count"] = trial.value, 1
        elif trial.value < stalled["best"]:
            stalled["best"], stalled["count"] = trial.value, 0
        else:
            stalled["count"] += 1
        if patience is not None and stalled["count"] >= patience:
            study.stop()

    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(run_trial, n_trials=n_trials, callbacks=[stop_without_progress])
    done = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.number)
    return SearchResult(name, [drawn[t.number] for t in done], [float(t.value) for t in done]), study


def comparison_table(results: Sequence[SearchResult], digits: int = 2, first_n: int | None = None):
    """A pandas table, one row per search: trials run, best loss (and the best of the first
    ``first_n`` trials if given), the best trial's number and parameters. Rounded to ``digits``."""
    import pandas as pd

    rows = []
    for result in results:
        row = {"search": result.name, "trials": result.n_trials, "best loss": round(result.best_loss, digits)}
        if first_n is not None:
            row[f"best of first {first_n}"] = round(result.best_after(first_n), digits)
        row["best trial"] = result.best_index
        row["best params"] = ", ".join(f"{k}={_short(v)}" for k, v in result.best_params.items())
        rows.append(row)
    return pd.DataFrame(rows)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def trial_seed(seed: int, tid: int) -> int:
    """The seed of trial ``tid``: a function of ``(seed, tid)`` only (NumPy's ``SeedSequence``)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, tid]).generate_state(1)[0])


def seeded_per_trial(seed: int, suggest=None):
    """A Hyperopt ``algo`` that draws every new trial with its own seed, ``trial_seed(seed, tid)``.

    ``fmin`` calls ``algo(new_ids, domain, trials, seed)`` with a fresh seed from ``rstate`` on
    every call, and asks for as many new ids as its queue has room for. With ``SparkTrials`` both
    depend on timing: how many trials finished before the next call decides whether a call asks
    for one id or two, and so which seed trial ``k`` is drawn with. This wrapper ignores the seed
    it is given and calls ``suggest`` once per new id with ``trial_seed(seed, tid)``: trial ``k``
    gets the same parameters at any parallelism and in any finishing order.

    That is only sound for a ``suggest`` that does not look at the history: Hyperopt's random
    search (``hyperopt.rand.suggest``, the default). TPE bases each proposal on the trials that
    have finished so far, which under parallelism depends on timing however it is seeded.
    """
    from hyperopt import rand

    base = rand.suggest if suggest is None else suggest

    def algo(new_ids, domain, trials, _seed_from_fmin):
        docs = []
        for tid in new_ids:
            docs.extend(base([tid], domain, trials, trial_seed(seed, tid)))
        return docs

    algo.__name__ = f"seeded_per_trial({getattr(base, '__module__', 'suggest')}, seed={seed})"
    return algo
