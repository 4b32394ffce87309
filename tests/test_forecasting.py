"""includes/lessons/forecasting.py: holdout metrics by formula, baselines, the damped-trend model and
the per-series function that MLE03 runs with applyInPandas."""

import math

import numpy as np
import pandas as pd
import pytest

from includes.lessons import forecasting


def test_metrics_follow_their_formulas():
    actual, forecast = [100.0, 200.0, 400.0], [110.0, 180.0, 400.0]  # errors -10, 20, 0
    assert forecasting.mae(actual, forecast) == pytest.approx(10.0)
    assert forecasting.rmse(actual, forecast) == pytest.approx(math.sqrt((100 + 400 + 0) / 3))
    assert forecasting.mape(actual, forecast) == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert forecasting.forecast_metrics(actual, forecast) == {
        "MAE": pytest.approx(10.0), "RMSE": pytest.approx(12.9099, abs=1e-4), "MAPE": pytest.approx(6.6667, abs=1e-4)}
    assert forecasting.rmse([1, 2], [1, 2]) == 0.0


def test_metrics_refuse_what_they_cannot_measure():
    with pytest.raises(ValueError, match="undefined"):
        forecasting.mape([0.0, 5.0], [1.0, 5.0])
    with pytest.raises(ValueError, match="shape"):
        forecasting.mae([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        forecasting.rmse([], [])


def test_naive_and_seasonal_naive_baselines():
    history = np.arange(1.0, 15.0)  # 1 .. 14
    assert forecasting.naive_forecast(history, 3).tolist() == [14.0, 14.0, 14.0]
    # one season = the last 12 values (3 .. 14), repeated: h = 13, 14, 15 wrap around to 3, 4, 5
    expected = list(range(3, 15)) + [3, 4, 5]
    assert forecasting.seasonal_naive_forecast(history, 15, 12).tolist() == expected
    assert forecasting.seasonal_naive_forecast(history, 2, 1).tolist() == [14.0, 14.0]  # m = 1 is the naive one
    with pytest.raises(ValueError):
        forecasting.seasonal_naive_forecast(history[:5], 3, 12)
    with pytest.raises(ValueError):
        forecasting.naive_forecast([], 3)


def test_seasonal_naive_is_exact_on_a_periodic_series():
    t = np.arange(60)
    series = 10 + 3 * np.sin(2 * np.pi * t / 12)
    forecast = forecasting.seasonal_naive_forecast(series[:48], 12, 12)
    assert np.allclose(forecast, series[48:])


def test_damped_trend_follows_a_known_growth_and_a_constant_level():
    t = np.arange(132)
    growth = np.expm1(3 + 0.02 * t)  # a straight line on the log(1 + y) scale the model works on
    forecast = forecasting.damped_trend_forecast(growth[:120], 12)
    assert forecast.shape == (12,)
    assert np.all(np.abs(forecast / growth[120:] - 1) < 0.03)  # damping bends the slope a little
    assert np.all(np.diff(forecast) > 0)  # still growing
    level = forecasting.damped_trend_forecast(np.full(50, 40.0), 6)
    assert np.allclose(level, 40.0, rtol=1e-3)
    assert np.array_equal(forecast, forecasting.damped_trend_forecast(growth[:120], 12))  # deterministic


def test_damped_trend_never_forecasts_negative_counts():
    falling = np.concatenate([np.full(30, 50.0), np.linspace(50, 0, 20)])
    assert forecasting.damped_trend_forecast(falling, 24).min() >= 0
    with pytest.raises(ValueError):
        forecasting.damped_trend_forecast([-1.0] * 20, 3)


def series_frame(name, n, start="2000-01-01"):
    months = pd.date_range(start, periods=n, freq="MS").date
    values = 100 + 5 * np.sin(2 * np.pi * np.arange(n) / 12) + np.arange(n)
    return pd.DataFrame({"genre": name, "month": months, "n": values})


def test_group_forecaster_returns_the_schema_and_the_horizon():
    frame = series_frame("Drama", 60)
    shuffled = frame.sample(frac=1.0, random_state=0)  # applyInPandas gives no order guarantee
    result = forecasting.make_group_forecaster(horizon=12)(shuffled)
    schema_names = [part.strip().split(" ")[0] for part in forecasting.forecast_schema().split(",")]
    assert list(result.columns) == schema_names == ["genre", "month", "actual", "forecast", "naive", "seasonal_naive"]
    assert len(result) == 12
    assert result["genre"].unique().tolist() == ["Drama"]
    assert result["month"].tolist() == frame["month"].iloc[-12:].tolist()  # the last 12 months, in order
    assert np.array_equal(result["actual"], frame["n"].iloc[-12:])
    assert np.all(result["naive"] == frame["n"].iloc[-13])  # the last month before the holdout
    assert np.array_equal(result["seasonal_naive"], frame["n"].iloc[-24:-12])  # one year earlier
    assert forecasting.mae(result["actual"], result["forecast"]) < forecasting.mae(result["actual"], result["naive"])


def test_group_forecaster_takes_any_model_and_refuses_short_series():
    def mean_model(history, horizon):
        return np.full(horizon, history.mean())

    frame = series_frame("War", 30)
    result = forecasting.make_group_forecaster(6, model=mean_model)(frame)
    assert np.allclose(result["forecast"], frame["n"].iloc[:-6].mean())
    with pytest.raises(ValueError, match="too short"):
        forecasting.make_group_forecaster(12)(series_frame("War", 20))


def test_series_scores_one_row_per_series():
    forecasts = pd.DataFrame({"genre": ["B", "B", "A", "A"], "actual": [10.0, 20.0, 4.0, 4.0],
                              "forecast": [12.0, 18.0, 4.0, 5.0], "naive": [20.0, 20.0, 0.0, 0.0],
                              "seasonal_naive": [10.0, 20.0, 8.0, 8.0]})
    scores = forecasting.series_scores(forecasts)
    assert list(scores.columns) == [part.strip().split(" ")[0] for part in forecasting.scores_schema().split(",")]
    assert scores["genre"].tolist() == ["A", "B"]
    assert scores.set_index("genre").to_dict("index") == {
        "A": {"holdout_mean": 4.0, "mae_forecast": 0.5, "mae_naive": 4.0, "mae_seasonal_naive": 4.0},
        "B": {"holdout_mean": 15.0, "mae_forecast": 2.0, "mae_naive": 5.0, "mae_seasonal_naive": 0.0}}
