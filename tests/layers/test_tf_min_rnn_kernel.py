"""MinGRU and MinLSTM's TensorFlow paths (`tf_min_rnn_kernel`).

A training call inside a traced function with a known length runs the
gates and the recurrence as one XLA-compiled function (a sequential loop on
a CPU, the parallel scan where a GPU is visible); an inference call on a CPU
with a batch of `LOOP_MIN_BATCH` or more loops over the steps; everything
else runs the `keras.ops` scan. The `scan_path` fixture sends each training
test through the compiled loop, the compiled scan or the plain scan, and
checks that each ran exactly when meant to. The oracles are the NumPy loops of
`recurrent_zoo.reference.min_rnn` for outputs and the cells inside Keras's
own sequential loop (`keras.layers.RNN`) for gradients, as in
`test_min_rnn.py`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from min_rnn_cases import BIAS, KINDS, keras_outputs

from recurrent_zoo.layers import (
    Bidirectional,
    min_rnn,
    tf_min_rnn_kernel,
)

RNG = np.random.default_rng(5)
X = RNG.normal(size=(3, 9, 4)).astype("float32")
H0 = RNG.normal(size=(3, 5)).astype("float32")
# Full; right-padded; holes and leading padding.
MASK = np.array(
    [[1] * 9, [1] * 5 + [0] * 4, [0, 1, 1, 0, 1, 0, 1, 1, 0]],
    bool,
)


@pytest.fixture(params=list(KINDS))
def kind(request):
    return KINDS[request.param]


def _counted(monkeypatch, name):
    """A list that grows by one at each call of `tf_min_rnn_kernel.<name>`."""
    calls = []
    original = getattr(tf_min_rnn_kernel, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tf_min_rnn_kernel, name, counted)
    return calls


@pytest.fixture
def compiled_calls(monkeypatch):
    """A list that grows by one each time the XLA function is built."""
    return _counted(monkeypatch, "compiled_states")


@pytest.fixture(params=["xla loop", "xla scan", "plain"])
def scan_path(request, monkeypatch, compiled_calls):
    """Forces the path; on exit, checks that the XLA function ran only on
    "xla ...", with the sequential loop on a CPU ("xla loop") and the
    parallel scan where a GPU is visible ("xla scan")."""
    loop_calls = _counted(monkeypatch, "sequential_recurrence")
    if request.param == "plain":
        monkeypatch.setattr(min_rnn.MinRNN, "fused_states", lambda self, *a: None)
    if request.param == "xla scan":
        monkeypatch.setattr(tf_min_rnn_kernel, "loops", lambda: False)
    yield request.param
    assert bool(compiled_calls) == request.param.startswith("xla"), compiled_calls
    assert bool(loop_calls) == (request.param == "xla loop"), loop_calls


def _training_step(layer, x, h0, mask, weights):
    """Outputs and the gradients (x, h0, weights) of a weighted sum of the
    outputs and the state, in one traced training call."""

    @tf.function
    def run(x, h0):
        with tf.GradientTape() as tape:
            tape.watch([x, h0])
            outputs, state = layer(x, initial_state=[h0], mask=mask, training=True)
            loss = tf.reduce_sum(outputs * weights) + tf.reduce_sum(state)
        return [outputs, state], tape.gradient(
            loss, [x, h0, *layer.trainable_variables]
        )

    return run(tf.constant(x), tf.constant(h0))


@pytest.mark.parametrize(
    "masked, go_backwards", [(False, False), (True, False), (True, True)]
)
def test_training_step_matches_numpy_and_keras_loop(
    kind, scan_path, masked, go_backwards
):
    layer_class, cell_class, reference = kind
    options = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer = layer_class(5, **options, **BIAS)
    layer(X)
    twin = keras.layers.RNN(cell_class(5), **options)
    twin(X)
    twin.set_weights(layer.get_weights())
    mask = MASK if masked else None
    weights = RNG.normal(size=(3, 9, 5)).astype("float32")
    (outputs, state), grads = _training_step(layer, X, H0, mask, weights)
    _, twin_grads = _training_step(twin, X, H0, mask, weights)

    x, m = (
        (X[:, ::-1], None if mask is None else mask[:, ::-1])
        if go_backwards
        else (X, mask)
    )
    states = reference(x, *layer.get_weights(), H0, m)
    np.testing.assert_allclose(state, states[:, -1], atol=1e-5)
    np.testing.assert_allclose(outputs, keras_outputs(states, m), atol=1e-5)
    for name, a, b in zip(
        ["x", "h0", "kernel", "bias"], grads, twin_grads, strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=name)


def _twins(make):
    """`make(use_xla)` built both ways, the plain one with the other's weights."""
    layers = {use_xla: make(use_xla) for use_xla in (True, False)}
    for layer in layers.values():
        layer(X)
    layers[False].set_weights(layers[True].get_weights())
    return layers


