"""Tests for recurrent_zoo.layers.bidirectional.Bidirectional.

Oracles: `keras.layers.Bidirectional` with the same weights (unmasked input),
and each sequence of a padded batch run alone, unpadded (masked input).
"""

import keras
import numpy as np
import pytest
from layer_checks import (
    check_config_round_trip,
    check_masking,
    check_saving,
    run_layer_checks,
)

from recurrent_zoo.layers.bidirectional import Bidirectional

BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 3
LENGTHS = [5, 3, 1]
CELLS = [keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN]
MERGE_MODES = ["concat", "sum", "ave", "mul", None]


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(BATCH, TIME, FEATURES)).astype("f4")


@pytest.fixture
def mask():
    return np.arange(TIME)[None, :] < np.array(LENGTHS)[:, None]


def _as_list(outputs):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]


def _twins(cell, merge_mode="concat", **kwargs):
    """Ours and Keras's Bidirectional, built, with the same random weights."""
    ours = Bidirectional(cell(UNITS, **kwargs), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(cell(UNITS, **kwargs), merge_mode=merge_mode)
    ours.build((BATCH, TIME, FEATURES))
    theirs.build((BATCH, TIME, FEATURES))
    # `set_weights` on the wrappers relies on both listing the forward layer's
    # weights, then the backward layer's, in the same per-layer order.
    for layer in (ours, theirs):
        halves = layer.forward_layer.weights + layer.backward_layer.weights
        assert [id(v) for v in layer.weights] == [id(v) for v in halves]
    assert [v.shape for v in ours.weights] == [v.shape for v in theirs.weights]
    # Non-zero biases, so a swapped bias would show.
    rng = np.random.default_rng(1)
    theirs.set_weights([rng.normal(scale=0.5, size=w.shape) for w in theirs.weights])
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("return_state", [False, True], ids=["nostate", "state"])
def test_matches_keras_bidirectional_unmasked(
    x, cell, merge_mode, return_sequences, return_state
):
    ours, theirs = _twins(
        cell,
        merge_mode,
        return_sequences=return_sequences,
        return_state=return_state,
    )
    actual, expected = _as_list(ours(x)), _as_list(theirs(x))
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    shapes = ours.compute_output_shape(x.shape)
    shapes = shapes if isinstance(shapes, list) else [shapes]
    assert [a.shape for a in actual] == [tuple(s) for s in shapes]


def test_initial_state_matches_keras(x):
    ours, theirs = _twins(keras.layers.LSTM, return_sequences=True)
    rng = np.random.default_rng(2)
    states = [rng.normal(size=(BATCH, UNITS)).astype("f4") for _ in range(4)]
    np.testing.assert_allclose(
        ours(x, initial_state=states),
        theirs(x, initial_state=states),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_padded_batch_equals_each_sequence_alone(x, mask, cell, return_sequences):
    ours, theirs = _twins(
        cell, merge_mode=None, return_sequences=return_sequences, return_state=True
    )
    # Garbage at padded steps must not leak into anything.
    noisy = np.where(mask[..., None], x, 100.0).astype("f4")
    fwd, bwd, *states = _as_list(ours(noisy, mask=mask))
    for i, length in enumerate(LENGTHS):
        # Keras's layer on the unpadded sequence, so no masking is involved.
        e_fwd, e_bwd, *e_states = _as_list(theirs(x[i : i + 1, :length]))
        if return_sequences:
            np.testing.assert_allclose(fwd[i, :length], e_fwd[0], atol=1e-6)
            np.testing.assert_allclose(bwd[i, :length], e_bwd[0], atol=1e-6)
            assert np.all(fwd[i, length:] == 0) and np.all(bwd[i, length:] == 0)
        else:
            np.testing.assert_allclose(fwd[i], e_fwd[0], atol=1e-6)
            # The backward output is its state after x_1, having started at x_L.
            np.testing.assert_allclose(bwd[i], e_bwd[0], atol=1e-6)
        for actual, expected in zip(states, e_states, strict=True):
            np.testing.assert_allclose(actual[i], expected[0], atol=1e-6)


@keras.saving.register_keras_serializable(package="test_bidirectional")
class MaskBlindRNN(keras.layers.SimpleRNN):
    """A SimpleRNN that never sees the mask: its call takes no `mask`."""

    def call(self, sequences, initial_state=None, training=None):
        return super().call(sequences, initial_state=initial_state, training=training)


def test_mask_blind_layer_sequence_outputs_still_per_sequence(x, mask):
    # Reversing within each row puts the padding after the real steps in both
    # directions, so even a layer ignoring the mask gets real positions right.
    ours = Bidirectional(MaskBlindRNN(UNITS, return_sequences=True), merge_mode=None)
    keras_wrapped = keras.layers.Bidirectional(
        MaskBlindRNN(UNITS, return_sequences=True), merge_mode=None
    )
    oracle = keras.layers.Bidirectional(
        keras.layers.SimpleRNN(UNITS, return_sequences=True), merge_mode=None
    )
    for layer in (ours, keras_wrapped, oracle):
        layer.build(x.shape)
    weights = [np.random.default_rng(3).normal(size=w.shape) for w in oracle.weights]
    for layer in (ours, keras_wrapped, oracle):
        layer.set_weights(weights)
    padded = np.where(mask[..., None], x, 0.0).astype("f4")
    fwd, bwd = _as_list(ours(padded, mask=mask))
    keras_bwd = _as_list(keras_wrapped(padded, mask=mask))[1]
    for i, length in enumerate(LENGTHS):
        e_fwd, e_bwd = _as_list(oracle(x[i : i + 1, :length]))
        np.testing.assert_allclose(fwd[i, :length], e_fwd[0], atol=1e-6)
        np.testing.assert_allclose(bwd[i, :length], e_bwd[0], atol=1e-6)
        if length < TIME:
            # keras.layers.Bidirectional's backward pass starts in the padding.
            assert not np.allclose(keras_bwd[i, :length], e_bwd[0], atol=1e-3)


@pytest.mark.parametrize(
    "module, name",
    [
        ("recurrent_zoo.layers.simple_rnn", "SimpleRNN"),
        ("recurrent_zoo.layers.layer_norm_lstm", "LayerNormLSTM"),
    ],
    ids=["SimpleRNN", "LayerNormLSTM"],
)
def test_package_layers_padded_batch_equals_each_sequence_alone(x, mask, module, name):
    cls = getattr(pytest.importorskip(module), name)
    layer = Bidirectional(
        cls(UNITS, return_sequences=True, return_state=True), merge_mode=None
    )
    noisy = np.where(mask[..., None], x, 100.0).astype("f4")
    fwd, bwd, *states = _as_list(layer(noisy, mask=mask))
    for i, length in enumerate(LENGTHS):
        # Unmasked, unpadded: the plain-reversal path, no gather involved.
        e_fwd, e_bwd, *e_states = _as_list(layer(x[i : i + 1, :length]))
        np.testing.assert_allclose(fwd[i, :length], e_fwd[0], atol=1e-5)
        np.testing.assert_allclose(bwd[i, :length], e_bwd[0], atol=1e-5)
        assert np.all(fwd[i, length:] == 0) and np.all(bwd[i, length:] == 0)
        for actual, expected in zip(states, e_states, strict=True):
            np.testing.assert_allclose(actual[i], expected[0], atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "ave"])
def test_padded_batch_merged_outputs(x, mask, merge_mode):
    ours, _ = _twins(keras.layers.GRU, merge_mode, return_sequences=True)
    out = _as_list(ours(x, mask=mask))[0]
    for i, length in enumerate(LENGTHS):
        alone = _as_list(ours(x[i : i + 1, :length]))[0]
        np.testing.assert_allclose(out[i, :length], alone[0], atol=1e-6)
        assert np.all(out[i, length:] == 0)


@pytest.mark.parametrize(
    "row_mask", [[0, 0, 1, 1, 1], [1, 0, 1, 1, 0]], ids=["left_pad", "holes"]
)
def test_other_masks_equal_running_on_real_steps(x, row_mask):
    # Keras RNNs skip masked steps, so any mask gives the compacted sequence's
    # outputs at the real positions (the documented behaviour).
    ours, _ = _twins(keras.layers.LSTM, None, return_sequences=True)
    row_mask = np.array([row_mask], bool)
    fwd, bwd = _as_list(ours(x[:1], mask=row_mask))
    e_fwd, e_bwd = _as_list(ours(x[:1, row_mask[0]]))
    np.testing.assert_allclose(fwd[0, row_mask[0]], e_fwd[0], atol=1e-6)
    np.testing.assert_allclose(bwd[0, row_mask[0]], e_bwd[0], atol=1e-6)
    assert np.all(fwd[0, ~row_mask[0]] == 0) and np.all(bwd[0, ~row_mask[0]] == 0)


def test_layer_checks(x, mask, tmp_path):
    run_layer_checks(
        lambda: Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True)),
        x,
        tmp_path,
        mask=mask,
    )


