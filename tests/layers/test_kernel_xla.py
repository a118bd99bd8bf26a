"""The recurrent kernels compiled by XLA (`use_xla`): in training, and in
Keras's own predict, evaluate and fit steps.

A training call of SimpleRNN, LayerNormLSTM or LayerNormGRU inside a traced
function with a known length runs its TF kernel's two loops, the recording
forward loop and the hand-written backward one, as XLA-compiled functions
(`tf_kernel_parts.loop_compiler`); an inference call inside a Keras step
runs the inference loop compiled (`inference_compiler`). The oracle
is the same layer with `use_xla=False`, the plain kernel that the layers'
own tests hold to the NumPy references: outputs and gradients must agree,
and each test checks from the traced graph that the compiled function ran
exactly where meant to, so that no test compares the plain kernel with
itself.
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
LOOPS = ("_record", "_backward")
# Everything on; everything off as well under -m slow, to keep the default
# run short.
OPTION_ROWS = [
    pytest.param(OPTIONS[0], id=option_id(OPTIONS[0])),
    pytest.param(OPTIONS[1], id=option_id(OPTIONS[1]), marks=pytest.mark.slow),
]


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


def _xla_functions(function, *args, loops=LOOPS) -> dict[str, int]:
    """How many of the kernels' loops the traced graph of `function` runs
    compiled by XLA: by default its training loops, forward (`_record`)
    and backward (`_backward`); `_forward` is the inference loop. Counted
    by name over the graph's function library."""
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    return _compiled_loops(graph.library, loops)


def _compiled_loops(library, loops) -> dict[str, int]:
    names = [f.signature.name for f in library.function
             if f.attr["_XlaMustCompile"].b]  # fmt: skip
    return {
        loop: sum(name.startswith(f"__inference_{loop}_") for name in names)
        for loop in loops
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


@pytest.mark.parametrize("options", OPTION_ROWS)
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

    def build(use_xla):
        inputs = keras.Input((TIME, FEATURES))
        hidden = make_recurrent(name, use_xla=use_xla)(inputs)
        return keras.Model(inputs, keras.layers.Dense(1)(hidden))

    _fits_alike(build, compiled)


def _fits_alike(build, compiled):
    """`build(use_xla)` fitted both ways from one seed reports the same,
    falling losses, to float32 rounding; the kernels asked `compiles`
    (and heard True) only with XLA on."""
    y = RNG.normal(size=(BATCH, 1)).astype("float32")
    losses = {}
    for use_xla in (True, False):
        keras.utils.set_random_seed(0)
        model = build(use_xla)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        losses[use_xla] = model.fit(X, y, epochs=3, verbose=0).history["loss"]
        # Each trace of the training step asks once (Keras may trace twice).
        assert compiled and all(compiled) if use_xla else not compiled
        compiled.clear()
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    assert losses[True][-1] < losses[True][0]


def _predictor(layer, masked):
    """A model of `layer` alone (fed a mask as a second input if `masked`),
    compiled without XLA: only the layer's own loop may be compiled."""
    inputs = [keras.Input((TIME, FEATURES))]
    if masked:
        inputs.append(keras.Input((TIME,), dtype="bool"))
    outputs = layer(inputs[0], mask=inputs[1] if masked else None)
    model = keras.Model(inputs, outputs)
    model.compile(jit_compile=False)
    return model


@pytest.mark.parametrize("options", OPTION_ROWS)
@pytest.mark.parametrize("name", KERNEL_LAYERS)
def test_predict_and_evaluate_run_the_compiled_inference_loop(name, options):
    """Keras's predict and evaluate steps run the inference loop compiled
    by XLA (`tf_kernel_parts.inference_compiler`) and give the outputs of
    `use_xla=False`, whose plain loop the layers' own tests hold to the
    NumPy references."""
    masked, go_backwards, sequences, state = options
    layers = _twins(
        name, go_backwards=go_backwards, return_sequences=sequences, return_state=state
    )
    x = [X, MASK] if masked else X
    models = {k: _predictor(v, masked) for k, v in layers.items()}
    want = models[False].predict(x, verbose=0)
    got = models[True].predict(x, verbose=0)
    for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(want), strict=True):
        np.testing.assert_allclose(a, b, atol=OUTPUT_ATOL, rtol=0)
    directions = 2 if RECURRENT[name][2] else 1
    data = [(tf.nest.map_structure(tf.constant, x),)]
    for use_xla, count in ((True, directions), (False, 0)):
        predict = models[use_xla].predict_function
        assert _xla_functions(predict, data, loops=["_forward"]) == {"_forward": count}
    # evaluate's step (fit's kind of step) compiles the loop too.
    targets = tf.nest.map_structure(np.zeros_like, want)
    for model in models.values():
        model.compile(loss="mse", jit_compile=False)
    np.testing.assert_allclose(
        models[True].evaluate(x, targets, verbose=0),
        models[False].evaluate(x, targets, verbose=0),
        rtol=1e-5,
    )


@pytest.mark.parametrize("name", ["simple_rnn", "ln_lstm"])
def test_inference_mode_compiles_only_the_inference_loop(name):
    """`use_xla="inference"` (SimpleRNN's default): training keeps plain
    ops, predict runs the compiled inference loop."""
    layer = make_recurrent(name, use_xla="inference")
    if name == "simple_rnn":
        assert make_recurrent(name).use_xla == "inference"
    layer(X)
    x = tf.constant(X)
    assert _xla_functions(_training_step(layer, None), x) == NONE
    model = _predictor(layer, masked=False)
    np.testing.assert_allclose(
        model.predict(X, verbose=0), layer(X), atol=OUTPUT_ATOL, rtol=0
    )
    data = [(x,)]
    assert _xla_functions(model.predict_function, data, loops=["_forward"]) == {
        "_forward": 1
    }


class FrozenEncoder(keras.Model):
    """A head trained on a recurrent layer's outputs in inference mode."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.head = layer, keras.layers.Dense(1)

    def call(self, x, training=False):
        return self.head(keras.ops.mean(self.layer(x, training=False), axis=1))


@pytest.mark.parametrize("name", ["ln_lstm", "bi_ln_gru", "simple_rnn"])
def test_a_gradient_through_the_compiled_inference_loop_replays_the_plain_one(
    name, compiled
):
    """A layer called with training=False inside fit's step runs the
    compiled inference loop, whose gradient (TensorFlow cannot take one
    through an XLA while loop from outside it) replays the plain loop:
    fit learns what `use_xla=False` learns."""
    _fits_alike(
        lambda use_xla: FrozenEncoder(
            make_recurrent(name, use_xla=use_xla, return_sequences=True)
        ),
        compiled,
    )


def test_an_export_after_predict_holds_no_xla_function(tmp_path):
    """predict compiles the inference loop; `model.export`, tracing the
    same inference call afterwards, must still write plain ops only."""
    from tensorflow.core.protobuf import saved_model_pb2

    layer = _twins("bi_ln_lstm", return_sequences=True)[True]
    model = _predictor(layer, masked=False)
    model.predict(X, verbose=0)
    data = [(tf.constant(X),)]
    assert _xla_functions(model.predict_function, data, loops=["_forward"]) == {
        "_forward": 2
    }
    model.export(str(tmp_path / "export"), verbose=False)
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((tmp_path / "export" / "saved_model.pb").read_bytes())
    (graph,) = [m.graph_def for m in saved.meta_graphs]
    assert graph.library.function  # the check below would pass on nothing
    assert _compiled_loops(graph.library, ["_forward"]) == {"_forward": 0}
    assert not [f for f in graph.library.function if f.attr["_XlaMustCompile"].b]
