"""`train forecaster`, `evaluate` and `export` on a real series, end to end."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_support import fails_in_one_line, run_cli

from recurrent_zoo.data import load_series

TINY = [
    "--window", "22",
    "--horizon", "11",
    "--units", "8",
    "--cell", "gru",
    "--epochs", "2",
    "--batch-size", "32",
    "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("forecaster") / "sunspots"
    argv = ["train", "forecaster", "--data", "sunspots", "--out", str(out), *TINY]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    return {"argv": argv, "out": out, "stdout": stdout}


def _scores_by_hand(model, values, start):
    """MAE, RMSE and MASE of `model.forecast` from every test origin."""
    origins = np.arange(start, len(values) - model.horizon + 1)
    forecasts = np.stack([model.forecast(values[:o]) for o in origins])
    error = forecasts - values[origins[:, None] + np.arange(model.horizon)]
    scale = np.mean(np.abs(values[11:start] - values[: start - 11]))
    mae = np.abs(error).mean()
    return mae, np.sqrt((error**2).mean()), mae / scale


def test_train_writes_the_run_and_resumes_when_finished(run):
    out = run["out"]
    for name in ("model.keras", "metrics.json", "curves.png", "forecast.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert metrics["arguments"]["data"] == "sunspots"
    assert metrics["examples"] == {"train": 250, "validation": 28, "test": 31}
    assert test["forecasts"] == 21 and test["count"] == 21 * 11
    assert run["stdout"].startswith(
        f"train forecaster (done): test MASE {test['mase']:.3f}"
    )
    assert "forecast.png" in run["stdout"]
    code, stdout, _ = run_cli(run["argv"])
    assert code == 0 and stdout.startswith("train forecaster (already finished)")


def test_evaluate_prints_the_errors_of_the_models_own_forecasts(run):
    code, stdout, stderr = run_cli(["evaluate", str(run["out"]), "--data", "sunspots"])
    assert code == 0, stderr
    model = keras.saving.load_model(run["out"] / "model.keras")
    mae, rmse, mase = _scores_by_hand(model, load_series("sunspots").values, 278)
    assert f"MAE {mae:.4g}, RMSE {rmse:.4g}, MASE {mase:.4f}" in stdout
    assert "21 forecasts of 11 steps, 231 values scored" in stdout
    code, payload, _ = run_cli(
        ["evaluate", str(run["out"] / "model.keras"), "--data", "sunspots", "--json"]
    )
    report = json.loads(payload)
    assert report["mase"] == pytest.approx(mase, rel=1e-5)
    assert report["split"] == "test" and report["corpus"] == "series"


def test_export_serves_a_window_of_floats(run, tmp_path):
    code, stdout, stderr = run_cli(
        ["export", str(run["out"] / "model.keras"), str(tmp_path / "serving")]
    )
    assert code == 0, stderr
    serve = tf.saved_model.load(stdout.strip()).signatures["serving_default"]
    values = load_series("sunspots").values
    windows = np.stack([values[o - 22 : o] for o in range(22, 300, 7)]).astype(
        "float32"
    )
    served = serve(window=tf.constant(windows))["forecast"].numpy()
    model = keras.saving.load_model(run["out"] / "model.keras")
    np.testing.assert_allclose(served, model.predict_on_batch(windows), atol=1e-5)


def test_options_of_other_tasks_and_impossible_windows_fail_in_one_line(run, tmp_path):
    base = ["train", "forecaster", "--out", str(tmp_path / "x"), "--quiet"]
    cases = [
        (["--data", "sunspots", "--remove", "headers"], "only applies to 20newsgroups"),
        (["--data", "sunspots", "--pretrain-epochs", "1"], "pretrain_epochs applies"),
        (["--data", "sunspots", "--max-per-class", "5"], "does not apply to a series"),
        (["--data", "sunspots", "--embedding-dim", "4"], "does not take"),
        (["--data", str(tmp_path / "none.csv")], "neither a series name"),
        (
            ["--data", "sunspots", "--window", "300"],
            "leave no room for a window of 300",
        ),
        (["--data", "sunspots", "--horizon", "40"], "fewer than the horizon 40"),
        (["--data", "sunspots", "--calendar"], "calendar features need dates"),
    ]
    for options, message in cases:
        fails_in_one_line([*base, *options], "train", message)
    assert not (tmp_path / "x").exists()  # refused before anything is written
    fails_in_one_line(
        ["evaluate", str(run["out"]), "--data", "sunspots", "--split", "validation"],
        "evaluate",
        "split must be one of",
    )


def test_linear_skip_switch_reaches_the_model(tmp_path):
    out = tmp_path / "skip"
    argv = ["train", "forecaster", "--data", "sunspots", "--out", str(out), *TINY]
    code, _, stderr = run_cli([*argv, "--linear-skip", "--epochs", "1"])
    assert code == 0, stderr
    model = keras.saving.load_model(out / "model.keras")
    skip = model.get_layer("linear_skip").get_weights()[0]
    assert model.linear_skip and skip.shape == (22, 11)
    assert np.abs(skip).max() > 0  # trained from its zero start