def _assert_same(got, want, tolerance):
    """Equal within `tolerance` of each tensor's largest magnitude: a
    gradient entry summing terms that cancel keeps only absolute accuracy."""
    got, want = tf.nest.flatten(got), tf.nest.flatten(want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        a, b = np.asarray(tf.cast(a, "float32")), np.asarray(tf.cast(b, "float32"))
        assert np.all(np.isfinite(a)), i
        scale = max(1.0, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, b, atol=tolerance * scale, rtol=0, err_msg=i)


def test_bidirectional_training_step_equals_the_plain_scan(kind, compiled_calls):
    """Both directions compile, and outputs and gradients are the plain
    scan's (which `test_min_rnn.py` holds to the equations)."""
    layer_class = kind[0]
    wrappers = _twins(
        lambda use_xla: Bidirectional(
            layer_class(5, return_sequences=True, use_xla=use_xla, **BIAS)
        )
    )

    def run(wrapper):
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = wrapper(x, mask=MASK, training=True)
                loss = tf.reduce_sum(y * tf.range(10, dtype=y.dtype))
            return y, tape.gradient(loss, [x, *wrapper.trainable_variables])

        return step(tf.constant(X))

    compiled = run(wrappers[True])
    assert len(compiled_calls) == 2  # the forward and the backward layer
    _assert_same(compiled, run(wrappers[False]), 1e-5)
    assert len(compiled_calls) == 2


# A mixed policy rounds the projection to the compute dtype on both paths;
# the gates and the scan are float32 on both.
MIXED_TOLERANCE = {"mixed_float16": 2e-3, "mixed_bfloat16": 2e-2}


@pytest.mark.parametrize("policy", list(MIXED_TOLERANCE))
def test_mixed_precision_training_step_equals_the_plain_scan(kind, policy):
    layer_class = kind[0]
    keras.config.set_dtype_policy(policy)
    try:
        layers = _twins(
            lambda use_xla: layer_class(
                5, return_sequences=True, return_state=True, use_xla=use_xla, **BIAS
            )
        )
        results = {k: _training_step(v, X, H0, MASK, 1.0) for k, v in layers.items()}
    finally:
        keras.config.set_dtype_policy("float32")
    (outputs, state), _ = results[True]
    assert outputs.dtype == state.dtype == layers[True].compute_dtype
    _assert_same(results[True], results[False], MIXED_TOLERANCE[policy])


def _holds_xla_function(function, *args) -> bool:
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    return any(f.attr["_XlaMustCompile"].b for f in graph.library.function)


def test_inference_graphs_hold_no_xla_function(kind):
    """What an export traces (an inference call) is plain TensorFlow, which
    TF Serving runs without XLA; the training graph is where XLA goes."""
    layer = kind[0](5, return_sequences=True)
    layer(X)

    def call(training):
        return tf.function(lambda x: layer(x, mask=MASK, training=training))

    assert not _holds_xla_function(call(False), tf.constant(X))
    assert _holds_xla_function(call(True), tf.constant(X))


def test_fit_compiles_only_a_known_length(kind, compiled_calls):
    """`fit` with a fixed length compiles and learns what `use_xla=False`
    learns; with the length unknown when traced it keeps the plain scan."""
    layer_class = kind[0]
    y = RNG.normal(size=(3, 1)).astype("float32")
    losses = {}
    for name, length, use_xla in [
        ("xla", 9, True),
        ("plain", 9, False),
        ("unknown length", None, True),
    ]:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((length, 4))
        hidden = layer_class(5, use_xla=use_xla, **BIAS)(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        # A generator's batches of unknown length trace a `None` time axis.
        data = tf.data.Dataset.from_generator(
            lambda: iter([(X, y)]),
            output_signature=(
                tf.TensorSpec((None, length, 4)),
                tf.TensorSpec((None, 1)),
            ),
        )
        history = model.fit(data, epochs=3, verbose=0)
        losses[name] = history.history["loss"]
        assert len(compiled_calls) == 1, name  # only the first model compiled
    np.testing.assert_allclose(losses["xla"], losses["plain"], rtol=1e-5)
    np.testing.assert_allclose(losses["unknown length"], losses["plain"], rtol=1e-5)
    assert losses["xla"][-1] < losses["xla"][0]


@pytest.fixture
def loop_calls(monkeypatch):
    """A list that grows by one each time the inference loop is built."""
    return _counted(monkeypatch, "_loop")


BIG = tf_min_rnn_kernel.LOOP_MIN_BATCH + 2
X_BIG = RNG.normal(size=(BIG, 9, 4)).astype("float32")
H0_BIG = RNG.normal(size=(BIG, 5)).astype("float32")
MASK_BIG = np.resize(MASK, (BIG, 9))


@pytest.mark.parametrize(
    "masked, go_backwards, return_sequences, zero_output_for_mask",
    [
        (False, False, True, False),
        (True, False, True, False),
        (True, True, True, True),
        (True, False, False, False),
        (True, True, False, True),
        (False, True, False, False),
    ],
)
def test_inference_loop_matches_numpy(
    kind, loop_calls, masked, go_backwards, return_sequences, zero_output_for_mask
):
    layer_class, _, reference = kind
    layer = layer_class(
        5,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        **BIAS,
    )
    mask = MASK_BIG if masked else None
    output, state = layer(X_BIG, initial_state=[H0_BIG], mask=mask)
    assert len(loop_calls) == 1
    x, m = (X_BIG, mask)
    if go_backwards:
        x, m = X_BIG[:, ::-1], None if mask is None else mask[:, ::-1]
    states = reference(x, *layer.get_weights(), H0_BIG, m)
    if m is None:
        outputs = states
    elif zero_output_for_mask:
        outputs = np.where(m[..., None], states, 0.0)
    else:
        outputs = keras_outputs(states, m)
    want = outputs if return_sequences else outputs[:, -1]
    if masked and not return_sequences and not zero_output_for_mask:
        want = np.where(m.any(1, keepdims=True), states[:, -1], 0.0)
    np.testing.assert_allclose(state, states[:, -1], atol=1e-5)
    np.testing.assert_allclose(output, want, atol=1e-5)


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_unknown_batch_picks_the_loop_or_the_scan_at_run_time(
    kind, loop_calls, return_sequences
):
    layer_class, _, reference = kind
    layer = layer_class(5, return_sequences=return_sequences, **BIAS)
    layer(X)
    spec = [tf.TensorSpec((None, 9, 4)), tf.TensorSpec((None, 9), tf.bool)]
    run = tf.function(lambda x, m: layer(x, mask=m), input_signature=spec)
    for x, mask in ((X, MASK), (X_BIG, MASK_BIG)):  # below and above the bar
        states = reference(x, *layer.get_weights(), mask=mask)
        want = keras_outputs(states, mask)
        if not return_sequences:
            want = np.where(mask.any(1, keepdims=True), states[:, -1], 0.0)
        np.testing.assert_allclose(run(x, mask), want, atol=1e-5)
    assert len(loop_calls) == 1  # traced once, in the graph's tf.cond


def test_no_inference_loop_where_a_gpu_is_visible(kind, loop_calls, monkeypatch):
    layer_class, _, reference = kind
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["/GPU:0"])
    layer = layer_class(5, return_sequences=True, **BIAS)
    got = layer(X_BIG)
    assert not loop_calls
    np.testing.assert_allclose(got, reference(X_BIG, *layer.get_weights()), atol=1e-5)
