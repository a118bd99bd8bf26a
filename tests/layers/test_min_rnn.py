"""MinGRU and MinLSTM: the parallel scan against the equations run step by step.

The oracles are independent of the scan: the NumPy loops of
`recurrent_zoo.reference.min_rnn` (float64, the equations as written) for
outputs, their central finite differences for gradients, and the cells inside
Keras's own sequential loop (`keras.layers.RNN`) for gradients at lengths
where finite differences would be slow.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_stateful, run_layer_checks
from min_rnn_cases import BIAS, KINDS, keras_outputs

from recurrent_zoo.layers import (
    Bidirectional,
    MinGRU,
    MinLSTM,
    MinLSTMCell,
    parallel_scan,
)

RNG = np.random.default_rng(11)
X = RNG.normal(size=(4, 7, 3)).astype("float32")
H0 = RNG.normal(size=(4, 5)).astype("float32")  # both signs
# Full; right-padded; holes and leading padding; no real step at all.
MASK = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0, 0],
        [0, 1, 1, 0, 1, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    bool,
)


@pytest.fixture(params=list(KINDS))
def kind(request):
    return KINDS[request.param]


@pytest.mark.parametrize(
    "activation, masked, go_backwards",
    [
        ("g", False, False),
        ("g", True, False),
        ("g", True, True),
        ("linear", False, True),
        ("tanh", True, False),
    ],
)
def test_forward_matches_numpy(kind, activation, masked, go_backwards):
    layer_class, _, reference = kind
    layer = layer_class(
        5,
        candidate_activation=activation,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        **BIAS,
    )
    mask = MASK if masked else None
    outputs, state = layer(X, initial_state=[H0], mask=mask)
    x, m = (
        (X[:, ::-1], None if mask is None else mask[:, ::-1])
        if go_backwards
        else (X, mask)
    )
    states = reference(x, *layer.get_weights(), H0, m, activation)
    np.testing.assert_allclose(state, states[:, -1], atol=1e-5)
    np.testing.assert_allclose(outputs, keras_outputs(states, m), atol=1e-5)
    if masked:  # the row with no real step keeps its initial state
        np.testing.assert_allclose(np.asarray(state)[3], H0[3], atol=1e-7)


def _finite_differences(loss, arrays, eps=1e-6):
    """Central differences of `loss()` (float64) in every entry of `arrays`."""
    grads = []
    for array in arrays:
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + eps
            up = loss()
            array[index] = saved - eps
            down = loss()
            array[index] = saved
            grad[index] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_gradients_match_finite_differences(kind, masked):
    """Gradients through the scan's hand-written backward pass against the
    NumPy equations differentiated numerically."""
    layer_class, _, reference = kind
    x, h0 = X[:3, :6], H0[:3, :3]
    mask = MASK[:3, :6] if masked else None
    layer = layer_class(3, return_sequences=True, return_state=True, **BIAS)
    layer(x)
    rng = np.random.default_rng(0)
    w_seq, w_state = rng.normal(size=(3, 6, 3)), rng.normal(size=(3, 3))

    arrays = [np.array(a, np.float64) for a in (x, h0, *layer.get_weights())]

    def numpy_loss():
        states = reference(arrays[0], arrays[2], arrays[3], arrays[1], mask)
        outputs = keras_outputs(states, mask)
        return np.sum(outputs * w_seq) + np.sum(states[:, -1] * w_state)

    expected = _finite_differences(numpy_loss, arrays)
    xt, h0t = tf.constant(x), tf.constant(h0)
    with tf.GradientTape() as tape:
        tape.watch([xt, h0t])
        outputs, state = layer(xt, initial_state=[h0t], mask=mask, training=True)
        loss = tf.reduce_sum(outputs * w_seq) + tf.reduce_sum(state * w_state)
    got = tape.gradient(loss, [xt, h0t, *layer.trainable_variables])
    for name, a, b in zip(["x", "h0", "kernel", "bias"], got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=name)


def _sequential_twin(layer, cell_class, **kwargs):
    """The layer's cell in Keras's step-by-step loop, with the same weights."""
    twin = keras.layers.RNN(cell_class(layer.units), **kwargs)
    twin(np.zeros((1, 1, layer.cell.kernel.shape[0]), "float32"))
    twin.set_weights(layer.get_weights())
    return twin


def _gradients(layer, x, h0, mask, weights):
    x, h0 = tf.constant(x), tf.constant(h0)

    @tf.function
    def run(x, h0):
        with tf.GradientTape() as tape:
            tape.watch([x, h0])
            outputs, state = layer(x, initial_state=[h0], mask=mask, training=True)
            loss = tf.reduce_sum(outputs * weights) + tf.reduce_sum(state)
        return [outputs, state], tape.gradient(
            loss, [x, h0, *layer.trainable_variables]
        )

    return run(x, h0)


def _long_case(steps, units=4, batch=2, seed=0):
    """Inputs, a padded mask with holes, and saturating weights: gates from
    about 1e-13 to 1 - 1e-13, so products of forget gates underflow float32
    within a few hundred steps (where a log-space cumsum would overflow)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, 3)).astype("float32")
    mask = rng.random((batch, steps)) > 0.1
    mask[1, steps // 2 :] = False
    h0 = rng.normal(size=(batch, units)).astype("float32") * 3
    return x, mask, h0


def _saturating(layer):
    """Gate pre-activations of tens; candidates of order 1 (float32 keeps
    1e-5 absolute only for values of order 1)."""
    kernel, bias = layer.get_weights()
    rng = np.random.default_rng(1)
    kernel = rng.normal(scale=10.0, size=kernel.shape)
    kernel[:, -layer.units :] /= 10.0
    return [kernel, rng.normal(size=bias.shape)]


def test_long_sequences_match_numpy_without_overflow(kind):
    layer_class, _, reference = kind
    steps = 4096
    x, mask, h0 = _long_case(steps)
    layer = layer_class(4, return_sequences=True, return_state=True)
    layer(x)
    layer.set_weights(_saturating(layer))
    weights = np.random.default_rng(2).normal(size=(2, steps, 4)).astype("float32")
    (outputs, state), grads = _gradients(layer, x, h0, mask, weights)
    states = reference(x, *layer.get_weights(), h0, mask)
    np.testing.assert_allclose(state, states[:, -1], atol=1e-5)
    np.testing.assert_allclose(outputs, keras_outputs(states, mask), atol=1e-5)
    for grad in grads:
        assert np.all(np.isfinite(grad))


# 1,001 halves to odd lengths at most levels of the scan; 4,096 never does.
@pytest.mark.parametrize(
    "steps", [1001, pytest.param(4096, marks=pytest.mark.slow)], ids=["1001", "4096"]
)
def test_long_sequence_gradients_equal_keras_sequential_loop(kind, steps):
    layer_class, cell_class, _ = kind
    x, mask, h0 = _long_case(steps)
    layer = layer_class(4, return_sequences=True, return_state=True)
    layer(x)
    layer.set_weights(_saturating(layer))
    twin = _sequential_twin(layer, cell_class, return_sequences=True, return_state=True)
    weights = np.random.default_rng(2).normal(size=(2, steps, 4)).astype("float32")
    (outputs, state), grads = _gradients(layer, x, h0, mask, weights)
    (twin_outputs, twin_state), twin_grads = _gradients(twin, x, h0, mask, weights)
    np.testing.assert_allclose(outputs, twin_outputs, atol=1e-5)
    np.testing.assert_allclose(state, twin_state, atol=1e-5)
    names = ["x", "h0", "kernel", "bias"]
    for name, a, b in zip(names, grads, twin_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=name)


def test_unknown_length_in_a_graph_equals_the_recurrence():
    """A traced `None` time axis takes the scan's dynamic route (beyond 4,096
    steps, its doubling loop), forwards and backwards, also under XLA."""

    def run(a, b, h0, upstream):
        with tf.GradientTape() as tape:
            tape.watch([a, b, h0])
            h = parallel_scan.linear_recurrence(a, b, h0)
            loss = tf.reduce_sum(h * upstream)
        return h, tape.gradient(loss, [a, b, h0])

    sequence = tf.TensorSpec((None, None, 3))
    spec = [sequence, sequence, tf.TensorSpec((None, 3)), sequence]
    traced = tf.function(run, input_signature=spec)
    compiled = tf.function(run, input_signature=spec, jit_compile=True)
    for steps in (1, 6, 37, 4099):
        rng = np.random.default_rng(steps)
        a = rng.uniform(0.0, 1.0, size=(2, steps, 3)).astype("float32")
        b, upstream = rng.normal(size=(2, 2, steps, 3)).astype("float32")
        h0 = rng.normal(size=(2, 3)).astype("float32")
        known = run(*(tf.constant(v) for v in (a, b, h0, upstream)))
        unknown = [traced(a, b, h0, upstream)]
        if steps == 4099:
            unknown.append(compiled(a, b, h0, upstream))
        for result in unknown:
            got, want = tf.nest.flatten(result), tf.nest.flatten(known)
            for name, x, y in zip(["h", "a", "b", "h0"], got, want, strict=True):
                np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-5, err_msg=name)
        h, hs = h0, []
        for t in range(steps):
            h = a[:, t] * h + b[:, t]
            hs.append(h)
        np.testing.assert_allclose(known[0], np.stack(hs, 1), atol=1e-5)


