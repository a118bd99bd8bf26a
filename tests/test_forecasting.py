"""The forecasting task: its batches, splits, scores and run, against hand counts."""

import json

import keras
import numpy as np
import pytest

from recurrent_zoo.data import TimeSeries
from recurrent_zoo.data.series import split_train_test
from recurrent_zoo.training import task_for, train
from recurrent_zoo.training.arguments import run_arguments
from recurrent_zoo.training.forecasting import (
    rolling_forecasts,
    score_forecaster,
    summary,
)

SMALL = {"horizon": 2, "window": 4, "cell": "gru", "units": (4,)}


def _series(values, **kwargs):
    values = np.asarray(values, dtype=np.float64)
    return TimeSeries("s", np.arange(len(values)), values, period=2, **kwargs)


def _set_head(model, bias, kernel=0.0):
    w, b = model.head.get_weights()
    model.head.set_weights([np.full_like(w, kernel), np.broadcast_to(bias, b.shape)])


def _collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_batches_are_every_window_of_the_part_gaps_handled():
    task = task_for("forecaster")
    values = [0, 1, 2, np.nan, 4, 5, 6, np.nan, np.nan, 9.0]
    model = task.build(SMALL, _series(values), None)
    dataset, steps = task.batches(model, _series(values), 2, shuffle=False)
    x, y = _collect(dataset)
    # Origins 4..8; origin 7's targets (7, 8) are both gaps: dropped. A gap
    # inside a window is interpolated, one that ends it holds the last value.
    np.testing.assert_allclose(
        x,
        [[0, 1, 2, 2], [1, 2, 3, 4], [2, 3, 4, 5], [4, 5, 6, 6]],
    )
    np.testing.assert_allclose(
        y, [[4, 5], [5, 6], [6, np.nan], [np.nan, 9]], equal_nan=True
    )
    assert steps == 2  # 4 windows in batches of 2


def test_validation_batches_forecast_only_the_validation_values():
    task = task_for("forecaster")
    train_part, validation = _series(np.arange(20.0)).split(0.25)
    model = task.build(SMALL, train_part, None)
    _, y_train = _collect(task.batches(model, train_part, 64, shuffle=False)[0])
    x_val, y_val = _collect(task.batches(model, validation, 64, shuffle=False)[0])
    assert y_train.max() == 14  # the training part ends at 15
    np.testing.assert_allclose(y_val[:, 0], [15, 16, 17, 18])
    np.testing.assert_allclose(x_val[0], [11, 12, 13, 14])  # its context


def test_shuffled_batches_hold_the_same_windows():
    task = task_for("forecaster")
    series = _series(np.arange(30.0))
    model = task.build(SMALL, series, None)
    x, _ = _collect(task.batches(model, series, 4, shuffle=False)[0])
    shuffled, _ = _collect(task.batches(model, series, 4, shuffle=True, seed=3)[0])
    assert not np.array_equal(x, shuffled)
    np.testing.assert_array_equal(np.sort(x, axis=0), np.sort(shuffled, axis=0))


def test_rolling_forecasts_read_only_the_past():
    task = task_for("forecaster")
    rng = np.random.default_rng(0)
    values = rng.normal(size=40)
    values[[30, 33, 34]] = np.nan
    _, test = _series(values).split(0.25)
    model = task.build(SMALL, test, None)
    model.adapt(values[:30])
    _set_head(model, 0.1, kernel=0.5)
    rolled = rolling_forecasts(model, test)
    np.testing.assert_array_equal(rolled.origins, np.arange(30, 39))
    # Each origin's forecast is what `forecast` gives from the history alone.
    for o, row in zip(rolled.origins, rolled.forecasts, strict=True):
        np.testing.assert_allclose(row, model.forecast(values[:o]), rtol=1e-5)
    np.testing.assert_array_equal(
        rolled.truth, values[rolled.origins[:, None] + np.arange(2)]
    )


