"""Forecast errors: MAE, RMSE and MASE, over rolling forecast origins.

Every forecaster here (the recurrent one and the baselines of
`benchmarks/forecasting.py`) is scored the same way on a series' held-out
final stretch: from each origin in that stretch it forecasts the next
`horizon` values from everything before the origin, and the errors of all
(origin, step) pairs whose true value is known are pooled.

MASE (Hyndman and Koehler 2006, "Another look at measures of forecast
accuracy") divides the mean absolute error by the in-sample mean absolute
error of the seasonal-naive forecast (y_t predicted by y_{t-m}) on the
training stretch, so it reads the same on any scale: below 1 beats
seasonal-naive's one-period-ahead error in sample. NumPy only: the base
floor, imported by the model's task and by the benchmark alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["forecast_errors", "mase_scale", "origins"]


def mase_scale(train: np.ndarray, period: int) -> float:
    """Mean |y_t - y_{t-period}| over the training values both known.

    Raises:
        ValueError: if `period` is not a positive integer, or no pair of
            known values lies `period` apart (MASE is then undefined), or
            the series repeats itself exactly (a scale of 0).
    """
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be a positive integer, got {period!r}")
    train = np.asarray(train, dtype=np.float64)
    differences = np.abs(train[period:] - train[:-period])
    differences = differences[np.isfinite(differences)]
    if differences.size == 0:
        raise ValueError(
            f"MASE needs two known training values {period} steps apart; "
            f"the training stretch has {len(train)} values"
        )
    scale = float(differences.mean())
    if scale == 0.0:
        raise ValueError(
            "MASE is undefined: the training stretch repeats itself exactly "
            f"every {period} steps (seasonal-naive error 0)"
        )
    return scale


def origins(start: int, stop: int, horizon: int, every: int = 1) -> np.ndarray:
    """The forecast origins of a held-out stretch `[start, stop)`.

    An origin `o` forecasts `y[o], ..., y[o + horizon - 1]` from `y[:o]`;
    the origins are `start, start + every, ...` while `o + horizon <= stop`,
    so every forecast step lands inside the stretch.
    """
    if horizon < 1 or every < 1:
        raise ValueError(f"horizon and every must be >= 1, got {horizon}, {every}")
    if stop - start < horizon:
        raise ValueError(
            f"the held-out stretch has {stop - start} values, fewer than the "
            f"horizon {horizon}"
        )
    return np.arange(start, stop - horizon + 1, every)


def forecast_errors(
    truth: np.ndarray, forecasts: np.ndarray, scale: float
) -> dict[str, float]:
    """MAE, RMSE and MASE of forecasts against the truth.

    Args:
        truth: (origins, horizon) true values; NaN where unknown (a gap in
            the series), which is left out of every error.
        forecasts: the same shape; must be finite where the truth is known.
        scale: `mase_scale` of the training stretch.

    Returns:
        {"mae", "rmse", "mase", "count"}, and "mase_by_step": the MASE of
        each horizon step (how error grows with lead time).
    """
    truth = np.asarray(truth, dtype=np.float64)
    forecasts = np.asarray(forecasts, dtype=np.float64)
    if truth.shape != forecasts.shape or truth.ndim != 2:
        raise ValueError(
            f"truth and forecasts must share a 2-D (origins, horizon) shape, "
            f"got {truth.shape} and {forecasts.shape}"
        )
    known = np.isfinite(truth)
    if not known.any():
        raise ValueError("no true value is known in the held-out stretch")
    if not np.isfinite(forecasts[known]).all():
        raise ValueError("a forecast is NaN or infinite where the truth is known")
    error = np.where(known, forecasts - truth, 0.0)
    count = known.sum()
    mae = float(np.abs(error).sum() / count)
    by_step = np.abs(error).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    return {
        "mae": mae,
        "rmse": float(np.sqrt((error**2).sum() / count)),
        "mase": mae / scale,
        "count": int(count),
        "mase_by_step": [float(v) for v in by_step / scale],
    }
