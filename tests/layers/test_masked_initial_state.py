"""Masked steps before any real one, with a non-zero initial state.

Keras's loop outputs the previous *output* at a skipped step, and zeros
before a sequence's first real step; the state alone carries h_0. The
kernels and the min-RNNs' parallel scan carry h, so `batch_major_outputs`
(and `MinRNN`) restore Keras's rule: checked here against each layer's Keras
twin, with the same weights.
"""

import keras
import numpy as np
import pytest

from recurrent_zoo.layers import (
    LayerNormGRU,
    LayerNormLSTM,
    MinGRU,
    MinGRUCell,
    MinLSTM,
    MinLSTMCell,
    SimpleRNN,
)

RNG = np.random.default_rng(5)
X = RNG.normal(size=(4, 5, 3)).astype("float32")
# Full; right-padded (leading padding under go_backwards); left-padded;
# no real step at all.
MASK = np.array(
    [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], bool
)
TWINS = {
    "lstm": (lambda **k: LayerNormLSTM(2, layer_norm=False, **k), keras.layers.LSTM),
    "gru": (lambda **k: LayerNormGRU(2, layer_norm=False, **k), keras.layers.GRU),
    "simple_rnn": (lambda **k: SimpleRNN(2, **k), keras.layers.SimpleRNN),
    # The parallel scan against its own cell in Keras's loop.
    "min_gru": (
        lambda **k: MinGRU(2, **k),
        lambda units, **k: keras.layers.RNN(MinGRUCell(units), **k),
    ),
    "min_lstm": (
        lambda **k: MinLSTM(2, **k),
        lambda units, **k: keras.layers.RNN(MinLSTMCell(units), **k),
    ),
}


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_outputs_follow_keras_before_the_first_real_step(
    name, go_backwards, return_sequences
):
    make_ours, keras_class = TWINS[name]
    kwargs = dict(
        return_sequences=return_sequences, return_state=True, go_backwards=go_backwards
    )
    ours, theirs = make_ours(**kwargs), keras_class(2, **kwargs)
    ours(X)
    theirs(X)
    theirs.set_weights(ours.get_weights())
    states = 2 if name == "lstm" else 1
    initial = [RNG.normal(size=(4, 2)).astype("float32") for _ in range(states)]
    got = ours(X, initial_state=initial, mask=MASK)
    want = theirs(X, initial_state=initial, mask=MASK)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=f"output {i}")
    # The fully masked row: output zeros, states its initial state.
    np.testing.assert_allclose(np.asarray(got[0])[3], 0.0)
    np.testing.assert_allclose(np.asarray(got[1])[3], initial[0][3], atol=1e-7)
