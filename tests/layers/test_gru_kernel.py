"""`tf_gru_kernel.gru_recurrence` against an independent oracle.

The oracle is the GRU's equations written out in float64 TensorFlow ops
with a Python loop over time; TensorFlow's autodiff gives its gradients.
The kernel must match it, outputs to 1e-5 and gradients (of a loss that
weights hs and h_T at random) to 1e-4 relative to the largest, for every
combination of layer normalization, reset_after, masking, direction,
output sequences and the recording/lean loop. Gains and biases are random
(std 0.5 around 1 and 0) so that a misplaced one shows.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from recurrent_zoo.layers import tf_gru_kernel
from recurrent_zoo.layers.tf_gru_kernel import gru_recurrence

B, T, F, H = 4, 6, 4, 3
EPSILON = 1e-3
# Batch-major: two right-padded rows of different lengths and one with a hole.
MASK = np.array(
    [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 1]],
    bool,
)
NAMES = ["inputs", "h0", "kernel", "recurrent_kernel", "bias", "input_gamma",
         "recurrent_gamma"]  # fmt: skip


def make_args(layer_norm, reset_after, seed=0):
    rng = np.random.default_rng(seed)

    def normal(*shape, mean=0.0, std=1.0):
        return (mean + std * rng.normal(size=shape)).astype("float32")

    args = {
        "inputs": normal(B, T, F),
        "h0": normal(B, H, std=0.5),
        "kernel": normal(F, 3 * H, std=0.5),
        "recurrent_kernel": normal(H, 3 * H, std=0.5),
        "bias": normal(*((2, 3 * H) if reset_after else (3 * H,)), std=0.5),
    }
    if layer_norm:
        args["input_gamma"] = normal(3 * H, mean=1.0, std=0.5)
        args["recurrent_gamma"] = normal(3 * H, mean=1.0, std=0.5)
    return args


def processing_mask(reverse):
    """The kernel's (T, B) mask, in processing order, from MASK."""
    return (MASK[:, ::-1] if reverse else MASK).T


def oracle(
    inputs,
    h0,
    kernel,
    recurrent_kernel,
    bias,
    input_gamma=None,
    recurrent_gamma=None,
    mask=None,
    reset_after=True,
    reverse=False,
):
    """The GRU's equations, step by step, in whatever dtype they are given."""
    layer_norm = recurrent_gamma is not None

    def norm(v, gamma):
        if not layer_norm:
            return v
        mean, variance = tf.nn.moments(v, axes=[-1], keepdims=True)
        return gamma * (v - mean) / tf.sqrt(variance + EPSILON)

    h, hs = h0, []
    for t in range(inputs.shape[1]):
        x_t = inputs[:, inputs.shape[1] - 1 - t if reverse else t]
        if reset_after:
            a = norm(x_t @ kernel, input_gamma) + bias[0]
            s = norm(h @ recurrent_kernel, recurrent_gamma) + bias[1]
            z = tf.sigmoid(a[:, :H] + s[:, :H])
            r = tf.sigmoid(a[:, H : 2 * H] + s[:, H : 2 * H])
            hh = tf.tanh(a[:, 2 * H :] + r * s[:, 2 * H :])
        else:
            a = norm(x_t @ kernel, input_gamma) + bias
            gains = (None, None) if not layer_norm else (
                recurrent_gamma[: 2 * H], recurrent_gamma[2 * H :])  # fmt: skip
            s = norm(h @ recurrent_kernel[:, : 2 * H], gains[0])
            z = tf.sigmoid(a[:, :H] + s[:, :H])
            r = tf.sigmoid(a[:, H : 2 * H] + s[:, H:])
            hh = tf.tanh(a[:, 2 * H :] + norm((r * h) @ recurrent_kernel[:, 2 * H :],
                                              gains[1]))  # fmt: skip
        h_new = z * h + (1 - z) * hh
        if mask is not None:
            h_new = tf.where(mask[t][:, None], h_new, h)
        h = h_new
        hs.append(h)
    return tf.stack(hs), h