def test_checks_last_output_gru(x, mask, tmp_path):
    # The shared checks minus export and fit (slow, and covered above), for
    # the return_sequences=False path.
    def make():
        return Bidirectional(keras.layers.GRU(UNITS), merge_mode="sum")

    inputs = keras.Input((TIME, FEATURES))
    model = keras.Model(inputs, make()(inputs))
    check_config_round_trip(model.layers[-1])
    check_saving(model, x, tmp_path)
    check_masking(make, [x], mask)


def test_mask_propagation_in_functional_model():
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 0, 0, 0]])
    inputs = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, FEATURES, mask_zero=True)
    embedded = embedding(inputs)
    seq = Bidirectional(keras.layers.GRU(UNITS, return_sequences=True))(embedded)
    split = Bidirectional(
        keras.layers.GRU(UNITS, return_sequences=True, return_state=True),
        merge_mode=None,
    )(embedded)
    last = Bidirectional(keras.layers.GRU(UNITS))(seq)
    assert seq.shape == (None, None, 2 * UNITS)
    assert [t.shape for t in split] == [(None, None, UNITS)] * 2 + [(None, UNITS)] * 2
    assert [getattr(t, "_keras_mask", None) is not None for t in split] == [
        True,
        True,
        False,
        False,
    ]
    assert getattr(last, "_keras_mask", None) is None

    eager = Bidirectional(keras.layers.GRU(UNITS, return_sequences=True))(
        embedding(tokens)
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(eager._keras_mask), tokens != 0
    )
    # Dynamic time inside tf.function (predict) gives the eager result.
    model = keras.Model(inputs, last)
    np.testing.assert_allclose(
        model.predict(tokens, verbose=0), model(tokens), rtol=1e-5, atol=1e-6
    )


