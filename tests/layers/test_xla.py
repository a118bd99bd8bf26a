"""XLA: every layer compiles under `jit_compile=True` and computes the same.

For each recurrent layer (SimpleRNN with and without layer normalization,
LayerNormLSTM with and without, LayerNormLSTM and SimpleRNN inside
`Bidirectional`) through each loop it has (its TF kernel, "fused", and
Keras's generic loop), and for the two attention layers, a
`tf.function(jit_compile=True)` must return the outputs (atol 1e-5) and the
gradients with respect to the inputs and every trainable weight (atol and
rtol 1e-4) of the plain eager call. The recurrent layers run twice: masked,
`go_backwards`, returning sequences and states, then none of these (all
combinations would take minutes). Gradients are taken in training mode, what
`fit` differentiates; `test_inference_mode_gradients` covers inference mode.

A small model then trains with `compile(jit_compile=True)` and must report
the losses of `jit_compile=False`, and its compiled `predict` must run.
On a GPU, Keras's default `jit_compile="auto"` turns XLA on for models whose
layers all support it, which ours claim to: these tests hold them to it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_cases import (
    BATCH,
    FEATURES,
    GRAD_TOL,
    MASK,
    OPTIONS,
    OUTPUT_ATOL,
    RANDOM_BIAS,
    RECURRENT_PATHS,
    TIME,
    UNITS,
    all_kernels_forced,
    forced_path,
    make_recurrent,
    option_id,
)

from recurrent_zoo.layers import (
    AttentionPooling,
    BahdanauAttention,
    Bidirectional,
    LayerNormGRU,
    LayerNormLSTM,
    SimpleRNN,
)

RNG = np.random.default_rng(3)
X = RNG.normal(size=(BATCH, TIME, FEATURES)).astype("float32")


def _flat(structure):
    return [tf.convert_to_tensor(t) for t in tf.nest.flatten(structure)]


def assert_xla_matches_eager(layer, inputs, call):
    """Outputs and gradients of `call` equal with and without XLA.

    `call(layer, inputs, training)` returns the layer's output structure;
    the loss is a random weighting of every output, so that each output and
    each position gets its own gradient.
    """
    inputs = [tf.constant(x) for x in inputs]
    outputs = _flat(call(layer, inputs, True))  # builds the layer too
    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.normal(size=o.shape), o.dtype) for o in outputs]
    variables = layer.trainable_variables
    assert variables, "the layer has nothing to train"

    def run(*inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = _flat(call(layer, list(inputs), True))
            loss = sum(
                tf.reduce_sum(o * w) for o, w in zip(outputs, weights, strict=True)
            )
        return outputs, tape.gradient(loss, [*inputs, *variables])

    eager_outputs, eager_grads = run(*inputs)
    outputs, grads = tf.function(run, jit_compile=True)(*inputs)
    for i, (a, b) in enumerate(zip(outputs, eager_outputs, strict=True)):
        np.testing.assert_allclose(a, b, atol=OUTPUT_ATOL, err_msg=f"output {i}")
    names = [f"input {i}" for i in range(len(inputs))] + [v.path for v in variables]
    for name, a, b in zip(names, grads, eager_grads, strict=True):
        assert a is not None and b is not None, f"no gradient for {name}"
        np.testing.assert_allclose(
            tf.convert_to_tensor(a),
            tf.convert_to_tensor(b),
            atol=GRAD_TOL,
            rtol=GRAD_TOL,
            err_msg=f"gradient of {name}",
        )


# Bidirectional adds nothing without a mask: its layers run unmasked alone.
CASES = [
    pytest.param(name, path, options, id=f"{name}-{path}-{option_id(options)}")
    for name, path in RECURRENT_PATHS
    for options in OPTIONS
    if options[0] or not name.startswith("bi_")
]


@pytest.mark.parametrize("name, path, options", CASES)
def test_recurrent_layer_under_xla(name, path, options, monkeypatch):
    masked, go_backwards, return_sequences, return_state = options
    layer = make_recurrent(
        name,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=return_state,
    )
    mask = tf.constant(MASK) if masked else None

    def call(layer, inputs, training):
        return layer(inputs[0], mask=mask, training=training)

    with forced_path(name, path, monkeypatch):
        assert_xla_matches_eager(layer, [X], call)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_attention_pooling_under_xla(masked):
    mask = tf.constant(MASK) if masked else None
    layer = AttentionPooling(UNITS, **RANDOM_BIAS)

    def call(layer, inputs, training):
        return layer(
            inputs[0], mask=mask, training=training, return_attention_scores=True
        )

    assert_xla_matches_eager(layer, [X], call)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_bahdanau_attention_under_xla(masked):
    query = RNG.normal(size=(BATCH, 5, 2)).astype("float32")
    mask = None
    if masked:
        # The last row's values are all masked: zero weights, never NaN.
        value_mask = MASK & np.array([True, True, False])[:, None]
        mask = [tf.constant(MASK[:, :5]), tf.constant(value_mask)]
    layer = BahdanauAttention(UNITS, **RANDOM_BIAS)

    def call(layer, inputs, training):
        return layer(inputs, mask=mask, training=training, return_attention_scores=True)

    assert_xla_matches_eager(layer, [query, X], call)


@pytest.mark.parametrize(
    "name, path",
    [
        ("ln_lstm", "fused"),
        ("simple_rnn", "fused"),
        ("ln_lstm", "generic"),
    ],
    ids=["ln_lstm-fused", "simple_rnn-fused", "ln_lstm-generic"],
)
def test_inference_mode_gradients(name, path, monkeypatch):
    """Differentiating an inference-mode call under XLA (a saliency map, an
    input-gradient attack): the kernels then run their lean loops, which
    TensorFlow's generic while_loop gradient differentiates."""
    with forced_path(name, path, monkeypatch):
        layer = make_recurrent(name, return_sequences=True)
        mask = tf.constant(MASK)

        def call(layer, inputs, training):
            return layer(inputs[0], mask=mask, training=False)

        assert_xla_matches_eager(layer, [X], call)


