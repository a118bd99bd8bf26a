import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_stateful, loop_path, run_layer_checks

from recurrent_zoo.layers import SimpleRNN, SimpleRNNCell, tf_simple_rnn_kernel
from recurrent_zoo.reference import simple_rnn_bptt, simple_rnn_forward

RNG = np.random.default_rng(7)
X = RNG.normal(size=(3, 5, 4)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)


@pytest.fixture(params=["fused", "generic"])
def path(request, monkeypatch):
    """Run a test through the TF kernel and through Keras's generic loop."""
    with loop_path(
        request.param,
        monkeypatch,
        SimpleRNN,
        tf_simple_rnn_kernel,
        "simple_rnn_recurrence",
    ) as name:
        yield name


def _weights(layer):
    return [np.asarray(w, np.float64) for w in layer.get_weights()]


def test_hand_computed_case():
    """Inputs [1,1],[1,1],[2,2]; all-ones weights, no bias, linear."""
    x = np.array([[[1, 1], [1, 1], [2, 2]]], "float32")
    ones = {"kernel_initializer": "ones", "recurrent_initializer": "ones"}
    rnn = SimpleRNN(2, activation=None, use_bias=False, return_sequences=True, **ones)
    dense = keras.layers.Dense(2, use_bias=False, kernel_initializer="ones")
    hidden = rnn(x)
    np.testing.assert_array_equal(hidden[0], [[2, 2], [6, 6], [16, 16]])
    np.testing.assert_array_equal(dense(hidden)[0], [[4, 4], [12, 12], [32, 32]])
    ones = np.ones((2, 2))
    np.testing.assert_array_equal(
        simple_rnn_forward(x, ones, ones, activation="linear")[0],
        [[2, 2], [6, 6], [16, 16]],
    )


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_equals_keras_simple_rnn(path, go_backwards, masked):
    kwargs = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    ours, theirs = SimpleRNN(3, **kwargs), keras.layers.SimpleRNN(3, **kwargs)
    ours(X)
    theirs(X)
    theirs.set_weights(ours.get_weights())
    mask = MASK if masked else None
    for a, b in zip(ours(X, mask=mask), theirs(X, mask=mask), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_forward_matches_numpy(path, activation):
    layer = SimpleRNN(3, activation=activation, return_sequences=True)
    out = layer(X, mask=MASK)
    expected = simple_rnn_forward(X, *_weights(layer), activation=activation, mask=MASK)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_layer_norm_forward_matches_numpy():
    random = {"gamma_initializer": "random_normal", "beta_initializer": "random_normal"}
    layer = SimpleRNN(3, layer_norm=True, return_sequences=True, **random)
    out = layer(X)
    kernel, recurrent, bias, gamma, beta = _weights(layer)
    expected = simple_rnn_forward(X, kernel, recurrent, bias, gamma=gamma, beta=beta)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("many_to_one", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "linear"])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_numpy_bptt(path, many_to_one, activation, training):
    # training=True: the kernel's own BPTT; False: its lean inference loop,
    # differentiated by TensorFlow.
    layer = SimpleRNN(3, activation=activation, return_sequences=True)
    layer(X)
    d_hs = RNG.normal(size=(3, 5, 3))
    if many_to_one:
        d_hs[:, :-1] = 0.0
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=training) * d_hs.astype("float32"))
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    expected = simple_rnn_bptt(X, *_weights(layer), d_hs, activation=activation)
    names = ["x", "kernel", "recurrent_kernel", "bias"]
    for name, grad in zip(names, grads, strict=True):
        np.testing.assert_allclose(grad, expected[name], atol=1e-4, err_msg=name)