def test_explicit_backward_layer_and_config_round_trip():
    backward = keras.layers.LSTM(UNITS, activation="relu", go_backwards=True, name="bw")
    layer = Bidirectional(
        keras.layers.LSTM(UNITS, name="enc"), merge_mode="mul", backward_layer=backward
    )
    assert layer.forward_layer.name == "forward_enc"
    assert layer.backward_layer.name == "bw"
    # The wrapper reverses the input itself.
    assert layer.backward_layer.go_backwards is False
    assert layer.backward_layer.activation is keras.activations.relu
    config = layer.get_config()
    assert {"layer", "merge_mode", "backward_layer", "name"} <= set(config)
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config
    assert clone.merge_mode == "mul"
    default = Bidirectional(keras.layers.SimpleRNN(UNITS, name="enc"), merge_mode=None)
    assert default.backward_layer.name == "backward_enc"
    assert Bidirectional.from_config(default.get_config()).get_config() == (
        default.get_config()
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Bidirectional(keras.layers.LSTM(UNITS), merge_mode="max"), "'max'"),
        (lambda: Bidirectional(keras.layers.Dense(UNITS)), "Dense"),
        (lambda: Bidirectional("lstm"), "'lstm'"),
        (
            lambda: Bidirectional(
                keras.layers.LSTM(UNITS),
                backward_layer=keras.layers.LSTM(UNITS, return_sequences=True),
            ),
            r"return_sequences` \(True\)",
        ),
        (
            lambda: Bidirectional(
                keras.layers.LSTM(UNITS),
                backward_layer=keras.layers.LSTM(UNITS, return_state=True),
            ),
            r"return_state` \(True\)",
        ),
        (
            lambda: Bidirectional(keras.layers.LSTM(UNITS), backward_layer="gru"),
            "'gru'",
        ),
        (lambda: Bidirectional(keras.layers.LSTM(UNITS, go_backwards=True)), "go_b"),
        (lambda: Bidirectional(keras.layers.LSTM(UNITS, stateful=True)), "stateful"),
    ],
    ids=[
        "merge_mode",
        "dense",
        "string",
        "return_sequences",
        "return_state",
        "backward_string",
        "go_backwards",
        "stateful",
    ],
)
def test_constructor_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_input_errors(x):
    layer = Bidirectional(keras.layers.LSTM(UNITS))
    with pytest.raises(ValueError, match=r"3-D input.*rank 2"):
        layer(x[:, 0])
    with pytest.raises(ValueError, match="floating-point.*'int32'"):
        Bidirectional(keras.layers.LSTM(UNITS))(x.astype("int32"))
    with pytest.raises(ValueError, match="floating-point.*'int32'"):
        Bidirectional(keras.layers.LSTM(UNITS))(keras.Input((TIME, 2), dtype="int32"))
    with pytest.raises(ValueError, match="rank 4"):
        Bidirectional(keras.layers.LSTM(UNITS))(keras.Input((TIME, 2, 2)))
    with pytest.raises(ValueError, match="received 3 tensors"):
        Bidirectional(keras.layers.LSTM(UNITS))(
            x, initial_state=[np.zeros((BATCH, UNITS), "f4")] * 3
        )
