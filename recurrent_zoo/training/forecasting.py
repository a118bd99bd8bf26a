"""The forecasting task: a `Forecaster` on one time series, scored by MASE.

What the run core gets from this task (see `recurrent_zoo.training.tasks`):

- data: a `TimeSeries` (`recurrent_zoo.data.series`): "co2", "elnino",
  "sunspots" or a CSV file. The "train" split is everything before the
  test stretch (the series' last `TEST_FRACTION`), the "test" split that
  stretch with the whole history before it as context. The run core's
  validation part is the training split's last `validation_fraction`, by
  time, again with its history as context; nothing is shuffled across a
  split;
- the model: `get("forecaster", ...)`, normalized by `adapt` on the
  training part only (`Forecaster.adapt`); `calendar=True` gives it the
  calendar covariates (`calendar_features`);
- a batch: (window, next `horizon` values) pairs at every origin of the
  part whose targets are its own (`forecast_windows`); inputs filled
  causally at gaps, unknown targets NaN and left out of the loss; windows
  without any known target dropped; shuffled within the part only;
- the loss: `ForecastLoss` (squared error, or pinball with quantiles) in
  units of the training scale, Adam with gradient clipping; the validation
  loss chooses the epoch;
- the score: rolling origins over the test stretch, every origin, each
  forecasting `horizon` values from the history before it
  (`rolling_forecasts`), pooled into MAE, RMSE and MASE by
  `recurrent_zoo.forecast_metrics`; MASE's scale is the seasonal-naive
  error of everything before the test stretch (`mase_scale`, the series'
  period). A series whose seasonal-naive error is 0 (a constant one) has
  no MASE: it is reported as None.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recurrent_zoo.data.series import (
    CALENDAR_FEATURES,
    SERIES,
    TimeSeries,
    calendar_features,
    load_series,
    split_train_test,
    window_inputs,
)
from recurrent_zoo.forecast_metrics import forecast_errors, mase_scale
from recurrent_zoo.models import get
from recurrent_zoo.models.forecaster import Forecaster, ForecastLoss
from recurrent_zoo.training.task_base import ArchitectureTask

__all__ = [
    "ForecastTask",
    "RollingForecasts",
    "forecast_windows",
    "load_forecast_split",
    "plot_forecasts",
    "rolling_forecasts",
    "score_forecaster",
    "series_covariates",
]

_MODEL_OPTIONS = (
    "horizon",
    "window",
    "cell",
    "units",
    "quantiles",
    "dropout",
    "relative",
    "linear_skip",
    "calendar",
)
SPLITS = ("train", "test", "all")


def load_forecast_split(
    corpus: str, data: str | os.PathLike[str] | None, split: str
) -> TimeSeries:
    """One split of a series: "train", "test" (with its context) or "all".

    Raises:
        ValueError: on another corpus than "series", no data, or an
            unknown split.
    """
    if corpus != "series":
        raise ValueError(f"a forecaster reads the 'series' corpus, not {corpus!r}")
    if data is None:
        raise ValueError(
            f"name the series to forecast: {', '.join(SERIES)} or a CSV file (--data)"
        )
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    series = load_series(data)
    if split == "all":
        return series
    return split_train_test(series)[0 if split == "train" else 1]


def series_covariates(model: Forecaster, series: TimeSeries) -> np.ndarray | None:
    """The covariates the model reads for each step of `series` (or None).

    The series' own if it has some, else its calendar features.

    Raises:
        ValueError: if they do not number the model's `covariates`.
    """
    if not model.covariates:
        return None
    covariates = series.covariates
    if covariates is None and model.covariates == CALENDAR_FEATURES:
        covariates = calendar_features(series.times)
    if covariates is None or covariates.shape[1] != model.covariates:
        found = 0 if covariates is None else covariates.shape[1]
        raise ValueError(
            f"the model reads {model.covariates} covariates per step; "
            f"{series.name} gives {found}"
        )
    return covariates


def forecast_windows(
    model: Forecaster, series: TimeSeries, origins: np.ndarray
) -> tuple[Any, np.ndarray]:
    """The model's inputs at each origin, and the `horizon` values after it.

    Returns:
        (inputs: the filled windows, or {"window", "covariates"}; targets
        (origins, horizon), NaN where unknown).
    """
    windows = window_inputs(series.values, origins, model.window)
    targets = series.values[origins[:, None] + np.arange(model.horizon)]
    covariates = series_covariates(model, series)
    if covariates is None:
        return windows.astype(np.float32), targets
    steps = origins[:, None] - model.window + np.arange(model.window + model.horizon)
    return {
        "window": windows.astype(np.float32),
        "covariates": covariates[steps].astype(np.float32),
    }, targets


class RollingForecasts(NamedTuple):
    """Forecasts from every origin of a stretch, and the truth after each.

    Attributes:
        origins: (O,) indices into the series' values.
        truth: (O, horizon), NaN where unknown.
        forecasts: (O, horizon) point forecasts.
        quantiles: (O, horizon, Q) with a quantile model, else None.
    """

    origins: np.ndarray
    truth: np.ndarray
    forecasts: np.ndarray
    quantiles: np.ndarray | None


def rolling_forecasts(
    model: Forecaster, series: TimeSeries, every: int = 1, batch_size: int = 256
) -> RollingForecasts:
    """The model's forecasts from every `every`-th origin of `series`' own
    stretch (the test split's: the test stretch), each from the history
    before it only."""
    origins = series.origins(model.window, model.horizon, every)
    inputs, truth = forecast_windows(model, series, origins)
    if isinstance(inputs, dict):
        out = model.predict_windows(inputs["window"], inputs["covariates"], batch_size)
    else:
        out = model.predict_windows(inputs, None, batch_size)
    if model.quantiles is None:
        return RollingForecasts(origins, truth, out, None)
    return RollingForecasts(origins, truth, out[..., model.point_index], out)


def score_forecaster(
    model: Forecaster, series: TimeSeries, batch_size: int = 256
) -> dict:
    """MAE, RMSE and MASE over every origin of the stretch (see the module),
    and what `plot_forecasts` draws, JSON-ready."""
    rolled = rolling_forecasts(model, series, batch_size=batch_size)
    before = series.values[: series.scored_from]
    try:
        scale = mase_scale(before if len(before) else series.values, series.period)
    except ValueError:
        scale = None  # no seasonal-naive error to divide by: no MASE
    errors = forecast_errors(rolled.truth, rolled.forecasts, scale or 1.0)
    if scale is None:
        errors["mase"], errors["mase_by_step"] = None, None
    return {
        **errors,
        "series": series.name,
        "horizon": model.horizon,
        "window": model.window,
        "period": series.period,
        "forecasts": len(rolled.origins),
        "mase_scale": scale,
        "plot": _plot_data(series, rolled, model.horizon),
    }


def _plot_data(series: TimeSeries, rolled: RollingForecasts, horizon: int) -> dict:
    """The stretch's truth and the forecasts of every `horizon`-th origin."""
    start = series.scored_from

    def listed(values: np.ndarray) -> list:
        return [None if not math.isfinite(v) else float(v) for v in values]

    if np.issubdtype(series.times.dtype, np.datetime64):
        times = np.datetime_as_string(series.times[start:]).tolist()
    else:
        times = [int(t) for t in series.times[start:]]
    paths = []
    for i in range(0, len(rolled.origins), horizon):
        path = {
            "at": int(rolled.origins[i] - start),
            "forecast": listed(rolled.forecasts[i]),
        }
        if rolled.quantiles is not None:
            path["lower"] = listed(rolled.quantiles[i, :, 0])
            path["upper"] = listed(rolled.quantiles[i, :, -1])
        paths.append(path)
    return {"times": times, "truth": listed(series.stretch), "paths": paths}


def plot_forecasts(plot: dict, title: str, path: str | os.PathLike[str]) -> Path:
    """The held-out stretch and the forecasts from every `horizon`-th origin
    (with the outer quantiles' band, if any), on matplotlib's Agg canvas."""
    times = plot["times"]
    if times and isinstance(times[0], str):
        times = np.array(times, dtype="datetime64[D]")
    truth = [math.nan if v is None else v for v in plot["truth"]]
    figure = Figure(figsize=(9.0, 3.8), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(times, truth, "k-", linewidth=1.2, label="held-out values")
    for i, p in enumerate(plot["paths"]):
        span = times[p["at"] : p["at"] + len(p["forecast"])]
        label = "forecasts (one per horizon)" if i == 0 else None
        axes.plot(span, p["forecast"][: len(span)], "-", color="tab:red", label=label)
        if "lower" in p:
            band = "outer quantiles" if i == 0 else None
            axes.fill_between(
                span,
                p["lower"][: len(span)],
                p["upper"][: len(span)],
                color="tab:red",
                alpha=0.2,
                label=band,
            )
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=110)
    return path


class ForecastTask(ArchitectureTask):
    """A forecaster on one time series (see the module).

    Args:
        name: a key of `ARCHITECTURES` whose model is a `Forecaster`
            ("forecaster").
    """

    monitors = ("val_loss",)
    report_files = ("forecast.png",)
    pretrains = False
    # `--data` values that name a series rather than a path.
    named_data = tuple(SERIES)

    def load_split(
        self,
        corpus: str,
        data: str | os.PathLike[str] | None,
        split: str,
        *,
        max_per_class: int | None,
        seed: int,
        remove: Iterable[str] = (),
        class_names: Sequence[str] | None = None,
    ) -> TimeSeries:
        """One split (`load_forecast_split`); the seed is unused (splits
        are by time) and there are no classes to cap."""
        if max_per_class is not None:
            raise ValueError(
                "max_per_class (--max-per-class, --test-max-per-class) does not "
                f"apply to a series, got {max_per_class}"
            )
        return load_forecast_split(corpus, data, split)

    def build(
        self, overrides: dict, data: TimeSeries, vocabulary: list[str] | None
    ) -> Forecaster:
        """The model; `overrides` may hold `_MODEL_OPTIONS` (`calendar=True`
        gives it the calendar covariates)."""
        options = dict(overrides)
        unknown = sorted(set(options) - set(_MODEL_OPTIONS))
        if unknown:
            raise ValueError(
                f"{self.name} does not take {unknown}; its options are "
                f"{list(_MODEL_OPTIONS)}"
            )
        if options.pop("calendar", False):
            options["covariates"] = CALENDAR_FEATURES
        model = get(self.name, **options)
        if data.held_out and data.held_out < model.horizon:
            raise ValueError(
                f"{data.name}: the test stretch holds {data.held_out} values, "
                f"fewer than the horizon {model.horizon}"
            )
        # Fails now, before the run writes anything, if the windows do not
        # fit the series or the covariates cannot be given.
        data.origins(model.window, model.horizon)
        series_covariates(model, data)
        return model

    def adapt(self, model: Forecaster, data: TimeSeries) -> list[str]:
        """Normalizes on the training part's values; no vocabulary."""
        model.adapt(data.values)
        return []

    def batches(
        self,
        model: Forecaster,
        data: TimeSeries,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> tuple[tf.data.Dataset, int]:
        """Every origin's (window, targets) pair of the part's own values,
        and the batches' number per epoch."""
        origins = data.origins(model.window, model.horizon)
        inputs, targets = forecast_windows(model, data, origins)
        keep = np.isfinite(targets).any(axis=1)  # some target known
        if isinstance(inputs, dict):
            inputs = {key: value[keep] for key, value in inputs.items()}
        else:
            inputs = inputs[keep]
        targets = targets[keep].astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices((inputs, targets))
        if shuffle:
            ds = ds.shuffle(len(targets), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), math.ceil(
            len(targets) / batch_size
        )

    def compile(self, model: Forecaster, learning_rate: Any) -> None:
        """Adam clipped to a gradient norm of 1, `ForecastLoss` in units of
        the training scale (so `val_loss` reads alike on any series)."""
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
            loss=ForecastLoss(model.quantiles, float(model.scale.numpy())),
        )

    def score(self, model: Forecaster, data: TimeSeries, batch_size: int) -> dict:
        """`score_forecaster` of the test stretch."""
        return score_forecaster(model, data, batch_size)

    def summary(self, scores: dict) -> str:
        """The test scores, for `train`'s last line."""
        return summary(scores)

    def report(self, scores: dict, out: Path) -> None:
        """forecast.png: the test stretch and the forecasts."""
        title = (
            f"{scores['series']}: forecasts of {scores['horizon']} steps "
            "against the held-out values"
        )
        plot_forecasts(scores["plot"], title, Path(out) / "forecast.png")


def summary(scores: dict) -> str:
    """ "test MASE x, MAE y, RMSE z over N forecasts of H steps"."""
    mase = "undefined" if scores["mase"] is None else f"{scores['mase']:.3f}"
    return (
        f"test MASE {mase}, MAE {scores['mae']:.4g}, RMSE {scores['rmse']:.4g} "
        f"over {scores['forecasts']} forecasts of {scores['horizon']} steps"
    )