def outputs_and_grads(fn, args, dtype, sequences, seed=1):
    """(hs or None, h_T) and the gradients of a random weighting of them."""
    rng = np.random.default_rng(seed)
    d_hs = tf.constant(rng.normal(size=(T, B, H)), dtype)
    d_h = tf.constant(rng.normal(size=(B, H)), dtype)
    tensors = {k: tf.cast(v, dtype) for k, v in args.items()}
    with tf.GradientTape() as tape:
        tape.watch(list(tensors.values()))
        hs, h_last = fn(**tensors)
        loss = tf.reduce_sum(h_last * d_h)
        if sequences:
            loss += tf.reduce_sum(hs * d_hs)
    grads = tape.gradient(loss, tensors)
    return (hs, h_last), grads


def assert_close(outputs, grads, expected_outputs, expected_grads):
    for got, want in zip(outputs, expected_outputs, strict=True):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    for name, want in expected_grads.items():
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(
            grads[name], want, atol=1e-4 * scale, rtol=0, err_msg=name
        )


GRID = list(itertools.product([True, False], repeat=6))
# The default run takes a covering subset: the 8 rows of the L8 orthogonal
# array meet every pair of options in all four combinations (all-on among
# them), plus all-off; `-m slow` runs the whole grid.
_L8 = [
    "1111111", "1112222", "1221122", "1222211",
    "2121212", "2122121", "2211221", "2212112",
]  # fmt: skip
PAIRWISE = {tuple(c == "1" for c in row[:6]) for row in _L8} | {(False,) * 6}


def _grid_id(row):
    names = ["ln", "after", "masked", "reverse", "seq", "record"]
    return "-".join(n for n, on in zip(names, row, strict=True) if on) or "plain"


@pytest.mark.parametrize(
    "layer_norm, reset_after, masked, reverse, sequences, record",
    [
        pytest.param(*row, marks=() if row in PAIRWISE else pytest.mark.slow)
        for row in GRID
    ],
    ids=[_grid_id(row) for row in GRID],
)
def test_matches_oracle(layer_norm, reset_after, masked, reverse, sequences, record):
    check_against_oracle(layer_norm, reset_after, masked, reverse, sequences, record)


@pytest.mark.parametrize("layer_norm, reset_after", [(True, True), (False, False)])
def test_lean_loop_reading_inputs_per_step(layer_norm, reset_after, monkeypatch):
    """The inference loop with x_t W at each step (inputs too large for the
    cache) rather than x W for all steps before the loop."""
    monkeypatch.setattr(tf_gru_kernel, "_CACHED_FLOATS", 0)
    check_against_oracle(layer_norm, reset_after, True, True, True, False)


def check_against_oracle(layer_norm, reset_after, masked, reverse, sequences, record):
    args = make_args(layer_norm, reset_after)
    mask = processing_mask(reverse) if masked else None
    options = dict(mask=mask, reset_after=reset_after, reverse=reverse)

    def kernel(**tensors):
        return gru_recurrence(
            **tensors, **options, epsilon=EPSILON, record=record, sequences=sequences
        )

    outputs, grads = outputs_and_grads(kernel, args, tf.float32, sequences)
    want, want_grads = outputs_and_grads(
        lambda **t: oracle(**t, **options), args, tf.float64, sequences
    )
    if not sequences:
        want = (None, want[1])
    assert_close(outputs, grads, want, want_grads)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_plain_equals_keras_gru(reset_after, masked):
    args = make_args(False, reset_after)
    layer = keras.layers.GRU(H, reset_after=reset_after, return_sequences=True)
    layer.build((B, T, F))
    layer.set_weights([args["kernel"], args["recurrent_kernel"], args["bias"]])
    # Right-padded rows: Keras's masked outputs repeat the last one, as ours do.
    mask = np.arange(T) < np.array([[6], [4], [1], [3]]) if masked else None
    x = args["inputs"]
    expected = layer(x, mask=mask)
    hs, _ = gru_recurrence(
        x, np.zeros((B, H), "float32"), args["kernel"], args["recurrent_kernel"],
        args["bias"], mask=None if mask is None else mask.T, reset_after=reset_after,
    )  # fmt: skip
    np.testing.assert_allclose(tf.transpose(hs, (1, 0, 2)), expected, atol=1e-5)