def test_step_streams_what_the_layer_computes(kind):
    layer_class = kind[0]
    layer = layer_class(5, return_sequences=True, **BIAS)
    outputs = np.asarray(layer(X, initial_state=[H0]))
    step = tf.function(layer.step)  # as a server would run it
    state = H0
    for t in range(X.shape[1]):
        h, state = step(X[:, t], state)
        np.testing.assert_allclose(h, outputs[:, t], atol=1e-6)
        np.testing.assert_array_equal(h, state)
    fresh = layer_class(5)
    h, _ = fresh.step(X[:, 0])  # builds the layer; state zeros
    np.testing.assert_allclose(h, fresh(X[:, :1]), atol=1e-6)


def _reverse_rows(x, lengths):
    rows = zip(x, lengths, strict=True)
    return np.stack([np.concatenate([r[:n][::-1], r[n:]]) for r, n in rows])


def test_in_bidirectional_equals_each_row_run_alone(kind):
    layer_class, _, reference = kind
    mask = MASK[:3]  # right-padded and holes; Bidirectional reverses spans
    lengths = [7, 4, 7]
    wrapper = Bidirectional(layer_class(5, return_sequences=True, **BIAS))
    got = np.asarray(wrapper(X[:3], mask=mask))
    forward = wrapper.forward_layer.get_weights()
    backward = wrapper.backward_layer.get_weights()
    y_fwd = keras_outputs(reference(X[:3], *forward, mask=mask), mask)
    x_bwd, m_bwd = _reverse_rows(X[:3], lengths), _reverse_rows(mask, lengths)
    y_bwd = keras_outputs(reference(x_bwd, *backward, mask=m_bwd), m_bwd)
    y_bwd = _reverse_rows(y_bwd, lengths)
    want = np.where(mask[..., None], np.concatenate([y_fwd, y_bwd], -1), 0.0)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_in_keras_bidirectional(kind):
    layer_class, _, reference = kind
    wrapper = keras.layers.Bidirectional(
        layer_class(5, return_sequences=True, **BIAS), merge_mode="sum"
    )
    got = np.asarray(wrapper(X))
    y_fwd = reference(X, *wrapper.forward_layer.get_weights())
    y_bwd = reference(X[:, ::-1], *wrapper.backward_layer.get_weights())[:, ::-1]
    np.testing.assert_allclose(got, y_fwd + y_bwd, atol=1e-5)


