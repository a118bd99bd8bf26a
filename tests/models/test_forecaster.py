"""`Forecaster`: its arithmetic, rollouts, loss, files, and that it learns."""

import keras
import numpy as np
import pytest

from recurrent_zoo.data.series import window_inputs
from recurrent_zoo.models import Forecaster, ForecastLoss, get

TINY = {"horizon": 3, "window": 8, "cell": "gru", "units": (4,)}


def _set_head(model, bias, kernel=0.0):
    """A head of known output: `bias` (+ `kernel` times the state)."""
    w, b = model.head.get_weights()
    model.head.set_weights([np.full_like(w, kernel), np.broadcast_to(bias, b.shape)])


def _set_skip(model, rng, spread=0.3):
    """Random weights in the linear skip; returns them, (window, outputs)."""
    (kernel,) = model.skip.get_weights()
    kernel = rng.normal(0, spread, kernel.shape).astype("float32")
    model.skip.set_weights([kernel])
    return kernel


@pytest.mark.parametrize(
    ("options", "quoted"),
    [
        ({"horizon": 0}, "horizon=0"),
        ({"window": 2.5}, "window=2.5"),
        ({"cell": "transformer"}, "'transformer'"),
        ({"units": ()}, "()"),
        ({"covariates": -1}, "-1"),
        ({"quantiles": (0.1, 0.9)}, "(0.1, 0.9)"),
        ({"quantiles": (0.5, 0.1)}, "(0.5, 0.1)"),
        ({"quantiles": (0.0, 0.5)}, "(0.0, 0.5)"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"relative": "yes"}, "'yes'"),
        ({"linear_skip": 1}, "linear_skip must be True or False, got 1"),
    ],
)
def test_bad_arguments_are_quoted(options, quoted):
    with pytest.raises(ValueError) as caught:
        Forecaster(**{**TINY, **options})
    assert quoted in str(caught.value)


def test_adapt_normalizes_by_known_training_values():
    model = Forecaster(**TINY)
    values = np.array([1.0, np.nan, 4.0, 7.0])
    model.adapt(values)
    np.testing.assert_allclose(float(model.mean.numpy()), 4.0)
    np.testing.assert_allclose(float(model.scale.numpy()), np.std([1, 4, 7]), rtol=1e-6)
    # A constant series: scale 1, not a division by zero.
    model.adapt(np.full(10, 5.0))
    assert float(model.scale.numpy()) == 1.0
    with pytest.raises(ValueError, match="all NaN"):
        model.adapt([np.nan])


@pytest.mark.parametrize("relative", [True, False])
def test_outputs_are_denormalized_around_the_last_value_or_the_mean(relative):
    model = Forecaster(**TINY, relative=relative)
    model.adapt([0.0, 10.0])  # mean 5, scale 5
    _set_head(model, [0.1, 0.2, -0.4])
    window = np.array([[1, 2, 3, 4, 5, 6, 7, 9.0]], dtype="float32")
    base = 9.0 if relative else 5.0
    np.testing.assert_allclose(
        model.predict_on_batch(window),
        [[base + 0.5, base + 1.0, base - 2.0]],
        rtol=1e-6,
    )


def test_an_untrained_model_and_a_constant_series_give_the_constant():
    model = Forecaster(**TINY)
    model.adapt(np.full(40, 3.25))
    model.compile(optimizer="adam", loss=ForecastLoss(None, 1.0))
    windows = np.full((16, 8), 3.25, "float32")
    model.fit(windows, np.full((16, 3), 3.25), epochs=2, verbose=0)
    np.testing.assert_allclose(model.forecast(np.full(20, 3.25), 7), 3.25, atol=1e-6)


def test_the_rollout_feeds_its_point_forecasts_back():
    model = Forecaster(**TINY)
    model.adapt([0.0, 2.0])  # mean 1, scale 1
    _set_head(model, 0.5)  # every forecast: the last value + 0.5
    forecasts = model.forecast(np.arange(10.0), steps=7)
    # Three blocks of 3 from last values 9, 9.5, 10; the 7 first kept.
    np.testing.assert_allclose(forecasts, [9.5] * 3 + [10] * 3 + [10.5], rtol=1e-6)
    batch = model.forecast(np.stack([np.arange(10.0), np.zeros(10)]), steps=2)
    np.testing.assert_allclose(batch, [[9.5, 9.5], [0.5, 0.5]], rtol=1e-6)


def test_quantiles_are_sorted_and_the_median_is_fed_back():
    model = Forecaster(**TINY, quantiles=(0.1, 0.5, 0.9))
    model.adapt([0.0, 2.0])
    # Per step (q0.1, q0.5, q0.9) raw: (2, -1, 0.5); sorted: (-1, 0.5, 2).
    _set_head(model, np.tile([2.0, -1.0, 0.5], 3))
    bands = model.forecast(np.zeros(8), steps=6, quantiles=True)
    assert bands.shape == (6, 3)
    np.testing.assert_allclose(bands[:3], [[-1, 0.5, 2]] * 3, rtol=1e-6)
    np.testing.assert_allclose(bands[3:], [[-0.5, 1, 2.5]] * 3, rtol=1e-6)
    np.testing.assert_allclose(model.forecast(np.zeros(8), steps=4), [0.5] * 3 + [1])


