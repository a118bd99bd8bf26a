"""A direct multi-step forecaster over any recurrent cell of `cells.py`.

    z_s  = clip((x_s - mean) / scale)            the window, normalized
    u_s  = [z_s, z_s - z_last, c_s]             level, change to the last
                                                value, covariates (if any)
    h    = recurrent layers (stacked, any cell) over u_1..u_window
    d    = W [h, c_future] + b                  horizon (x quantiles) values
           (+ V z_1..z_window                   with linear_skip=True)
    y    = x_last + scale * d                   (relative=True, the default)
         = mean + scale * d                     (relative=False)

The model reads a window of past values and gives the next `horizon`
values at once (direct, not one step fed back), in the series' own units:
`mean` and `scale` are weights set by `adapt` on training values only and
saved with the model, so a `.keras` file or SavedModel takes raw values.

Why the change from the last value (`relative=True`): a series with a
trend (CO2) leaves the training range in its test stretch, and a
recurrent state (bounded by tanh) cannot give levels it never saw, but it
can give changes it saw. The head starts at zero, so an untrained model
forecasts the last value (the naive forecast; a constant series is
forecast exactly) and training learns the corrections.

The linear skip (`linear_skip=True`; LSTNet's "highway", Lai et al.
2018, "Modeling Long- and Short-Term Temporal Patterns with Deep Neural
Networks"): a dense map `V`, no bias, from the whole normalized window to
the head's outputs, added to them in the space the head predicts in
(changes from the last value, or levels). The whole window rather than
its last few values, so the model nests the linear autoregression of
`recurrent_zoo.forecast_baselines` (the same window, direct multi-step:
a linear map of levels is one of changes too, as the last value is in
the window): the recurrent layers only have to learn what a linear model
of the window misses. `V` starts at zero, like the head, so the
untrained model is still the naive forecast.

Quantiles: with `quantiles=(0.1, 0.5, 0.9)` the head gives each step's
quantiles, trained by the pinball loss (`ForecastLoss`) and sorted
(Chernozhukov et al. 2010: rearranging never worsens the quantile loss);
0.5 is the point forecast.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from recurrent_zoo.cells import CELLS, build_recurrent_layer
from recurrent_zoo.data.series import window_inputs
from recurrent_zoo.layers.checks import check_positive_int, check_rate

__all__ = ["ForecastLoss", "Forecaster"]

# Normalized inputs are clipped here: far beyond any series' training
# range, yet far from float32's overflow (a NaN would follow).
_LIMIT = 1e4


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class Forecaster(keras.Model):
    """Window of past values in, the next `horizon` values out (see the module).

    `call(window)` maps `(batch, window)` floats to `(batch, horizon)`, or
    `(batch, horizon, len(quantiles))` with quantiles. With covariates it
    takes `{"window": (batch, window), "covariates": (batch, window +
    horizon, covariates)}`: the covariates of the window's steps and of
    the steps forecast (known ahead, like calendar features).

    Args:
        horizon: the values forecast from each window.
        window: the past values read.
        cell: a name of `recurrent_zoo.cells.CELLS`.
        units: units of each recurrent layer, bottom first.
        covariates: features per step beside the value (0: none).
        quantiles: None (one point forecast, mean squared error), or the
            quantiles to forecast, increasing in (0, 1) and holding 0.5.
        dropout: input dropout of each recurrent layer, in [0, 1).
        relative: forecast the change from the window's last value (True)
            or the normalized level (False).
        linear_skip: add a linear map of the normalized window to the
            head's outputs (see the module).
        **kwargs: `keras.Model`'s (name, trainable, dtype).

    Example:

    >>> model = Forecaster(horizon=3, window=8, cell="gru", units=(4,))
    >>> model.adapt(np.arange(20.0))
    >>> model.forecast(np.arange(20.0), steps=5).shape
    (5,)
    """

    def __init__(
        self,
        horizon: int = 13,
        window: int = 104,
        cell: str = "layer_norm_lstm",
        units: Sequence[int] = (64,),
        covariates: int = 0,
        quantiles: Sequence[float] | None = None,
        dropout: float = 0.0,
        relative: bool = True,
        linear_skip: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(units, numbers.Integral):
            units = (units,)
        if not units:
            raise ValueError(f"units must name at least one layer, got {units!r}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {tuple(CELLS)}, got {cell!r}")
        self.horizon = check_positive_int("horizon", horizon)
        self.window = check_positive_int("window", window)
        self.cell = cell
        self.units = tuple(check_positive_int("units", u) for u in units)
        if isinstance(covariates, bool) or not isinstance(covariates, numbers.Integral):
            raise ValueError(f"covariates must be an integer >= 0, got {covariates!r}")
        if covariates < 0:
            raise ValueError(f"covariates must be an integer >= 0, got {covariates!r}")
        self.covariates = int(covariates)
        self.quantiles = _check_quantiles(quantiles)
        self.dropout = check_rate("dropout", dropout)
        if not isinstance(relative, bool):
            raise ValueError(f"relative must be True or False, got {relative!r}")
        self.relative = relative
        if not isinstance(linear_skip, bool):
            raise ValueError(f"linear_skip must be True or False, got {linear_skip!r}")
        self.linear_skip = linear_skip
        self.mean = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="mean"
        )
        self.scale = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="scale"
        )
        extra = {"dropout": self.dropout} if self.dropout else {}
        self.recurrent = [
            build_recurrent_layer(
                cell,
                size,
                return_sequences=i + 1 < len(self.units),
                name=f"recurrent_{i}",
                **extra,
            )
            for i, size in enumerate(self.units)
        ]
        # Zeros: the untrained model forecasts the naive value (see the module).
        self.head = keras.layers.Dense(
            self.horizon * len(self.quantiles or (0.5,)),
            kernel_initializer="zeros",
            name="forecast",
        )
        # Zeros too, and no bias (the head has one): see the module.
        self.skip = (
            keras.layers.Dense(
                self.horizon * len(self.quantiles or (0.5,)),
                use_bias=False,
                kernel_initializer="zeros",
                name="linear_skip",
            )
            if linear_skip
            else None
        )
        # Built now, in the caller's scope (a distribution strategy's, say).
        self(self._inputs(np.zeros((1, self.window), "float32"), None))

    @property
    def point_index(self) -> int | None:
        """Where the point forecast (0.5) sits among the quantiles (or None)."""
        return None if self.quantiles is None else self.quantiles.index(0.5)

    def call(self, inputs: Any, training: bool = False) -> Any:
        """Forecasts of each window, in the series' units."""
        window, covariates = self._split_inputs(inputs)
        z = (ops.cast(window, "float32") - self.mean) / self.scale
        # An unknown value reads as the training mean: callers fill gaps
        # first (`forecast` does), this only keeps a stray NaN from spreading.
        z = ops.clip(ops.where(ops.isfinite(z), z, 0.0), -_LIMIT, _LIMIT)
        last = z[:, -1:]
        steps = ops.stack([z, z - last], axis=-1)
        if self.covariates:
            covariates = ops.cast(covariates, "float32")
            steps = ops.concatenate([steps, covariates[:, : self.window]], axis=-1)
        h = steps
        for layer in self.recurrent:
            h = layer(h, training=training)
        if self.covariates:
            future = ops.reshape(
                covariates[:, self.window :], (-1, self.horizon * self.covariates)
            )
            h = ops.concatenate([h, future], axis=-1)
        out = self.head(h)
        if self.skip is not None:
            out = out + self.skip(z)
        if self.quantiles is None:
            base = last if self.relative else 0.0
            return self.mean + self.scale * (base + out)
        out = ops.sort(ops.reshape(out, (-1, self.horizon, len(self.quantiles))))
        base = last[:, :, None] if self.relative else 0.0
        return self.mean + self.scale * (base + out)

    def adapt(self, values: Any) -> None:
        """Sets the normalization from training values (NaN ignored).

        A constant series gets scale 1 (its standard deviation, 0, would
        divide by zero).

        Raises:
            ValueError: if no value is known.
        """
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        known = values[np.isfinite(values)]
        if known.size == 0:
            raise ValueError(f"adapt needs known values, got {values.size}, all NaN")
        mean, std = float(known.mean()), float(known.std())
        self.mean.assign(mean)
        self.scale.assign(std if std > 1e-6 * max(1.0, abs(mean)) else 1.0)

    def forecast(
        self,
        history: Any,
        steps: int | None = None,
        covariates: Any = None,
        quantiles: bool = False,
    ) -> np.ndarray:
        """The next `steps` values after `history`, rolled out past the horizon.

        Beyond `horizon` steps the model reads its own point forecasts (the
        median with quantiles) as the latest values, one horizon at a time.
        Gaps (NaN) in `history` are filled as `window_inputs` fills them.

        Args:
            history: past values, `(time,)` or `(batch, time)`, at least
                `window` of them (only the last `window` are read).
            steps: how many values to forecast (default: `horizon`).
            covariates: with a covariate model, `(time + steps, C)` (or
                batched): the covariates of the history and of every step
                forecast.
            quantiles: return `(..., steps, len(quantiles))` quantiles
                instead of the point forecasts.

        Returns:
            float64 forecasts, `(steps,)` or `(batch, steps)` (plus the
            quantile axis with `quantiles=True`).

        Raises:
            ValueError: on a history shorter than the window, missing or
                misshapen covariates, or quantiles the model lacks.
        """
        history = np.asarray(history, dtype=np.float64)
        single = history.ndim == 1
        history = np.atleast_2d(history)
        steps = self.horizon if steps is None else check_positive_int("steps", steps)
        if history.ndim != 2 or history.shape[1] < self.window:
            raise ValueError(
                f"history holds {history.shape[-1]} values; the model reads "
                f"windows of {self.window}"
            )
        if quantiles and self.quantiles is None:
            raise ValueError("this model forecasts no quantiles (quantiles=None)")
        future = self._future_covariates(covariates, history.shape, steps)
        end = np.array([history.shape[1]])
        context = np.concatenate(
            [window_inputs(row, end, self.window) for row in history]
        )
        blocks = []
        for start in range(0, steps, self.horizon):
            part = (
                None
                if future is None
                else future[:, start : start + self.window + self.horizon]
            )
            out = np.asarray(
                self.predict_on_batch(self._inputs(context, part)), dtype=np.float64
            )
            point = out if self.quantiles is None else out[..., self.point_index]
            blocks.append(out if quantiles else point)
            context = np.concatenate([context, point], axis=1)[:, -self.window :]
        result = np.concatenate(blocks, axis=1)[:, :steps]
        return result[0] if single else result

    def predict_windows(
        self,
        windows: np.ndarray,
        covariates: np.ndarray | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """The model's outputs for many filled windows, in batches (float64)."""
        outputs = []
        for i in range(0, len(windows), batch_size):
            part = None if covariates is None else covariates[i : i + batch_size]
            out = self.predict_on_batch(self._inputs(windows[i : i + batch_size], part))
            outputs.append(np.asarray(out, dtype=np.float64))
        return np.concatenate(outputs)

    def get_config(self) -> dict:
        """Every constructor argument (the normalization is in the weights)."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "horizon": self.horizon,
            "window": self.window,
            "cell": self.cell,
            "units": list(self.units),
            "covariates": self.covariates,
            "quantiles": None if self.quantiles is None else list(self.quantiles),
            "dropout": self.dropout,
            "relative": self.relative,
            "linear_skip": self.linear_skip,
        }

    @classmethod
    def from_config(cls, config: dict) -> Forecaster:
        """The model `get_config` describes (weights not included)."""
        return cls(**config)

    def _inputs(self, window: np.ndarray, covariates: np.ndarray | None) -> Any:
        window = np.asarray(window, dtype="float32")
        if not self.covariates:
            return window
        if covariates is None:
            covariates = np.zeros(
                (len(window), self.window + self.horizon, self.covariates), "float32"
            )
        return {"window": window, "covariates": np.asarray(covariates, "float32")}

    def _split_inputs(self, inputs: Any) -> tuple[Any, Any]:
        if not self.covariates:
            if isinstance(inputs, dict):
                return inputs["window"], None
            return inputs, None
        if not isinstance(inputs, dict) or set(inputs) != {"window", "covariates"}:
            raise ValueError(
                f"a forecaster with {self.covariates} covariates takes "
                '{"window": ..., "covariates": ...}'
            )
        return inputs["window"], inputs["covariates"]

    def _future_covariates(
        self, covariates: Any, shape: tuple[int, int], steps: int
    ) -> np.ndarray | None:
        """The covariates from the window's first step to the last forecast's,
        padded to whole horizons."""
        if not self.covariates:
            if covariates is not None:
                raise ValueError("this model takes no covariates (covariates=0)")
            return None
        if covariates is None:
            raise ValueError(f"this model needs {self.covariates} covariates per step")
        covariates = np.asarray(covariates, dtype=np.float64)
        if covariates.ndim == 2:
            covariates = np.broadcast_to(covariates, (shape[0], *covariates.shape))
        wanted = (shape[0], shape[1] + steps, self.covariates)
        if covariates.shape != wanted:
            raise ValueError(
                f"covariates must be {wanted[1:]} (history and forecast steps, "
                f"features), got {covariates.shape[1:]}"
            )
        covariates = covariates[:, shape[1] - self.window :]
        # The last block may forecast past `steps`: its extra steps' covariates
        # repeat the last known ones (their forecasts are dropped anyway).
        blocks = -(-steps // self.horizon) * self.horizon
        pad = self.window + blocks - covariates.shape[1]
        return np.concatenate(
            [covariates, np.repeat(covariates[:, -1:], pad, axis=1)], axis=1
        )


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class ForecastLoss(keras.losses.Loss):
    """Mean squared error, or pinball loss over quantiles, in units of `scale`.

    Targets that are NaN (gaps) are left out: each window's loss is the
    mean over its known targets (0 when it has none). Dividing by the
    series' scale keeps the loss, and `val_loss`, comparable across series.

    Args:
        quantiles: None for squared error, else the forecast's quantiles.
        scale: the series' scale (`Forecaster.scale` after `adapt`).
    """

    def __init__(
        self,
        quantiles: Sequence[float] | None = None,
        scale: float = 1.0,
        name: str = "forecast_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.quantiles = (
            None if quantiles is None else tuple(float(q) for q in quantiles)
        )
        self.scale_value = float(scale)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        known = ops.isfinite(y_true)
        y_true = ops.where(known, y_true, 0.0)
        if self.quantiles is None:
            error = ops.square((y_true - y_pred) / self.scale_value)
        else:
            q = ops.convert_to_tensor(self.quantiles, dtype=y_pred.dtype)
            gap = (y_true[..., None] - y_pred) / self.scale_value
            error = ops.mean(ops.maximum(q * gap, (q - 1.0) * gap), axis=-1)
        known = ops.cast(known, error.dtype)
        return ops.sum(error * known, axis=-1) / ops.maximum(
            ops.sum(known, axis=-1), 1.0
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "quantiles": None if self.quantiles is None else list(self.quantiles),
            "scale": self.scale_value,
        }


def _check_quantiles(quantiles: Sequence[float] | None) -> tuple[float, ...] | None:
    if quantiles is None:
        return None
    try:
        values = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be numbers, got {quantiles!r}") from None
    if (
        not values
        or any(not 0.0 < q < 1.0 for q in values)
        or list(values) != sorted(set(values))
        or 0.5 not in values
    ):
        raise ValueError(
            "quantiles must increase strictly within (0, 1) and hold 0.5 (the "
            f"point forecast), got {quantiles!r}"
        )
    return values