def test_stacked_layers_pass_the_mask_on(kind):
    layer_class, _, reference = kind
    inputs = keras.Input((None, 3))
    masked = keras.layers.Masking()(inputs)
    first = layer_class(5, return_sequences=True, **BIAS)
    second = layer_class(2, **BIAS)
    model = keras.Model(inputs, second(first(masked)))
    x = np.where(MASK[..., None], X, 0.0).astype("float32")
    states = reference(x, *first.get_weights(), mask=MASK)
    last = reference(keras_outputs(states, MASK), *second.get_weights(), mask=MASK)
    want = np.where(MASK.any(1, keepdims=True), last[:, -1], 0.0)
    np.testing.assert_allclose(model(x), want, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_scan_recurs_in_float32_under_mixed_precision(kind, policy):
    """Zero kernel; biases exact in both compute dtypes: forget coefficients
    of 1 - 2.5e-3 to 1 - 1.8e-2, which float16 keeps to 20% and bfloat16 not
    at all, so only a float32 recurrence stays within two ulps of float32
    over 150 steps, in the layer and in `step` fed one token at a time."""
    layer_class = kind[0]
    x = np.ones((2, 150, 3), "float32")
    gates = [-6.0, -5.0, -4.0] if layer_class is MinGRU else [6, 5, 4, 0, 0, 0]
    bias = np.array([*gates, 0.0625, -0.4375, 1.9375], "float32")
    outputs = {}
    for name in ("float32", policy):
        keras.config.set_dtype_policy(name)
        try:
            layer = layer_class(3, return_sequences=True)
            layer(x)
            layer.set_weights([np.zeros((3, len(bias)), "float32"), bias])
            outputs[name] = np.asarray(tf.cast(layer(x), "float32"))
            state, steps = None, []
            for t in range(x.shape[1]):
                h, state = layer.step(x[:, t], state)
                steps.append(tf.cast(h, "float32"))
            outputs[f"{name} step"] = np.stack(steps, axis=1)
        finally:
            keras.config.set_dtype_policy("float32")
    ulps = {"mixed_float16": 2.0**-10, "mixed_bfloat16": 2.0**-7}[policy]
    want = outputs["float32"]
    assert not np.allclose(want[:, 0], want[:, -1], rtol=0.1)  # it did recur
    for got in (outputs[policy], outputs[f"{policy} step"]):
        np.testing.assert_allclose(got, want, rtol=ulps, atol=ulps)


def test_dropout_only_in_training(kind):
    layer_class = kind[0]
    layer = layer_class(5, dropout=0.5, seed=1, return_sequences=True)
    twin = layer_class(5, return_sequences=True)
    twin(X)
    inference = layer(X)
    twin.set_weights(layer.get_weights())
    np.testing.assert_allclose(inference, twin(X), atol=1e-6)
    assert not np.allclose(layer(X, training=True), inference)


def test_stateful_carries_state_across_batches(kind):
    check_stateful(kind[0], X, atol=1e-6, units=3)


@pytest.mark.parametrize(
    "name, export",
    [
        ("min_gru", False),
        ("min_lstm", False),
        # The export check runs a fresh process (~10 s each): in the slow
        # step, with the rest of the contract run here by default.
        pytest.param("min_gru", True, marks=pytest.mark.slow),
        pytest.param("min_lstm", True, marks=pytest.mark.slow),
    ],
)
def test_layer_checks(name, export, tmp_path):
    layer_class = KINDS[name][0]
    run_layer_checks(
        lambda: layer_class(3, return_sequences=True), X, tmp_path, MASK, export
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units=0"),
        ({"units": 3.0}, "units=3.0"),
        ({"units": 3, "dropout": 1.5}, "dropout=1.5"),
        ({"units": 3, "recurrent_dropout": 0.2}, "recurrent_dropout=0.2"),
        ({"units": 3, "candidate_activation": "nope"}, "candidate_activation='nope'"),
        ({"units": 3, "unroll": True}, "unroll=True"),
        ({"units": 3, "use_xla": "yes"}, "use_xla='yes'"),
    ],
)
def test_invalid_arguments(kwargs, message):
    for layer_class in (MinGRU, MinLSTM):
        with pytest.raises(ValueError, match=message):
            layer_class(**kwargs)