def test_masked_gradients_fused_equal_generic(monkeypatch):
    layer = SimpleRNN(3, activation="relu", return_sequences=True, return_state=True)
    layer(X)
    weights = RNG.normal(size=(3, 5, 3)).astype("float32")
    x, h0 = tf.constant(X), tf.constant(RNG.normal(size=(3, 3)).astype("float32"))

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([x, h0])
            hs, h = layer(x, initial_state=[h0], mask=MASK, training=True)
            loss = tf.reduce_sum(hs * weights) + tf.reduce_sum(h * h)
        return tape.gradient(loss, [x, h0, *layer.trainable_variables])

    fused = grads()
    monkeypatch.setattr(SimpleRNN, "fused_loop", lambda self, *args: None)
    for a, b in zip(fused, grads(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_last_state_gradients_fused_equal_generic(monkeypatch, masked):
    """return_sequences=False: the kernel keeps no output sequence and gets
    no gradient for one; gradients still equal the generic loop's."""
    layer = SimpleRNN(3, return_state=True)
    layer(X)
    x, h0 = tf.constant(X), tf.constant(RNG.normal(size=(3, 3)).astype("float32"))
    mask = MASK if masked else None

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([x, h0])
            last, h = layer(x, initial_state=[h0], mask=mask, training=True)
            loss = tf.reduce_sum(last * h[:, ::-1]) + tf.reduce_sum(h)
        return tape.gradient(loss, [x, h0, *layer.trainable_variables])

    fused = grads()
    monkeypatch.setattr(SimpleRNN, "fused_loop", lambda self, *args: None)
    for a, b in zip(fused, grads(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_cell_in_keras_rnn_equals_layer():
    layer = SimpleRNN(3, return_sequences=True)
    wrapped = keras.layers.RNN(SimpleRNNCell(3), return_sequences=True)
    layer(X)
    wrapped(X)
    wrapped.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(X, mask=MASK), wrapped(X, mask=MASK), atol=1e-6)


def test_dropout_only_in_training_and_one_mask_per_sequence(path):
    layer = SimpleRNN(
        3, dropout=0.5, recurrent_dropout=0.5, seed=1, return_sequences=True
    )
    inference = layer(X)
    np.testing.assert_allclose(inference, layer(X, training=False))
    assert not np.allclose(layer(X, training=True), inference)
    # With a constant input, one input mask per sequence means x_t W is the
    # same at every step: the linear, recurrence-free layer repeats itself.
    flat = SimpleRNN(3, activation=None, dropout=0.5, seed=3, return_sequences=True,
                     recurrent_initializer="zeros")  # fmt: skip
    out = np.asarray(flat(np.ones((2, 4, 6), "float32"), training=True))
    np.testing.assert_allclose(out, np.repeat(out[:, :1], 4, axis=1), atol=1e-6)


def test_stateful_carries_state_across_batches():
    check_stateful(SimpleRNN, X, atol=1e-6, units=3)


def test_layer_checks(tmp_path):
    run_layer_checks(lambda: SimpleRNN(3, layer_norm=True), X, tmp_path, mask=MASK)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units=0"),
        ({"units": "3"}, "units='3'"),
        ({"units": 3, "dropout": 1.5}, "dropout=1.5"),
        ({"units": 3, "recurrent_dropout": -0.1}, "recurrent_dropout=-0.1"),
        ({"units": 3, "norm_epsilon": 0.0}, "norm_epsilon=0.0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimpleRNN(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="ndim=3|3-D"):
        SimpleRNN(3)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="floating-point"):
        SimpleRNN(3)(np.zeros((2, 4, 3), "int32"))


def test_recurrent_dropout_uses_generic_loop(monkeypatch):
    layer = SimpleRNN(3, recurrent_dropout=0.5, seed=2)
    inference = layer(X, training=False)  # no dropout active: the kernel runs
    monkeypatch.setattr(tf_simple_rnn_kernel, "simple_rnn_recurrence", None)
    assert not np.allclose(layer(X, training=True), inference)


def test_recurrent_dropout_mask_is_fixed_across_steps_in_graph_mode():
    """h_t = m * h_{t-1} + 1 with identity U: a per-sequence mask m gives either
    1, 1, 1, ... (m = 0) or 1, 3, 7, 15, ... (m = 2) in every unit."""
    layer = SimpleRNN(
        16, activation=None, recurrent_dropout=0.5, seed=4, return_sequences=True,
        kernel_initializer="zeros", recurrent_initializer="identity",
        bias_initializer="ones",
    )  # fmt: skip
    x = tf.zeros((2, 5, 3))
    out = np.asarray(tf.function(lambda x: layer(x, training=True))(x))
    dropped = np.ones(5)
    kept = np.array([1.0, 3.0, 7.0, 15.0, 31.0])
    per_unit = out.transpose(0, 2, 1).reshape(-1, 5)
    is_dropped = np.all(np.isclose(per_unit, dropped), axis=1)
    is_kept = np.all(np.isclose(per_unit, kept), axis=1)
    assert np.all(is_dropped | is_kept), per_unit[~(is_dropped | is_kept)][:3]
    assert is_dropped.any() and is_kept.any()