def _model(seed):
    """Embedding -> Bi(LN-LSTM) -> LN-GRU -> SimpleRNN, masked by the padding."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((TIME,), dtype="int32")
    x = keras.layers.Embedding(20, FEATURES, mask_zero=True)(ids)
    x = Bidirectional(LayerNormLSTM(UNITS, return_sequences=True))(x)
    x = LayerNormGRU(UNITS, return_sequences=True)(x)
    x = SimpleRNN(UNITS)(x)
    return keras.Model(ids, keras.layers.Dense(1)(x))


# The generic loop's XLA gradients are checked layer by layer above; a second
# compiled fit through it costs ~10 s, so it is left to `-m slow`.
@pytest.fixture(params=["fused", pytest.param("generic", marks=pytest.mark.slow)])
def both_kernels_path(request, monkeypatch):
    """Every recurrent layer forced through one path."""
    with all_kernels_forced(request.param, monkeypatch) as path:
        yield path


def test_fit_with_jit_compile_matches_plain_fit(both_kernels_path):
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 20, size=(12, TIME))
    ids[np.arange(TIME)[None, :] >= rng.integers(1, TIME + 1, size=(12, 1))] = 0
    target = rng.normal(size=(12, 1)).astype("float32")
    losses = {}
    for jit in (False, True):
        model = _model(seed=5)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit)
        assert model.jit_compile is jit
        history = model.fit(ids, target, batch_size=6, epochs=2, verbose=0)
        losses[jit] = history.history["loss"]
    assert np.all(np.isfinite(losses[True])) and losses[True][-1] < losses[True][0]
    np.testing.assert_allclose(losses[True], losses[False], atol=1e-4, rtol=1e-4)
    # The trained model's compiled predict equals its plain call.
    np.testing.assert_allclose(
        model.predict(ids, batch_size=6, verbose=0), model(ids), atol=1e-5
    )