def test_bad_inputs():
    for layer_class in (MinGRU, MinLSTM):
        with pytest.raises(ValueError, match="ndim=3|3-D"):
            layer_class(3)(np.zeros((2, 4), "float32"))
        with pytest.raises(ValueError, match="floating-point"):
            layer_class(3)(np.zeros((2, 4, 3), "int32"))
        with pytest.raises(ValueError, match="floating-point"):
            layer_class(3).step(np.zeros((2, 3), "int32"))


# tests/models' padding test already builds and runs the classifier with
# every cell of the registry by default; a fit (~8 s) is left to `-m slow`.
@pytest.mark.slow
@pytest.mark.parametrize("cell", ["min_gru", "min_lstm"])
def test_text_classifier_trains_with_the_cell(cell):
    """The registry's names build the models' Bidirectional stack, masked by
    the padding, whose length is unknown when the model is traced."""
    from tiny_models import TEXTS, TINY

    from recurrent_zoo.models import TextClassifier

    texts = np.asarray([t for t in TEXTS if t] * 2, dtype=object)
    labels = np.arange(len(texts)) % 2
    model = TextClassifier(["neg", "pos"], cell=cell, dropout=0.0, **TINY)
    model.adapt(texts)
    model.compile(learning_rate=1e-2)
    losses = model.fit(texts, labels, batch_size=8, epochs=3, verbose=0)
    losses = losses.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_min_lstm_gates_exact_where_both_underflow():
    """f' = f / (f + i) for pre-activations from ordinary to far below
    float32's underflow (sigmoid(-300) is 0 there), against the same
    quotient in float64 log space: f' = sigmoid(log f - log i), with
    log sigmoid(k) = -log(1 + e^-k). Gradients finite everywhere."""
    k_f = np.array([0.5, -3.0, -30.0, -95.0, -300.0, -300.0, -1e4, 40.0, -88.0])
    k_i = np.array([-0.5, 2.0, -25.0, -90.0, -305.0, -290.0, -1e4 - 3, 41.0, -20.0])
    cell = MinLSTMCell(len(k_f), candidate_activation="linear")
    cell.build((None, 1))
    k_h = np.linspace(-2.0, 2.0, len(k_f))
    projected = tf.constant(np.concatenate([k_f, k_i, k_h])[None], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(projected)
        a, b = cell.coefficients(projected)
        loss = tf.reduce_sum(a * 0.3 + b * 0.7)
    log_ratio = np.logaddexp(0.0, -k_f) - np.logaddexp(0.0, -k_i)  # log(i / f)
    forget = 1.0 / (1.0 + np.exp(log_ratio))
    np.testing.assert_allclose(a[0], forget, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b[0], (1.0 - forget) * k_h, rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(tape.gradient(loss, projected)))
