"""The forecaster's SavedModel: a window of past values in, forecasts out.

A `Forecaster` exports one signature, TensorFlow ops only (callable with
`tf.saved_model.load` where recurrent_zoo and Keras are not installed):

    serving_default   window      float32 [None, window]   past values, raw
                      covariates  float32 [None, window + horizon, C]
                                  (only for a model with covariates)
                   -> forecast    float32 [None, horizon]  the point forecast
                      quantiles   float32 [None, horizon, Q]
                                  (only for a model with quantiles)

The normalization is inside the graph (the model's `mean` and `scale`), so
a window is passed in the series' own units. Fill gaps first
(`recurrent_zoo.data.series.window_inputs`): a NaN left in a window reads
as the training mean. Forecasting past the horizon is the caller's loop
(`Forecaster.forecast` is one).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from recurrent_zoo.models import Forecaster

__all__ = ["COVARIATES_KEY", "FORMAT", "WINDOW_KEY", "forecaster_function"]

WINDOW_KEY = "window"
COVARIATES_KEY = "covariates"
FORMAT = "recurrent_zoo.forecaster.saved_model/1"


def forecaster_function(model: Forecaster) -> tuple[Callable, dict]:
    """The signature as a `tf.function`, and what the export's metadata adds.

    Raises:
        TypeError: if `model` is not a `Forecaster`.
    """
    if not isinstance(model, Forecaster):
        raise TypeError(f"expected a Forecaster, got {type(model).__name__}")
    specs = [tf.TensorSpec([None, model.window], tf.float32, name=WINDOW_KEY)]
    if model.covariates:
        steps = model.window + model.horizon
        specs.append(
            tf.TensorSpec(
                [None, steps, model.covariates], tf.float32, name=COVARIATES_KEY
            )
        )

    def outputs(inputs: object) -> dict[str, tf.Tensor]:
        out = tf.cast(model(inputs, training=False), tf.float32)
        if model.quantiles is None:
            return {"forecast": out}
        return {"forecast": out[..., model.point_index], "quantiles": out}

    # No Python control flow depends on tensors: autograph would only slow
    # tracing down.
    if model.covariates:

        @tf.function(input_signature=specs, autograph=False)
        def serve(window: tf.Tensor, covariates: tf.Tensor) -> dict[str, tf.Tensor]:
            return outputs({WINDOW_KEY: window, COVARIATES_KEY: covariates})

    else:

        @tf.function(input_signature=specs, autograph=False)
        def serve(window: tf.Tensor) -> dict[str, tf.Tensor]:
            return outputs(window)

    metadata = {
        "format": FORMAT,
        "input": {
            spec.name: {"dtype": "float32", "shape": spec.shape.as_list()}
            for spec in specs
        },
        "horizon": model.horizon,
        "window": model.window,
        "quantiles": None if model.quantiles is None else list(model.quantiles),
    }
    return serve, metadata