def test_a_history_shorter_than_the_window_is_refused():
    model = Forecaster(**TINY)
    with pytest.raises(
        ValueError, match="history holds 5 values; the model reads windows of 8"
    ):
        model.forecast(np.arange(5.0))
    with pytest.raises(ValueError, match="no quantiles"):
        model.forecast(np.arange(8.0), quantiles=True)


def test_gaps_in_the_history_are_filled_causally():
    model = Forecaster(**TINY)
    model.adapt(np.arange(12.0))
    _set_head(model, 0.1, kernel=0.3)  # the state matters now
    history = np.array([0, 1, np.nan, 3, 4, 5, 6, np.nan, 8, np.nan, np.nan])
    filled = window_inputs(history, np.array([11]), 8)[0]
    np.testing.assert_allclose(filled, [3, 4, 5, 6, 7, 8, 8, 8])
    np.testing.assert_allclose(
        model.forecast(history), model.forecast(filled), rtol=1e-6
    )


def test_a_long_rollout_of_a_wild_model_stays_finite():
    model = Forecaster(**{**TINY, "cell": "layer_norm_lstm"})
    model.adapt(np.arange(100.0))
    _set_head(model, 5.0, kernel=50.0)  # far bigger than training would give
    history = np.concatenate([np.arange(100.0), [1e30, -1e30, np.nan]])
    forecasts = model.forecast(history, steps=600)
    assert forecasts.shape == (600,) and np.isfinite(forecasts).all()


@pytest.mark.parametrize("quantiles", [None, (0.2, 0.5, 0.8)])
def test_the_loss_skips_unknown_targets(quantiles):
    truth = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]], "float32")
    q = 1 if quantiles is None else len(quantiles)
    predicted = np.arange(6 * q, dtype="float32").reshape(2, 3, q) / 4
    if quantiles is None:
        predicted = predicted[..., 0]
        errors = ((truth - predicted) / 2.0) ** 2
    else:
        gap = (truth[..., None] - predicted) / 2.0
        levels = np.array(quantiles)
        errors = np.maximum(levels * gap, (levels - 1) * gap).mean(axis=-1)
    # The first window: the mean over its two known targets; the second
    # has none, adds 0 and still counts in the batch mean.
    expected = (errors[0, 0] + errors[0, 2]) / 2 / 2
    loss = ForecastLoss(quantiles, scale=2.0)
    np.testing.assert_allclose(float(loss(truth, predicted)), expected, rtol=1e-5)
    again = ForecastLoss.from_config(loss.get_config())
    np.testing.assert_allclose(float(again(truth, predicted)), expected, rtol=1e-5)


def test_a_keras_file_round_trip_keeps_config_and_outputs(tmp_path):
    options = {**TINY, "cell": "min_gru", "covariates": 2, "linear_skip": True}
    model = get("forecaster", **options, quantiles=(0.1, 0.5, 0.9))
    model.adapt(np.random.default_rng(0).normal(5, 2, 50))
    _set_head(model, 0.1, kernel=0.2)
    _set_skip(model, np.random.default_rng(3))
    inputs = {
        "window": np.random.default_rng(1).normal(5, 2, (4, 8)).astype("float32"),
        "covariates": np.random.default_rng(2)
        .normal(size=(4, 11, 2))
        .astype("float32"),
    }
    path = tmp_path / "forecaster.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Forecaster)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(
        loaded.predict_on_batch(inputs), model.predict_on_batch(inputs), rtol=1e-6
    )
    with pytest.raises(ValueError, match="covariates must be"):
        model.forecast(np.zeros(8), covariates=np.zeros((9, 2)))


def test_a_tiny_model_beats_seasonal_naive_on_a_sine_with_trend():
    """MASE < 1 on held-out values, computed here by hand."""
    period, window, horizon = 12, 24, 6
    t = np.arange(400.0)
    rng = np.random.default_rng(0)
    series = 0.05 * t + np.sin(2 * np.pi * t / period) + rng.normal(0, 0.05, len(t))
    cut = 340
    model = Forecaster(horizon=horizon, window=window, cell="gru", units=(16,))
    model.adapt(series[:cut])
    starts = np.arange(window, cut - horizon + 1)
    x = window_inputs(series, starts, window).astype("float32")
    y = series[starts[:, None] + np.arange(horizon)]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2, clipnorm=1.0),
        loss=ForecastLoss(None, float(model.scale.numpy())),
    )
    model.fit(x, y, batch_size=32, epochs=25, verbose=0, shuffle=True)
    origins = np.arange(cut, len(t) - horizon + 1)
    forecasts = np.stack([model.forecast(series[:o]) for o in origins])
    truth = series[origins[:, None] + np.arange(horizon)]
    scale = np.mean(np.abs(series[period:cut] - series[: cut - period]))
    mase = np.mean(np.abs(forecasts - truth)) / scale
    assert mase < 1.0, mase
    # Far past the horizon, fed its own forecasts, it neither blows up nor
    # wanders off: 50 horizons later it stays near the trend line (the
    # series spans 20; three seeds strayed 1.9 to 6.5 at most).
    far = model.forecast(series, steps=50 * horizon)
    assert np.isfinite(far).all()
    trend = 0.05 * np.arange(len(t), len(t) + len(far))
    assert np.abs(far - trend).max() < 15.0


