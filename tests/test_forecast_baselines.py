"""The forecasting baselines on hand-computed and exactly predictable series."""

import numpy as np
import pytest

from recurrent_zoo.forecast_baselines import (
    BASELINES,
    baseline_forecasts,
    calendar_period,
    fit_linear_autoregression,
    fit_statistical_model,
    fourier_terms,
    linear_autoregression,
    seasonal_naive,
    statistical_model,
)

NAN = np.nan


def test_seasonal_naive_by_hand():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    # Period 3, origin 4: steps read y[1], y[2], y[3], then y[1] again (one
    # period before the origin is the nearest value of that season known).
    got = seasonal_naive(values, 4, np.array([4, 5]), 4, period=3)
    np.testing.assert_array_equal(got[0], [2.0, 3.0, 4.0, 2.0])
    np.testing.assert_array_equal(got[1], [3.0, 4.0, 5.0, 3.0])


def test_seasonal_naive_steps_back_whole_periods_over_gaps():
    values = np.array([1.0, 2.0, 3.0, 4.0, NAN, 6.0, 7.0, 8.0])
    # Origin 7, period 3: y[4] is a gap, so y[1] (same season) is used.
    got = seasonal_naive(values, 7, np.array([7]), 2, period=3)
    np.testing.assert_array_equal(got, [[2.0, 6.0]])
    # No known value of the season at all: the last known one (naive).
    values = np.array([NAN, 2.0, 3.0])
    got = seasonal_naive(values, 3, np.array([3]), 1, period=3)
    np.testing.assert_array_equal(got, [[3.0]])


def test_origins_before_the_fitting_stretch_are_refused():
    with pytest.raises(ValueError, match="cannot forecast before it"):
        seasonal_naive(np.arange(10.0), 6, np.array([5]), 2, period=2)


def test_linear_autoregression_never_reads_at_or_after_an_origin():
    """A gap running up to an origin is filled from before it (the network's
    `window_inputs`), not interpolated towards the value being forecast."""
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(size=120))
    values[[20, 21, 98, 99]] = NAN  # inside a training window; up to origin 100
    origins = np.array([100])
    before = linear_autoregression(values, 90, origins, 3, window=6)
    changed = values.copy()
    changed[100:] += 50.0
    after = linear_autoregression(changed, 90, origins, 3, window=6)
    assert np.isfinite(before).all()
    np.testing.assert_array_equal(before, after)


def _sinusoid_ar2(
    n: int, offset: float, angle: float
) -> tuple[np.ndarray, float, float]:
    """An undamped sinusoid: exactly y_t = a1 y_{t-1} + a2 y_{t-2} + c."""
    t = np.arange(n)
    return offset + np.sin(angle * t + 0.3), 2 * np.cos(angle), -1.0


def test_linear_autoregression_recovers_an_exact_ar2():
    values, a1, a2 = _sinusoid_ar2(200, 5.0, np.pi / 5)
    coefficients, intercepts = fit_linear_autoregression(values, 150, 2, 2)
    # Step 1: y_t = a2 y_{t-2} + a1 y_{t-1} + 5 (1 - a1 - a2), oldest lag first.
    np.testing.assert_allclose(coefficients[0], [a2, a1], atol=1e-4)
    assert intercepts[0] == pytest.approx(5.0 * (1 - a1 - a2), abs=1e-3)
    # Step 2, by substituting step 1 into itself: (a1 a2, a1^2 + a2).
    np.testing.assert_allclose(coefficients[1], [a1 * a2, a1 * a1 + a2], atol=1e-4)
    forecasts = linear_autoregression(values, 150, np.arange(150, 199), 2, window=2)
    truth = values[np.arange(150, 199)[:, None] + np.arange(2)]
    np.testing.assert_allclose(forecasts, truth, atol=1e-4)