@pytest.mark.parametrize(
    "layer_norm, reset_after, record",
    [
        (True, True, True),
        pytest.param(True, False, True, marks=pytest.mark.slow),
        pytest.param(False, True, True, marks=pytest.mark.slow),
        (True, False, False),
    ],
)
def test_xla_matches_eager(layer_norm, reset_after, record):
    """In a `tf.function`, with and without `jit_compile=True` (XLA on the
    CPU here), masked, reversed and returning sequences: the same outputs
    and gradients as eagerly (which `test_matches_oracle` checks)."""
    args = make_args(layer_norm, reset_after)
    options = dict(mask=processing_mask(True), reset_after=reset_after,
                   reverse=True, record=record)  # fmt: skip

    def run(**tensors):
        return outputs_and_grads(
            lambda **t: gru_recurrence(**t, **options), tensors, tf.float32, True
        )

    eager_outputs, eager_grads = run(**args)
    for jit_compile in (False, True):
        outputs, grads = tf.function(run, jit_compile=jit_compile)(**args)
        assert_close(outputs, grads, eager_outputs, eager_grads)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_float16_inputs(layer_norm):
    """float16 in, float16 out; the recurrence itself runs in float32, so the
    outputs are the float32 run's to float16 rounding (|h| < 1: 1e-3)."""
    args = make_args(layer_norm, True)
    half = {k: v.astype("float16") for k, v in args.items()}
    mask = processing_mask(False)
    outputs, grads = outputs_and_grads(
        lambda **t: gru_recurrence(**t, mask=mask), half, tf.float16, True
    )
    want, want_grads = outputs_and_grads(
        lambda **t: gru_recurrence(**t, mask=mask),
        {k: v.astype("float32") for k, v in half.items()},
        tf.float32,
        True,
    )
    for got, expected in zip(outputs, want, strict=True):
        assert got.dtype == tf.float16
        np.testing.assert_allclose(got, expected, atol=1e-3)
    for name, expected in want_grads.items():
        assert grads[name].dtype == tf.float16, name
        scale = np.max(np.abs(expected))
        np.testing.assert_allclose(
            tf.cast(grads[name], tf.float32), expected, atol=1e-2 * scale, err_msg=name
        )


def test_gains_go_together():
    args = make_args(True, True)
    del args["recurrent_gamma"]
    with pytest.raises(ValueError, match="both or neither"):
        gru_recurrence(**args)


@pytest.mark.parametrize("layer_norm, reset_after", [(True, True), (False, False)])
def test_saved_model_keeps_the_gradient(layer_norm, reset_after, tmp_path):
    """The recording kernel exports with its custom gradient (which must
    capture stacked tensors, not TensorArrays), and the loaded function
    differentiates to the same gradients."""
    args = make_args(layer_norm, reset_after)
    weights = {k: tf.Variable(v) for k, v in args.items() if k not in ("inputs", "h0")}
    mask = processing_mask(False)

    def forward(inputs, h0):
        return gru_recurrence(inputs, h0, **weights, mask=mask, reset_after=reset_after)

    module = tf.Module()
    module.weights = list(weights.values())
    module.forward = tf.function(
        forward,
        input_signature=[tf.TensorSpec((B, T, F)), tf.TensorSpec((B, H))],
    )
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))

    def grads(fn, variables):
        inputs = tf.constant(args["inputs"])
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            hs, h_last = fn(inputs, tf.constant(args["h0"]))
            loss = tf.reduce_sum(hs * hs) + tf.reduce_sum(h_last)
        return tape.gradient(loss, [inputs, *variables])

    expected = grads(forward, weights.values())
    for got, want in zip(grads(loaded.forward, loaded.weights), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
