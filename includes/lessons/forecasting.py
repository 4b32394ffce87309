"""Forecasting many series at once (MLE03): holdout metrics, naive baselines, and one model per
series as a function for ``groupBy(key).applyInPandas``.

- :func:`mae`, :func:`rmse`, :func:`mape` and :func:`forecast_metrics`: the holdout errors of a
  forecast, by their formulas (MAPE in percent; it is undefined when an actual value is 0).
- :func:`naive_forecast` (the last value, repeated) and :func:`seasonal_naive_forecast` (the last
  season, repeated): the baselines every model must beat.
- :func:`damped_trend_forecast`: Holt's linear trend with a damped slope (statsmodels'
  ``ExponentialSmoothing(trend="add", damped_trend=True)``, parameters estimated), fitted to
  ``log(1 + y)`` so that bursts of counts do not dominate, and transformed back (never below 0).
- :func:`make_group_forecaster` builds the per-series function: it holds out the last ``horizon``
  points of its group, fits the model to the rest and returns the held-out points with the
  model's and the baselines' forecasts (columns :data:`FORECAST_COLUMNS`, DDL from
  :func:`forecast_schema`). :func:`series_scores` turns one series' forecasts into its MAE per
  method (DDL from :func:`scores_schema`).

The same two functions run in a plain loop on the driver (``pandas.DataFrame.groupby``) and on
the executors (``applyInPandas``), and give the same numbers: the fit is deterministic.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

FORECAST_COLUMNS = ("actual", "forecast", "naive", "seasonal_naive")
METHODS = ("forecast", "naive", "seasonal_naive")


def _pair(actual, forecast) -> tuple[np.ndarray, np.ndarray]:
    actual, forecast = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    if actual.shape != forecast.shape or actual.size == 0:
        raise ValueError(f"actual and forecast must have the same non-empty shape, got {actual.shape} "
                         f"and {forecast.shape}")
    return actual, forecast


def mae(actual, forecast) -> float:
    """Mean absolute error: ``mean(|y - yhat|)``."""
    actual, forecast = _pair(actual, forecast)
    return float(np.mean(np.abs(actual - forecast)))


def rmse(actual, forecast) -> float:
    """Root mean squared error: ``sqrt(mean((y - yhat)^2))``."""
    actual, forecast = _pair(actual, forecast)
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def mape(actual, forecast) -> float:
    """Mean absolute percentage error, in percent: ``100 * mean(|y - yhat| / |y|)``.

    Raises ``ValueError`` if an actual value is 0 (the error relative to 0 is undefined)."""
    actual, forecast = _pair(actual, forecast)
    if np.any(actual == 0):
        raise ValueError("MAPE is undefined when an actual value is 0: use MAE or RMSE")
    return float(100 * np.mean(np.abs((actual - forecast) / actual)))


def forecast_metrics(actual, forecast) -> dict[str, float]:
    """``{"MAE": ..., "RMSE": ..., "MAPE": ...}`` of one forecast (MAPE in percent)."""
    return {"MAE": mae(actual, forecast), "RMSE": rmse(actual, forecast), "MAPE": mape(actual, forecast)}


def naive_forecast(history, horizon: int) -> np.ndarray:
    """The last observed value, repeated ``horizon`` times."""
    history = np.asarray(history, dtype=float)
    if history.size == 0 or horizon < 1:
        raise ValueError("need a non-empty history and horizon >= 1")
    return np.full(horizon, history[-1])


def seasonal_naive_forecast(history, horizon: int, season_length: int) -> np.ndarray:
    """The last ``season_length`` values, repeated to ``horizon``: each point is forecast by the
    value one season earlier (``yhat[T + h] = y[T + h - m * ceil(h / m)]``)."""
    history = np.asarray(history, dtype=float)
    if season_length < 1 or history.size < season_length or horizon < 1:
        raise ValueError(f"need horizon >= 1 and at least one season ({season_length}) of history, "
                         f"got {history.size} values")
    last_season = history[-season_length:]
    return np.resize(last_season, horizon)  # np.resize repeats the array cyclically


def damped_trend_forecast(history, horizon: int) -> np.ndarray:
    """Holt's damped-trend exponential smoothing of ``log(1 + y)``, forecast ``horizon`` steps and
    transformed back with ``exp(.) - 1`` (clipped at 0). The smoothing and damping parameters are
    estimated by statsmodels (least squares of the one-step errors on the history)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    history = np.asarray(history, dtype=float)
    if history.size < 10 or np.any(history < 0):
        raise ValueError("need at least 10 non-negative values")
    fit = ExponentialSmoothing(np.log1p(history), trend="add", damped_trend=True).fit()
    return np.clip(np.expm1(fit.forecast(horizon)), 0, None)


def forecast_schema(key: str = "genre", time_col: str = "month", key_type: str = "STRING",
                    time_type: str = "DATE") -> str:
    """The DDL schema of :func:`make_group_forecaster`'s output."""
    return ", ".join([f"{key} {key_type}", f"{time_col} {time_type}"] + [f"{c} DOUBLE" for c in FORECAST_COLUMNS])


def make_group_forecaster(horizon: int, key: str = "genre", time_col: str = "month", value_col: str = "n",
                          season_length: int = 12,
                          model: Callable[[np.ndarray, int], np.ndarray] = damped_trend_forecast,
                          ) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A function for ``groupBy(key).applyInPandas(function, forecast_schema(key, time_col))``.

    It receives one series (the rows of one ``key``, in any order), sorts them by ``time_col``,
    holds out the last ``horizon`` points, fits ``model`` to the earlier ones and returns the
    ``horizon`` held-out rows: ``key, time_col, actual, forecast, naive, seasonal_naive``.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")

    def forecast_group(series: pd.DataFrame) -> pd.DataFrame:
        series = series.sort_values(time_col, kind="stable")
        values = series[value_col].to_numpy(dtype=float)
        if len(values) < horizon + max(season_length, 10):
            raise ValueError(f"series {series[key].iloc[0]!r} has {len(values)} points: too short for a "
                             f"holdout of {horizon}")
        history, holdout = values[:-horizon], values[-horizon:]
        return pd.DataFrame({
            key: series[key].iloc[-horizon:].to_numpy(),
            time_col: series[time_col].iloc[-horizon:].to_numpy(),
            "actual": holdout,
            "forecast": model(history, horizon),
            "naive": naive_forecast(history, horizon),
            "seasonal_naive": seasonal_naive_forecast(history, horizon, season_length),
        })

    return forecast_group


def scores_schema(key: str = "genre", key_type: str = "STRING") -> str:
    """The DDL schema of :func:`series_scores`'s output."""
    return ", ".join([f"{key} {key_type}", "holdout_mean DOUBLE"] + [f"mae_{m} DOUBLE" for m in METHODS])


def series_scores(forecasts: pd.DataFrame, *, key: str = "genre") -> pd.DataFrame:
    """One row per series from :func:`make_group_forecaster`'s output: the mean of the held-out
    values and the MAE of the model and of each baseline (``mae_forecast``, ``mae_naive``,
    ``mae_seasonal_naive``). Works on one group (``applyInPandas``) or on many. ``key`` is
    keyword-only: ``applyInPandas`` passes the group key as well to a function of two parameters."""
    rows = []
    for name, group in forecasts.groupby(key, sort=True):
        row = {key: name, "holdout_mean": float(group["actual"].mean())}
        row.update({f"mae_{m}": mae(group["actual"], group[m]) for m in METHODS})
        rows.append(row)
    return pd.DataFrame(rows, columns=[key, "holdout_mean"] + [f"mae_{m}" for m in METHODS])