def test_linear_autoregression_on_a_noisy_ar2_and_gaps():
    rng = np.random.default_rng(1)
    values = np.zeros(4000)
    for t in range(2, len(values)):
        values[t] = 1.0 + 0.6 * values[t - 1] - 0.3 * values[t - 2] + rng.normal()
    values[rng.choice(np.arange(10, 3500), 40, replace=False)] = NAN
    coefficients, intercepts = fit_linear_autoregression(values, 3500, 2, 1)
    np.testing.assert_allclose(coefficients[0], [-0.3, 0.6], atol=0.05)
    assert intercepts[0] == pytest.approx(1.0, abs=0.1)
    forecasts = linear_autoregression(values, 3500, np.arange(3500, 3990), 3, window=2)
    assert np.isfinite(forecasts).all()


def _trend_and_season(n: int, period: float, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(scale=0.01, size=n)
    return 10.0 + 0.5 * t + 3.0 * np.sin(2 * np.pi * t / period) + noise


def test_statistical_model_forecasts_trend_and_season_nearly_exactly():
    values = _trend_and_season(180, 12.0)
    values[[30, 31, 100, 155]] = NAN  # in the fitting stretch and held out
    fitted = fit_statistical_model(values[:144], 12.0, ar=(0, 1), ma=(0,))
    assert fitted.order[1] == 1  # KPSS: the trend needs a difference
    assert fitted.harmonics >= 1
    origins = np.arange(144, 169)
    forecasts = statistical_model(values, 144, origins, 12, period=12.0, fitted=fitted)
    truth = _trend_and_season(180, 12.0)[origins[:, None] + np.arange(12)]
    # Noise of 0.01 on a season of amplitude 3 and 90 units of trend.
    np.testing.assert_allclose(forecasts, truth, atol=0.1)


def test_statistical_model_rolls_without_refitting():
    values = _trend_and_season(120, 6.0, seed=2)
    fitted = fit_statistical_model(values[:90], 6.0, ar=(0, 1), ma=(0,))
    params = fitted.results.params.copy()
    first = statistical_model(values, 90, np.array([90]), 3, period=6.0, fitted=fitted)
    # The first origin's forecast is the fitted results' own forecast.
    np.testing.assert_allclose(
        first[0], fitted.results.forecast(3, exog=fitted.exog(90, 93))
    )
    later = statistical_model(
        values, 90, np.array([90, 100, 110]), 3, period=6.0, fitted=fitted
    )
    np.testing.assert_allclose(later[0], first[0])
    np.testing.assert_allclose(fitted.results.params, params)
    assert (
        np.abs(later - values[[[90, 91, 92], [100, 101, 102], [110, 111, 112]]]).max()
        < 0.1
    )


def test_fourier_terms_and_the_calendar_period():
    terms = fourier_terms(np.array([0, 3]), 12.0, 2)
    # sin(2 pi k t / 12), then cos, for k = 1, 2 at t = 0 and t = 3.
    np.testing.assert_allclose(terms, [[0, 0, 1, 1], [1, 0, 0, -1]], atol=1e-12)
    weeks = np.datetime64("2000-01-01") + 7 * np.arange(10)
    assert calendar_period(weeks, 52) == pytest.approx(365.2425 / 7)
    months = np.arange("2000-01", "2001-01", dtype="datetime64[M]").astype(
        "datetime64[D]"
    )
    assert calendar_period(months, 12) == 12.0
    assert calendar_period(np.arange(1700, 1720), 11) == 11.0
    assert calendar_period(weeks, 4) == 4.0  # four weeks is not a year


def test_baseline_forecasts_share_one_shape():
    values = _trend_and_season(100, 4.0)
    origins = np.arange(80, 95)
    forecasts = baseline_forecasts(values, 80, origins, 6, period=4, window=8)
    assert tuple(forecasts) == BASELINES
    for name, got in forecasts.items():
        assert got.shape == (15, 6), name
        assert np.isfinite(got).all(), name
    with pytest.raises(ValueError, match="unknown baselines"):
        baseline_forecasts(values, 80, origins, 6, period=4, window=8, names=["x"])
