"""Every layer on JAX and PyTorch computes what it computes on TensorFlow.

The models are built and saved on TensorFlow (this process); a worker
process per backend (`backend_worker.py`) loads the same `.keras` files,
computes outputs and gradients with that backend's own autodiff, trains a
few steps, and saves the model again, which TensorFlow then loads. Off
TensorFlow the recurrent layers take Keras's generic loop (or, for the
parallel-scan layers, the same `keras.ops` code), so this holds the
fused TensorFlow kernels and the portable path to one answer.

Skipped for a backend that is not installed (`pip install -e ".[backends]"`;
CI installs both).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_worker import gradients_tensorflow
from layer_cases import FEATURES, LENGTHS, RECURRENT, TIME, UNITS, make_recurrent

from recurrent_zoo.layers import AttentionPooling, BahdanauAttention, TfIdfBagOfWords

pytestmark = pytest.mark.slow  # a worker process per backend, ~30 models each

BACKENDS = {"jax": "jax", "torch": "torch"}  # backend -> the module it needs
WORKER = Path(__file__).resolve().parent / "backend_worker.py"
OUTPUT_TOL = 1e-5
GRADIENT_TOL = 1e-4


def _sequences(rng, features=FEATURES, masked=True):
    x = rng.normal(size=(len(LENGTHS), TIME, features)).astype("float32")
    if masked:
        for row, length in enumerate(LENGTHS):
            x[row, length:] = 0.0  # Masking(0) turns these steps off
    return x


def _recurrent(name, masked=True, **kwargs):
    inputs = keras.Input((TIME, FEATURES))
    x = keras.layers.Masking()(inputs) if masked else inputs
    outputs = make_recurrent(name, return_sequences=True, **kwargs)(x)
    return keras.Model(inputs, outputs), masked


def _cases():
    """name -> (model, its inputs, indices of the float inputs)."""
    # Seeded: the same weights every run, so a tolerance that holds once
    # holds always (float32 round-off differs from draw to draw).
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    built = {name: _recurrent(name) for name in RECURRENT}
    built["ln_lstm_unmasked"] = _recurrent("ln_lstm", masked=False)
    built["ln_lstm_backwards"] = _recurrent("ln_lstm", go_backwards=True)
    built["ln_lstm_state"] = _recurrent("ln_lstm", return_state=True)
    built["gru_backwards_state"] = _recurrent(
        "gru", go_backwards=True, return_state=True
    )
    cases = {
        name: (model, [_sequences(rng, masked=masked)], [0])
        for name, (model, masked) in built.items()
    }

    # An initial state under a mask, backwards: the padding comes first in
    # processing order, where the output is zeros (not h_0) on every backend.
    sequences, h0, c0 = (keras.Input(s) for s in ((TIME, FEATURES), (UNITS,), (UNITS,)))
    layer = make_recurrent("ln_lstm", return_sequences=True, go_backwards=True)
    cases["ln_lstm_initial_state"] = (
        keras.Model(
            [sequences, h0, c0],
            layer(keras.layers.Masking()(sequences), initial_state=[h0, c0]),
        ),
        [_sequences(rng)]
        + [rng.normal(size=(len(LENGTHS), UNITS)).astype("float32") for _ in "hc"],
        [0, 1, 2],
    )

    query, value = keras.Input((4, 3)), keras.Input((TIME, 5))
    attended = BahdanauAttention(6)([query, keras.layers.Masking()(value)])
    cases["bahdanau_attention"] = (
        keras.Model([query, value], attended),
        [rng.normal(size=(len(LENGTHS), 4, 3)).astype("float32"), _sequences(rng, 5)],
        [0, 1],
    )
    sequences = keras.Input((TIME, FEATURES))
    pooled = AttentionPooling(5)(keras.layers.Masking()(sequences))
    cases["attention_pooling"] = (
        keras.Model(sequences, pooled),
        [_sequences(rng)],
        [0],
    )
    ids = rng.integers(0, 12, size=(len(LENGTHS), TIME)).astype("int32")
    bag = TfIdfBagOfWords(12)
    bag.adapt(ids)
    words = keras.Input((TIME,), dtype="int32")
    cases["bag_of_words"] = (keras.Model(words, bag(words)), [ids], [])
    return cases


def _listed(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The cases saved for the workers, and TensorFlow's answers."""
    folder = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(1)
    spec, expected = [], {}
    for name, (model, inputs, floats) in _cases().items():
        outputs = _listed(model(inputs[0] if len(inputs) == 1 else inputs))
        cotangents = [
            rng.normal(size=tuple(o.shape)).astype("float32") for o in outputs
        ]
        arrays = {f"input_{i}": x for i, x in enumerate(inputs)}
        arrays.update({f"cotangent_{i}": c for i, c in enumerate(cotangents)})
        np.savez(folder / f"{name}.npz", **arrays)
        model.save(folder / f"{name}.keras")
        outputs, grads = gradients_tensorflow(model, inputs, cotangents, floats)
        expected[name] = (
            [np.asarray(o) for o in _listed(outputs)],
            [np.asarray(g) for g in grads],
        )
        spec.append(
            {
                "name": name,
                "inputs": len(inputs),
                "outputs": len(cotangents),
                "floats": floats,
            }
        )
    (folder / "spec.json").write_text(
        json.dumps({"folder": str(folder), "cases": spec})
    )
    return folder, expected


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request, reference):
    """Runs the worker on one backend; its results are in the folder."""
    name = request.param
    if importlib.util.find_spec(BACKENDS[name]) is None:
        pytest.skip(f"{name} is not installed")
    folder, _ = reference
    env = {**os.environ, "KERAS_BACKEND": name, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(WORKER), str(folder / "spec.json")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return name


def test_outputs_and_gradients_equal_tensorflows(reference, backend):
    folder, expected = reference
    for name, (outputs, grads) in expected.items():
        got = np.load(folder / f"{name}.{backend}.npz")
        for i, want in enumerate(outputs):
            np.testing.assert_allclose(
                got[f"output_{i}"], want, atol=OUTPUT_TOL, rtol=OUTPUT_TOL,
                err_msg=f"{name} output {i} on {backend}",
            )  # fmt: skip
        for i, want in enumerate(grads):
            np.testing.assert_allclose(
                got[f"gradient_{i}"], want, atol=GRADIENT_TOL, rtol=GRADIENT_TOL,
                err_msg=f"{name} gradient {i} on {backend}",
            )  # fmt: skip
        assert len([k for k in got if k.startswith("gradient_")]) == len(grads)


def test_a_few_steps_of_fit_lower_the_loss(reference, backend):
    folder, expected = reference
    trained = 0
    for name in expected:
        got = np.load(folder / f"{name}.{backend}.npz")
        if "losses" in got:
            before, after = got["losses"]
            assert np.isfinite(after) and after < before, (name, backend)
            trained += 1
    assert trained >= len(RECURRENT)


def test_a_model_saved_on_the_backend_loads_on_tensorflow(reference, backend):
    folder, expected = reference
    for name in expected:
        data = np.load(folder / f"{name}.npz")
        inputs = [data[f"input_{i}"] for i in range(len(data.files) // 2 + 1)
                  if f"input_{i}" in data]  # fmt: skip
        model = keras.saving.load_model(folder / f"{name}.{backend}.keras")
        got = _listed(model(inputs[0] if len(inputs) == 1 else inputs))
        # What the model computed on the backend just before it was saved
        # (after its training steps, where it had some).
        want = np.load(folder / f"{name}.{backend}.npz")
        for i, output in enumerate(got):
            np.testing.assert_allclose(
                np.asarray(output), want[f"saved_output_{i}"], atol=OUTPUT_TOL,
                rtol=OUTPUT_TOL, err_msg=f"{name} saved on {backend}",
            )  # fmt: skip


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_the_text_models_say_in_one_line_that_they_need_tensorflow(name, tmp_path):
    if importlib.util.find_spec(BACKENDS[name]) is None:
        pytest.skip(f"{name} is not installed")
    preset = Path(__file__).resolve().parent.parent / "recurrent_zoo" / "presets"
    result = subprocess.run(
        [sys.executable, "-m", "recurrent_zoo.cli", "evaluate",
         str(preset / "imdb_sentiment.keras"), "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": name, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 2
    # (TensorFlow's own start-up log lines may precede it.)
    said = [line for line in result.stderr.splitlines() if "recurrent-zoo" in line]
    assert len(said) == 1 and "only the TensorFlow backend" in said[0]
    assert "Traceback" not in result.stderr
