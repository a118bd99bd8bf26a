"""The recurrent kernels compiled by XLA in training (`use_xla`).

A training call of SimpleRNN, LayerNormLSTM or LayerNormGRU inside a traced
function with a known length runs its TF kernel's two loops, the recording
forward loop and the hand-written backward one, as XLA-compiled functions
(`tf_kernel_parts.loop_compiler`). The oracle
is the same layer with `use_xla=False`, the plain kernel that the layers'
own tests hold to the NumPy references: outputs and gradients must agree,
and each test checks from the traced graph that the compiled function ran
exactly where meant to (training with a known length), so that no test
compares the plain kernel with itself.
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
    RECURRENT,
    TIME,
    has_kernel,
    make_recurrent,
    option_id,
)

from recurrent_zoo.layers import tf_kernel_parts

RNG = np.random.default_rng(8)
X = RNG.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
KERNEL_LAYERS = [name for name in RECURRENT if has_kernel(name)]
NONE = {"_record": 0, "_backward": 0}
ONE = {"_record": 1, "_backward": 1}


@pytest.fixture
def compiled(monkeypatch):
    """What each kernel call asked `tf_kernel_parts.compiles` (True: it ran
    compiled), in order; kernels called with `xla=False` never ask."""
    answers = []
    original = tf_kernel_parts.compiles

    def counted(sequences):
        answers.append(original(sequences))
        return answers[-1]

    monkeypatch.setattr(tf_kernel_parts, "compiles", counted)
    return answers


def _twins(name, **kwargs):
    """Layer `name` built with `use_xla` True and False, equal weights."""
    layers = {use_xla: make_recurrent(name, use_xla=use_xla, **kwargs)
              for use_xla in (True, False)}  # fmt: skip
    for layer in layers.values():
        layer(X)
    layers[False].set_weights(layers[True].get_weights())
    return layers


def _xla_functions(function, *args) -> dict[str, int]:
    """How many of the kernels' loops the traced graph of `function` runs
    compiled by XLA: its forward (`_record`) and backward (`_backward`)
    loops, by name, counted over the graph's function library."""
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    names = [f.signature.name for f in graph.library.function
             if f.attr["_XlaMustCompile"].b]  # fmt: skip
    return {
        loop: sum(name.startswith(f"__inference_{loop}_") for name in names)
        for loop in ("_record", "_backward")
    }


def _training_step(layer, mask):
    """A traced training call: (outputs, gradients for x and the weights),
    the loss weighting every output differently."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=mask, training=True)
            flat = tf.concat([tf.reshape(t, [-1]) for t in tf.nest.flatten(outputs)], 0)
            loss = tf.reduce_sum(
                flat * tf.cos(tf.range(tf.size(flat), dtype=flat.dtype))
            )
        return outputs, tape.gradient(loss, [x, *layer.trainable_variables])

    return step


def _assert_same(got, want):
    """Outputs to OUTPUT_ATOL; gradients to GRAD_TOL of each tensor's largest
    magnitude (an entry summing terms that cancel keeps only absolute
    accuracy)."""
    (outputs, grads), (want_outputs, want_grads) = got, want
    for a, b in zip(
        tf.nest.flatten(outputs), tf.nest.flatten(want_outputs), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=OUTPUT_ATOL, rtol=0)
    for i, (a, b) in enumerate(zip(grads, want_grads, strict=True)):
        scale = max(1.0, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, b, atol=GRAD_TOL * scale, rtol=0, err_msg=i)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(OPTIONS[0], id=option_id(OPTIONS[0])),
        # Everything off as well: under -m slow, to keep the default run short.
        pytest.param(OPTIONS[1], id=option_id(OPTIONS[1]), marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("name", KERNEL_LAYERS)
def test_compiled_training_step_equals_the_plain_kernel(name, options):
    masked, go_backwards, sequences, state = options
    layers = _twins(
        name,
        go_backwards=go_backwards,
        return_sequences=sequences,
        return_state=state,
    )
    mask = tf.constant(MASK) if masked else None
    steps = {k: _training_step(v, mask) for k, v in layers.items()}
    x = tf.constant(X)
    directions = 2 if RECURRENT[name][2] else 1
    assert _xla_functions(steps[True], x) == {
        "_record": directions,
        "_backward": directions,
    }
    assert _xla_functions(steps[False], x) == NONE
    _assert_same(steps[True](x), steps[False](x))


@pytest.mark.parametrize("name", ["ln_lstm", "gru", "simple_rnn"])
def test_inference_and_unknown_lengths_keep_plain_ops(name):
    """What an export traces (an inference call) holds no XLA function,
    which TF Serving could not run; nor does a training call whose length
    is unknown when traced (each new length would compile anew)."""
    layer = make_recurrent(name, return_sequences=True, use_xla=True)
    layer(X)
    x = tf.constant(X)
    inference = tf.function(lambda x: layer(x, training=False))
    assert _xla_functions(inference, x) == NONE
    unknown = tf.TensorSpec((None, None, FEATURES))
    assert _xla_functions(_training_step(layer, None), unknown) == NONE
    # A separate function: one traced for any length would serve x too.
    assert _xla_functions(_training_step(layer, None), x) == ONE


@pytest.mark.parametrize("name", ["ln_lstm", "gru", "simple_rnn"])
def test_fit_learns_what_the_plain_kernel_learns(name, compiled):
    """`fit` on fixed-length batches (a traced training step, Keras's
    default) runs the compiled kernel and reports the losses of
    `use_xla=False`, to float32 rounding."""
    y = RNG.normal(size=(BATCH, 1)).astype("float32")
    losses = {}
    for use_xla in (True, False):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((TIME, FEATURES))
        hidden = make_recurrent(name, use_xla=use_xla)(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        losses[use_xla] = model.fit(X, y, epochs=3, verbose=0).history["loss"]
        # Each trace of the training step asks once (Keras may trace twice).
        assert compiled and all(compiled) if use_xla else not compiled
        compiled.clear()
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    assert losses[True][-1] < losses[True][0]