@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("quantiles", [None, (0.1, 0.5, 0.9)])
def test_the_linear_skip_alone_is_a_linear_map_of_the_normalized_window(
    relative, quantiles
):
    """The recurrent head zeroed: the model is the NumPy map of the module."""
    model = Forecaster(**TINY, relative=relative, quantiles=quantiles, linear_skip=True)
    rng = np.random.default_rng(0)
    model.adapt(rng.normal(3.0, 2.0, 200))
    mean, scale = float(model.mean.numpy()), float(model.scale.numpy())
    windows = rng.normal(3.0, 2.0, (5, 8)).astype("float32")
    # Untrained: the naive forecast (the last value, or the mean for levels).
    naive = windows[:, -1:] if relative else np.full((5, 1), mean)
    untrained = model.predict_on_batch(windows)
    if quantiles is not None:
        untrained = untrained[..., 1]
    np.testing.assert_allclose(untrained, np.repeat(naive, 3, axis=1), rtol=1e-5)
    _set_head(model, 0.0)
    kernel = _set_skip(model, rng)
    z = (windows.astype(np.float64) - mean) / scale
    d = z @ kernel.astype(np.float64)
    if quantiles is not None:
        d = np.sort(d.reshape(5, 3, 3), axis=-1)
        naive = naive[:, :, None]
    expected = naive + scale * d if relative else mean + scale * d
    np.testing.assert_allclose(model.predict_on_batch(windows), expected, atol=1e-4)


def test_the_linear_skip_survives_the_saved_model(tmp_path):
    from recurrent_zoo.export import export_saved_model

    model = Forecaster(**TINY, linear_skip=True)
    rng = np.random.default_rng(0)
    model.adapt(rng.normal(10.0, 3.0, 100))
    _set_head(model, 0.05, kernel=0.1)
    _set_skip(model, rng)
    path = export_saved_model(model, tmp_path / "serving")
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    windows = rng.normal(10.0, 3.0, (4, 8)).astype("float32")
    np.testing.assert_allclose(
        serve(window=tf.constant(windows))["forecast"].numpy(),
        model.predict_on_batch(windows),
        atol=1e-5,
    )


def _fit(model, x, y, epochs, rate=1e-2):
    model.compile(
        optimizer=keras.optimizers.Adam(rate, clipnorm=1.0),
        loss=ForecastLoss(None, float(model.scale.numpy())),
    )
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=True)


def test_the_linear_skip_learns_an_ar2_series():
    """On y_t = 1.2 y_{t-1} - 0.6 y_{t-2} + 10 + noise, the skip model's
    forecasts come near the exact AR(2) conditional means (computed here by
    recursion from the true coefficients), nearer than a recurrent-only
    model trained alike."""
    a1, a2, c = 1.2, -0.6, 10.0
    rng = np.random.default_rng(0)
    n, window, horizon, cut = 1600, 8, 3, 1200
    y = np.empty(n)
    y[:2] = c / (1 - a1 - a2)
    for t in range(2, n):
        y[t] = a1 * y[t - 1] + a2 * y[t - 2] + c + rng.normal()
    ends = np.arange(window, n - horizon + 1)
    x = window_inputs(y, ends, window).astype("float32")
    targets = y[ends[:, None] + np.arange(horizon)]
    train, test = ends <= cut - horizon, ends >= cut
    exact = np.empty((test.sum(), horizon))
    last, before = y[ends[test] - 1], y[ends[test] - 2]
    for step in range(horizon):
        last, before = a1 * last + a2 * before + c, last
        exact[:, step] = last
    away = {}
    for skip in (True, False):
        keras.utils.set_random_seed(0)
        model = Forecaster(
            horizon=horizon, window=window, cell="gru", units=(4,), linear_skip=skip
        )
        model.adapt(y[:cut])
        _fit(model, x[train], targets[train], epochs=4)
        away[skip] = np.mean((model.predict_windows(x[test]) - exact) ** 2)
    # The noise's variance is 1 (the exact forecasts' own squared error: 1,
    # 1 + a1^2, ... by step). Series drawn with seeds 0-2 measured
    # 0.05-0.08 with the skip, 0.16-0.22 without.
    assert away[True] < 0.15, away
    assert away[True] < 0.6 * away[False], away
