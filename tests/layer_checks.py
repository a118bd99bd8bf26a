"""The checks every recurrent_zoo layer must pass, in one place.

Each layer's test module calls `run_layer_checks` with a factory and a tiny
input; layer-specific numerics (oracles) live in the layer's own tests.
"""

import contextlib
import textwrap
from pathlib import Path

import keras
import numpy as np
from clean_process import run_clean

_EXPORT_SCRIPT = textwrap.dedent(
    """
    import sys
    # Make `import recurrent_zoo` fail: the SavedModel must not need it.
    sys.modules["recurrent_zoo"] = None
    import json
    import numpy as np
    import tensorflow as tf

    spec = json.loads(sys.argv[1])
    loaded = tf.saved_model.load(spec["path"])
    inputs = [tf.constant(np.load(p)) for p in spec["inputs"]]
    # A one-input model's signature takes a tensor, a multi-input one a list.
    outputs = loaded.serve(inputs[0] if len(inputs) == 1 else inputs)
    np.save(spec["output"], np.asarray(outputs))
    loaded_packages = {name.split(".")[0] for name, m in sys.modules.items() if m}
    assert "recurrent_zoo" not in loaded_packages
    """
)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _unwrap(inputs):
    return inputs if len(inputs) > 1 else inputs[0]


def _model_around(make_layer, inputs):
    """A functional model: Input(s) -> layer -> output."""
    model_inputs = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in inputs]
    layer = make_layer()
    args = _unwrap(model_inputs)
    outputs = layer(args)
    assert not isinstance(outputs, (list, tuple)), "checks need a single output"
    return keras.Model(args, outputs), layer


def check_config_round_trip(layer) -> None:
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # Registered so `.keras` files resolve the class without custom_objects.
    name = keras.saving.get_registered_name(type(layer))
    assert name == f"recurrent_zoo>{type(layer).__name__}", name
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer)
    assert revived.get_config() == config


def check_saving(model, inputs, tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = keras.ops.convert_to_numpy(model(inputs))
    actual = keras.ops.convert_to_numpy(loaded(inputs))
    np.testing.assert_array_equal(actual, expected)


def check_fit_step(model, inputs) -> None:
    """One optimizer step on a fixed random target lowers the loss."""
    out = keras.ops.convert_to_numpy(model(inputs))
    target = np.random.default_rng(0).normal(size=out.shape).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = model.evaluate(inputs, target, verbose=0)
    model.fit(inputs, target, batch_size=len(out), epochs=1, verbose=0)
    after = model.evaluate(inputs, target, verbose=0)
    assert after < before, (before, after)


def check_export_without_package(model, inputs, tmp_path: Path, atol=1e-5) -> None:
    """`model.export` output runs in a process where recurrent_zoo can't import."""
    export_dir = tmp_path / "export"
    model.export(str(export_dir), verbose=False)
    paths = []
    for i, array in enumerate(inputs):
        paths.append(str(tmp_path / f"input_{i}.npy"))
        np.save(paths[-1], array)
    spec = {
        "path": str(export_dir),
        "inputs": paths,
        "output": str(tmp_path / "out.npy"),
    }
    run_clean(_EXPORT_SCRIPT, spec, tmp_path)
    expected = keras.ops.convert_to_numpy(model(_unwrap(inputs)))
    np.testing.assert_allclose(np.load(spec["output"]), expected, atol=atol)


def check_masking(make_layer, inputs, mask, rng_seed=0) -> None:
    """Garbage at masked positions must not change any output."""
    layer = make_layer()
    args = _unwrap(inputs)
    clean = keras.ops.convert_to_numpy(layer(args, mask=mask))
    noisy_inputs = []
    rng = np.random.default_rng(rng_seed)
    for array in inputs:
        noisy = array.copy()
        if noisy.ndim >= 2 and noisy.shape[:2] == np.shape(mask)[:2]:
            noise = rng.normal(scale=10.0, size=noisy.shape).astype(noisy.dtype)
            noisy = np.where(np.expand_dims(mask, -1), noisy, noise)
        noisy_inputs.append(noisy)
    noisy_args = _unwrap(noisy_inputs)
    noisy_out = keras.ops.convert_to_numpy(layer(noisy_args, mask=mask))
    assert np.all(np.isfinite(clean))
    np.testing.assert_allclose(noisy_out, clean, atol=1e-6)


def check_stateful(layer_cls, x, atol=1e-5, **kwargs) -> None:
    """A stateful layer fed x in two chunks equals one pass over all of x."""
    whole = layer_cls(return_sequences=True, **kwargs)
    whole(x)
    parts = layer_cls(return_sequences=True, stateful=True, **kwargs)
    parts(x[:, :2])
    parts.set_weights(whole.get_weights())
    parts.reset_states()
    got = np.concatenate([parts(x[:, :2]), parts(x[:, 2:])], axis=1)
    np.testing.assert_allclose(got, whole(x), atol=atol)


def run_layer_checks(
    make_layer, inputs, tmp_path: Path, mask=None, export=True
) -> None:
    """Config round trip, `.keras` save/load, masking, one `fit` step, export.

    Args:
        make_layer: zero-argument callable returning a fresh layer whose call
            takes `inputs` (one array, or a list for multi-input layers) and
            returns one tensor.
        inputs: float32 NumPy array or list of arrays, batch first.
        tmp_path: scratch folder (pytest's `tmp_path`).
        mask: optional boolean (batch, time) mask for the masking check.
        export: also check `model.export` + reload without recurrent_zoo.
    """
    inputs = _as_list(inputs)
    model, layer = _model_around(make_layer, inputs)
    check_config_round_trip(layer)
    check_saving(model, _unwrap(inputs), tmp_path)
    if mask is not None:
        check_masking(make_layer, inputs, mask)
    if export:
        check_export_without_package(model, inputs, tmp_path)
    check_fit_step(model, _unwrap(inputs))


@contextlib.contextmanager
def loop_path(path: str, monkeypatch, layer_cls, kernel_module, kernel_name: str):
    """Force a recurrent layer through its TF kernel ("fused") or Keras's loop.

    On exit, checks that the kernel ran exactly when it was meant to, so a
    test parametrized over both paths can't silently test one twice.
    """
    calls = []
    original = getattr(kernel_module, kernel_name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(kernel_module, kernel_name, counted)
    if path == "generic":
        monkeypatch.setattr(layer_cls, "fused_loop", lambda self, *args: None)
    yield path
    assert bool(calls) == (path == "fused"), f"{path} path ran the kernel {len(calls)}x"