def test_scores_are_mae_rmse_and_mase_by_hand():
    task = task_for("forecaster")
    values = np.sin(np.arange(30.0)) * 3 + np.arange(30.0)
    values[27] = np.nan  # an unknown truth is not scored
    _, test = _series(values).split(0.2)
    model = task.build(SMALL, test, None)
    model.adapt(values[:24])
    _set_head(model, 0.05)
    scores = score_forecaster(model, test)
    origins = np.arange(24, 29)
    truth = values[origins[:, None] + np.arange(2)]
    # The naive value plus 0.05 scales; origin 28 reads 26's (27 is a gap).
    last = values[np.where(origins == 28, 26, origins - 1)]
    shift = 0.05 * float(model.scale.numpy())
    forecasts = np.repeat(last[:, None], 2, axis=1) + shift
    error = (forecasts - truth)[np.isfinite(truth)]
    scale = np.mean(np.abs(values[2:24] - values[:22]))  # period 2, before 24
    assert scores["count"] == 8 and scores["forecasts"] == 5
    np.testing.assert_allclose(scores["mae"], np.abs(error).mean(), rtol=1e-5)
    np.testing.assert_allclose(scores["rmse"], np.sqrt((error**2).mean()), rtol=1e-5)
    np.testing.assert_allclose(scores["mase"], np.abs(error).mean() / scale, rtol=1e-5)
    json.dumps(scores)  # JSON-ready (metrics.json)
    assert summary(scores).startswith(f"test MASE {scores['mase']:.3f}, MAE ")
    assert summary(scores).endswith("over 5 forecasts of 2 steps")


def test_a_constant_series_is_forecast_and_has_no_mase():
    task = task_for("forecaster")
    _, test = _series(np.full(30, 7.0)).split(0.2)
    model = task.build(SMALL, test, None)
    model.adapt(np.full(24, 7.0))
    scores = score_forecaster(model, test)
    assert scores["mae"] == 0.0 and scores["mase"] is None
    assert "test MASE undefined, MAE 0" in summary(scores)


def test_build_refuses_what_the_series_cannot_give():
    task = task_for("forecaster")
    train_part, _ = split_train_test(_series(np.arange(30.0)))  # 3 held out
    with pytest.raises(
        ValueError, match="test stretch holds 3 values, fewer than the horizon 4"
    ):
        task.build({**SMALL, "horizon": 4}, train_part, None)
    with pytest.raises(ValueError, match=r"does not take \['embedding_dim'\]"):
        task.build({"embedding_dim": 8}, train_part, None)
    with pytest.raises(ValueError, match="calendar features need dates"):
        task.build({**SMALL, "calendar": True}, train_part, None)
    with pytest.raises(ValueError, match="max_per_class .* does not apply"):
        task.load_split("series", "co2", "train", max_per_class=5, seed=0)
    with pytest.raises(ValueError, match="not 'text'"):
        task.load_split("text", "co2", "train", max_per_class=None, seed=0)


def _arguments(**kw):
    defaults = dict(
        corpus=None, epochs=1, batch_size=8, learning_rate=None,
        validation_fraction=0.1, patience=1, monitor="val_loss", seed=0,
        max_per_class=None, test_max_per_class=None, remove=(), overrides=None,
        pretrain_epochs=0, pretrain_learning_rate=1e-3, refit=False,
    )  # fmt: skip
    return run_arguments(task_for("forecaster"), "co2", **{**defaults, **kw})


def test_run_arguments_keep_series_names_and_refuse_other_tasks_options():
    assert _arguments()["data"] == "co2" and _arguments()["corpus"] == "series"
    with pytest.raises(ValueError, match="pretrain_epochs applies to classifiers"):
        _arguments(pretrain_epochs=1)
    with pytest.raises(ValueError, match="only applies to 20newsgroups"):
        _arguments(remove=("headers",))
    with pytest.raises(ValueError, match="monitor must be one of"):
        _arguments(monitor="val_accuracy")


def test_a_run_normalizes_on_its_training_part_only(tmp_path):
    """A CSV whose later values are 1000 times larger: the model's mean and
    scale are those of the training part, before validation and test."""
    values = np.concatenate([np.sin(np.arange(80.0)), 1000 + np.arange(20.0)])
    path = tmp_path / "jump.csv"
    path.write_text(
        "t,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)), encoding="utf-8"
    )
    out = tmp_path / "run"
    overrides = {**SMALL, "units": [4]}
    metrics = train("forecaster", path, out, epochs=1, overrides=overrides, verbose=0)
    # Test: the last 10 values; validation: the 9 before (ceil(0.1 * 90)).
    assert metrics["examples"] == {"train": 81, "validation": 9, "test": 10}
    model = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(float(model.mean.numpy()), values[:81].mean(), rtol=1e-5)
    np.testing.assert_allclose(float(model.scale.numpy()), values[:81].std(), rtol=1e-5)
    assert (out / "forecast.png").stat().st_size > 0
