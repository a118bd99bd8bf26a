import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_stateful, loop_path, run_layer_checks

from recurrent_zoo.layers import LayerNormLSTM, LayerNormLSTMCell, tf_lstm_kernel
from recurrent_zoo.reference import layer_norm_lstm_bptt, layer_norm_lstm_forward

RNG = np.random.default_rng(11)
X = RNG.normal(size=(3, 5, 4)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
RANDOM_NORM = {
    "gamma_initializer": "random_normal",
    "beta_initializer": "random_normal",
}


@pytest.fixture(params=["fused", "generic"])
def path(request, monkeypatch):
    """Run a test through the TF kernel and through Keras's generic loop."""
    with loop_path(
        request.param, monkeypatch, LayerNormLSTM, tf_lstm_kernel, "lstm_recurrence"
    ) as name:
        yield name


def _params(layer):
    weights = {w.path.split("/")[-1]: np.asarray(w, np.float64) for w in layer.weights}
    return weights


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_plain_equals_keras_lstm(path, go_backwards, masked):
    kwargs = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    ours = LayerNormLSTM(3, layer_norm=False, **kwargs)
    theirs = keras.layers.LSTM(3, **kwargs)
    ours(X)
    theirs(X)
    theirs.set_weights(ours.get_weights())
    mask = MASK if masked else None
    for a, b in zip(ours(X, mask=mask), theirs(X, mask=mask), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_forward_matches_numpy(path, layer_norm):
    layer = LayerNormLSTM(3, layer_norm=layer_norm, return_sequences=True,
                          return_state=True, **RANDOM_NORM)  # fmt: skip
    hs, h_last, c_last = layer(X, mask=MASK)
    ref_h, ref_c = layer_norm_lstm_forward(X, _params(layer), layer_norm, mask=MASK)
    np.testing.assert_allclose(hs, ref_h, atol=1e-5)
    np.testing.assert_allclose(h_last, ref_h[:, -1], atol=1e-5)
    np.testing.assert_allclose(c_last, ref_c[:, -1], atol=1e-5)


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("many_to_one", [True, False])
def test_gradients_match_numpy_bptt(path, layer_norm, many_to_one):
    layer = LayerNormLSTM(
        3, layer_norm=layer_norm, return_sequences=True, **RANDOM_NORM
    )
    layer(X)
    d_hs = RNG.normal(size=(3, 5, 3))
    if many_to_one:
        d_hs[:, :-1] = 0.0
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        # training=True: the kernel's own BPTT (inference skips its record).
        loss = tf.reduce_sum(layer(x, training=True) * d_hs.astype("float32"))
    variables = layer.trainable_variables
    grads = tape.gradient(loss, [x, *variables])
    expected = layer_norm_lstm_bptt(X, _params(layer), d_hs, layer_norm)
    names = ["x"] + [v.path.split("/")[-1] for v in variables]
    for name, grad in zip(names, grads, strict=True):
        np.testing.assert_allclose(grad, expected[name], atol=1e-4, err_msg=name)


def test_masked_gradients_fused_equal_generic(monkeypatch):
    layer = LayerNormLSTM(3, return_sequences=True, return_state=True, **RANDOM_NORM)
    layer(X)
    weights = RNG.normal(size=(3, 5, 3)).astype("float32")
    x = tf.constant(X)
    h0, c0 = tf.constant(RNG.normal(size=(2, 3, 3)).astype("float32"))

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            hs, h, c = layer(x, initial_state=[h0, c0], mask=MASK, training=True)
            loss = tf.reduce_sum(hs * weights) + tf.reduce_sum(h * c)
        return tape.gradient(loss, [x, h0, c0, *layer.trainable_variables])

    fused = grads()
    monkeypatch.setattr(LayerNormLSTM, "fused_loop", lambda self, *args: None)
    for a, b in zip(fused, grads(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_last_state_gradients_fused_equal_generic(monkeypatch, layer_norm, masked):
    """return_sequences=False: the kernel keeps no output sequence and gets
    no gradient for one; gradients still equal the generic loop's."""
    layer = LayerNormLSTM(3, layer_norm=layer_norm, return_state=True, **RANDOM_NORM)
    layer(X)
    x = tf.constant(X)
    h0, c0 = tf.constant(RNG.normal(size=(2, 3, 3)).astype("float32"))
    mask = MASK if masked else None

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            last, h, c = layer(x, initial_state=[h0, c0], mask=mask, training=True)
            loss = tf.reduce_sum(last * c[:, ::-1]) + tf.reduce_sum(h * h)
        return tape.gradient(loss, [x, h0, c0, *layer.trainable_variables])

    fused = grads()
    monkeypatch.setattr(LayerNormLSTM, "fused_loop", lambda self, *args: None)
    for a, b in zip(fused, grads(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_cell_in_keras_rnn_equals_layer():
    layer = LayerNormLSTM(3, return_sequences=True, **RANDOM_NORM)
    wrapped = keras.layers.RNN(LayerNormLSTMCell(3), return_sequences=True)
    layer(X)
    wrapped(X)
    wrapped.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(X, mask=MASK), wrapped(X, mask=MASK), atol=1e-5)


def test_carries_raw_cell_state():
    """The state carried is c_t itself, not LN(c_t) (see the docstring)."""
    layer = LayerNormLSTM(3, return_state=True)
    _, _, c = layer(X)
    _, ref_c = layer_norm_lstm_forward(X, _params(layer))
    np.testing.assert_allclose(c, ref_c[:, -1], atol=1e-5)
    assert np.abs(np.asarray(c).mean(axis=-1)).max() > 1e-3  # not re-centred


def test_dropout(path):
    layer = LayerNormLSTM(3, dropout=0.5, seed=2, return_sequences=True)
    inference = layer(X)
    np.testing.assert_allclose(inference, layer(X, training=False))
    assert not np.allclose(layer(X, training=True), inference)


def test_recurrent_dropout_uses_generic_loop(monkeypatch):
    layer = LayerNormLSTM(3, recurrent_dropout=0.5, seed=2)
    inference = layer(X, training=False)  # no dropout active: the kernel runs
    monkeypatch.setattr(tf_lstm_kernel, "lstm_recurrence", None)  # would fail if used
    assert not np.allclose(layer(X, training=True), inference)


def test_unit_forget_bias():
    layer = LayerNormLSTM(2)
    layer(X)
    np.testing.assert_array_equal(_params(layer)["bias"], [0, 0, 1, 1, 0, 0, 0, 0])


def test_stateful_carries_state_across_batches():
    check_stateful(LayerNormLSTM, X, atol=1e-5, units=3)


def test_layer_checks(tmp_path):
    run_layer_checks(lambda: LayerNormLSTM(3, **RANDOM_NORM), X, tmp_path, mask=MASK)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": -1}, "units=-1"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": 3, "dropout": 1.0}, "dropout=1.0"),
        ({"units": 3, "recurrent_dropout": 2}, "recurrent_dropout=2"),
        ({"units": 3, "norm_epsilon": -1e-3}, "norm_epsilon=-0.001"),
        ({"units": 3, "use_xla": 1}, "use_xla=1"),
        ({"units": 3, "use_xla": "training"}, "use_xla='training'"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LayerNormLSTM(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="ndim=3|3-D"):
        LayerNormLSTM(3)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="floating-point"):
        LayerNormLSTM(3)(np.zeros((2, 4, 3), "int32"))


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_inference_loop_matches_training_loop(layer_norm, cached, reverse, monkeypatch):
    """`record=False` (what inference runs) gives the same outputs, and the
    same gradients through TensorFlow's autodiff, as the recording kernel,
    with the input's share computed before the loop (small inputs) or at
    each step (large ones)."""
    if not cached:
        monkeypatch.setattr(tf_lstm_kernel, "_CACHED_FLOATS", 0)
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(3, 5, 4)).astype("float32"))
    h0, c0 = (tf.constant(rng.normal(size=(3, 2)).astype("float32")) for _ in "hc")
    kernel = tf.constant(rng.normal(size=(4, 8)).astype("float32"))
    recurrent = tf.constant(rng.normal(size=(2, 8)).astype("float32"))
    extra = {"bias": tf.constant(rng.normal(size=8).astype("float32"))}
    if layer_norm:
        extra.update(
            input_gamma=tf.constant(rng.normal(size=8).astype("float32")),
            recurrent_gamma=tf.constant(rng.normal(size=8).astype("float32")),
            cell_gamma=tf.constant(rng.normal(size=2).astype("float32")),
            cell_beta=tf.constant(rng.normal(size=2).astype("float32")),
        )
    mask = tf.constant(MASK.T[:, :3])

    def run(record):
        inputs = [x, h0, c0, kernel, recurrent, *extra.values()]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            hs, h, c = tf_lstm_kernel.lstm_recurrence(
                x,
                h0,
                c0,
                kernel,
                recurrent,
                mask=mask,
                record=record,
                reverse=reverse,
                **extra,
            )
            loss = tf.reduce_sum(hs * hs) + tf.reduce_sum(h * c)
        return [hs, h, c], tape.gradient(loss, inputs)

    (outputs, grads), (lean_outputs, lean_grads) = run(True), run(False)
    for a, b in zip(outputs + grads, lean_outputs + lean_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
