"""A forecaster's SavedModel with covariates and quantiles, loaded without Keras."""

import json

import numpy as np
import tensorflow as tf

from recurrent_zoo.export import export_saved_model
from recurrent_zoo.models import Forecaster


def test_the_signature_takes_windows_and_covariates_and_gives_quantiles(tmp_path):
    model = Forecaster(
        horizon=4,
        window=6,
        cell="layer_norm_lstm",
        units=(5,),
        covariates=2,
        quantiles=(0.1, 0.5, 0.9),
    )
    model.adapt(np.random.default_rng(0).normal(50, 5, 100))
    w, b = model.head.get_weights()
    rng = np.random.default_rng(1)
    model.head.set_weights([rng.normal(0, 0.3, w.shape), rng.normal(0, 0.3, b.shape)])
    path = export_saved_model(model, tmp_path / "serving")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    window = rng.normal(50, 5, (3, 6)).astype("float32")
    covariates = rng.normal(size=(3, 10, 2)).astype("float32")
    out = serve(window=tf.constant(window), covariates=tf.constant(covariates))
    expected = model.predict_on_batch({"window": window, "covariates": covariates})
    np.testing.assert_allclose(out["quantiles"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out["forecast"].numpy(), expected[..., 1], atol=1e-5)
    # A gap left in a window reads as the training mean: never a NaN out.
    window[0, 2] = np.nan
    out = serve(window=tf.constant(window), covariates=tf.constant(covariates))
    assert np.isfinite(out["quantiles"].numpy()).all()
    metadata = json.loads((path / "assets.extra/recurrent_zoo.json").read_text())
    assert metadata["format"] == "recurrent_zoo.forecaster.saved_model/1"
    assert metadata["input"]["covariates"]["shape"] == [None, 10, 2]
    assert metadata["quantiles"] == [0.1, 0.5, 0.9]
