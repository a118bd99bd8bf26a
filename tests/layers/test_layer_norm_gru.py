import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_stateful, loop_path, run_layer_checks

from recurrent_zoo.layers import (
    Bidirectional,
    LayerNormGRU,
    LayerNormGRUCell,
    tf_gru_kernel,
)
from recurrent_zoo.reference import layer_norm_gru_bptt, layer_norm_gru_forward

RNG = np.random.default_rng(12)
X = RNG.normal(size=(3, 5, 4)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
# Gains and biases of order 1: a dropped or misplaced one shows.
RANDOM = {
    "gamma_initializer": keras.initializers.RandomNormal(1.0, 0.5, seed=1),
    "bias_initializer": keras.initializers.RandomNormal(0.0, 0.5, seed=3),
}


@pytest.fixture(params=["fused", "generic"])
def path(request, monkeypatch):
    """Run a test through the TF kernel and through Keras's generic loop."""
    with loop_path(
        request.param, monkeypatch, LayerNormGRU, tf_gru_kernel, "gru_recurrence"
    ) as name:
        yield name


def _params(layer):
    return {w.path.split("/")[-1]: np.asarray(w, np.float64) for w in layer.weights}


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_plain_equals_keras_gru(path, reset_after, go_backwards, masked):
    kwargs = dict(
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        reset_after=reset_after,
        bias_initializer=RANDOM["bias_initializer"],
    )
    ours = LayerNormGRU(3, layer_norm=False, **kwargs)
    theirs = keras.layers.GRU(3, **kwargs)
    ours(X)
    theirs(X)
    theirs.set_weights(ours.get_weights())
    mask = MASK if masked else None
    for a, b in zip(ours(X, mask=mask), theirs(X, mask=mask), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
def test_forward_matches_numpy(path, layer_norm, reset_after):
    layer = LayerNormGRU(
        3, layer_norm=layer_norm, reset_after=reset_after, return_sequences=True,
        return_state=True, **RANDOM,
    )  # fmt: skip
    hs, h_last = layer(X, mask=MASK)
    ref = layer_norm_gru_forward(X, _params(layer), layer_norm, reset_after, mask=MASK)
    np.testing.assert_allclose(hs, ref, atol=1e-5)
    np.testing.assert_allclose(h_last, ref[:, -1], atol=1e-5)


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("many_to_one", [True, False])
def test_gradients_match_numpy_bptt(path, layer_norm, reset_after, many_to_one):
    layer = LayerNormGRU(3, layer_norm=layer_norm, reset_after=reset_after,
                         return_sequences=not many_to_one, **RANDOM)  # fmt: skip
    layer(X)
    d_hs = RNG.normal(size=(3, 5, 3))
    if many_to_one:
        d_hs[:, :-1] = 0.0
    upstream = tf.constant(d_hs[:, -1] if many_to_one else d_hs, tf.float32)
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        # training=True: the kernel's own BPTT (inference skips its record).
        loss = tf.reduce_sum(layer(x, training=True) * upstream)
    variables = layer.trainable_variables
    grads = tape.gradient(loss, [x, *variables])
    expected = layer_norm_gru_bptt(X, _params(layer), d_hs, layer_norm, reset_after)
    names = ["x"] + [v.path.split("/")[-1] for v in variables]
    for name, grad in zip(names, grads, strict=True):
        np.testing.assert_allclose(grad, expected[name], atol=1e-4, err_msg=name)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("sequences", [True, False])
def test_masked_gradients_fused_equal_generic(monkeypatch, reset_after, sequences):
    layer = LayerNormGRU(3, reset_after=reset_after, return_sequences=sequences,
                         return_state=True, go_backwards=True, **RANDOM)  # fmt: skip
    layer(X)
    x = tf.constant(X)
    h0 = tf.constant(RNG.normal(size=(3, 3)).astype("float32"))
    shape = (3, 5, 3) if sequences else (3, 3)
    weights = tf.constant(RNG.normal(size=shape), "float32")

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([x, h0])
            out, h = layer(x, initial_state=[h0], mask=MASK, training=True)
            loss = tf.reduce_sum(out * weights) + tf.reduce_sum(h * h)
        return tape.gradient(loss, [x, h0, *layer.trainable_variables])

    fused = grads()
    monkeypatch.setattr(LayerNormGRU, "fused_loop", lambda self, *args: None)
    for a, b in zip(fused, grads(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_cell_in_keras_rnn_equals_layer(reset_after):
    layer = LayerNormGRU(3, reset_after=reset_after, return_sequences=True, **RANDOM)
    wrapped = keras.layers.RNN(
        LayerNormGRUCell(3, reset_after=reset_after), return_sequences=True
    )
    layer(X)
    wrapped(X)
    wrapped.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(X, mask=MASK), wrapped(X, mask=MASK), atol=1e-5)


def test_bidirectional_runs_the_backward_direction_reversed(path):
    layer = Bidirectional(LayerNormGRU(3, return_sequences=True, **RANDOM))
    out = np.asarray(layer(X, mask=MASK))
    forward, backward = layer.forward_layer, layer.backward_layer
    params = [_params(forward), _params(backward)]
    lengths = MASK.sum(axis=1)
    for row, length in enumerate(lengths):
        x = X[row : row + 1, :length]
        fwd = layer_norm_gru_forward(x, params[0])[0]
        bwd = layer_norm_gru_forward(x[:, ::-1], params[1])[0, ::-1]
        np.testing.assert_allclose(out[row, :length, :3], fwd, atol=1e-5)
        np.testing.assert_allclose(out[row, :length, 3:], bwd, atol=1e-5)


def test_dropout(path):
    layer = LayerNormGRU(3, dropout=0.5, seed=2, return_sequences=True)
    inference = layer(X)
    np.testing.assert_allclose(inference, layer(X, training=False))
    assert not np.allclose(layer(X, training=True), inference)


def test_recurrent_dropout_uses_generic_loop(monkeypatch):
    layer = LayerNormGRU(3, recurrent_dropout=0.5, seed=2)
    inference = layer(X, training=False)  # no dropout active: the kernel runs
    monkeypatch.setattr(tf_gru_kernel, "gru_recurrence", None)  # fails if used
    assert not np.allclose(layer(X, training=True), inference)


def test_stateful_carries_state_across_batches():
    check_stateful(LayerNormGRU, X, atol=1e-5, units=3)


@pytest.mark.parametrize(
    "reset_after", [True, pytest.param(False, marks=pytest.mark.slow)]
)
def test_layer_checks(tmp_path, reset_after):
    run_layer_checks(
        lambda: LayerNormGRU(3, reset_after=reset_after, **RANDOM),
        X,
        tmp_path,
        mask=MASK,
    )


def test_config_covers_every_argument():
    layer = LayerNormGRU(
        5, reset_after=False, layer_norm=False, norm_epsilon=1e-4,
        recurrent_activation="hard_sigmoid", go_backwards=True, seed=7,
    )  # fmt: skip
    config = layer.get_config()
    assert "beta_initializer" not in config  # a GRU has no shift
    rebuilt = LayerNormGRU.from_config(config)
    assert rebuilt.get_config() == config
    assert (rebuilt.reset_after, rebuilt.cell.layer_norm) == (False, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": -1}, "units=-1"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": 3, "dropout": 1.0}, "dropout=1.0"),
        ({"units": 3, "recurrent_dropout": 2}, "recurrent_dropout=2"),
        ({"units": 3, "norm_epsilon": 0}, "norm_epsilon=0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LayerNormGRU(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="ndim=3|3-D"):
        LayerNormGRU(3)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="floating-point"):
        LayerNormGRU(3)(np.zeros((2, 4, 3), "int32"))


@pytest.mark.parametrize("reset_after", [True, False])
def test_unroll_equals_the_loop(reset_after):
    looped = LayerNormGRU(3, reset_after=reset_after, return_sequences=True, **RANDOM)
    unrolled = LayerNormGRU(
        3, reset_after=reset_after, return_sequences=True, unroll=True
    )
    looped(X)
    unrolled(X)
    unrolled.set_weights(looped.get_weights())
    np.testing.assert_allclose(unrolled(X, mask=MASK), looped(X, mask=MASK), atol=1e-6)
