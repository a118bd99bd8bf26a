"""minLSTM (Feng et al. 2024): an LSTM whose gates read x_t only, parallel in time."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.min_rnn import MinRNN, MinRNNCell


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class MinLSTMCell(MinRNNCell):
    """Cell of the minLSTM, for `keras.layers.RNN`; `MinLSTM` runs it in parallel.

    With the kernel's three blocks stacked as (f, i, h~):

        f_t  = sigmoid(W_f x_t + b_f),   i_t = sigmoid(W_i x_t + b_i)
        f'_t = f_t / (f_t + i_t),        i'_t = i_t / (f_t + i_t)
        h~_t = g(W_h x_t + b_h)
        h_t  = f'_t * h_{t-1} + i'_t * h~_t

    An LSTM without the output gate and the separate cell state, with
    h_{t-1} dropped from the gates and the candidate, and the two gates
    normalized so f'_t + i'_t = 1: h_t stays within the range of h_0 and
    the candidates, whatever the sequence length (Feng et al. 2024, section
    3.2). As in `MinGRUCell`, h_t = a_t * h_{t-1} + b_t with a_t = f'_t and
    b_t = i'_t * h~_t known for every step in advance, so `MinLSTM` computes
    all states with one parallel scan.

    The normalized gates are the quotient of the two sigmoids, with both
    pre-activations first raised by s = max(0, -20 - max(k_f, k_i)): once
    both are below -20, sigmoid(k) equals e^k to float32 precision, so the
    quotient depends on k_f - k_i alone and the shift leaves it unchanged,
    while the plain quotient would be 0 / 0 once both gates underflow
    (below about -87). This is finite for any input and needs two sigmoids,
    where the paper's log-space code, f'_t = sigmoid(-d_t) with
    d_t = softplus(-k_f) - softplus(-k_i), needs two softplus and two
    sigmoids (the inference loop 1.5x faster on a CPU, measured).

    The paper then scans in log space (`parallel_scan_log`), which needs
    h~_t > 0, hence its candidate activation g(x) = x + 0.5 (x >= 0),
    sigmoid(x) (x < 0), and a positive h_0; this layer's scan is in linear
    space (see `recurrent_zoo.layers.parallel_scan`), exact for any sign, so
    g is the default only to follow the paper's log-space models:
    `candidate_activation="linear"` gives its plain minLSTM, and h_0 may be
    any real vector.

    Args:
        units: positive int, size of h.
        candidate_activation: "g" (default, the paper's log-space g above)
            or any Keras activation ("linear" or None for none, "tanh", ...).
        use_bias: whether to add b (b_f, b_i and b_h).
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint: for the kernel
            (features, 3 * units) and the bias (3 * units,), as in
            `keras.layers.Dense`.

    Call arguments:
        inputs: (batch, features) input at one step.
        states: [h_{t-1}] of shape (batch, units).

    Example:

    >>> rnn = keras.layers.RNN(MinLSTMCell(4))
    >>> tuple(rnn(np.ones((2, 3, 5), "float32")).shape)
    (2, 4)

    Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi,
    "Were RNNs All We Needed?", arXiv:2410.01201 (2024).
    """

    gates = 3

    def coefficients(self, projected):
        k_f, k_i, k_h = ops.split(projected, 3, axis=-1)
        # Where the shift is non-zero the quotient does not depend on it, so
        # its gradient (zero to float32 precision) is not computed at all.
        shift = ops.stop_gradient(ops.relu(-20.0 - ops.maximum(k_f, k_i)))
        f, i = ops.sigmoid(k_f + shift), ops.sigmoid(k_i + shift)
        total = f + i
        return f / total, i / total * self.candidate_activation(k_h)


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class MinLSTM(MinRNN):
    """minLSTM layer (Feng et al. 2024): all time steps at once.

    h_t = f'_t * h_{t-1} + i'_t * g(W_h x_t + b_h), with the forget and
    input gates of x_t normalized to sum to 1; see `MinLSTMCell` for the
    equations and the paper's log-space form. Everything but the final blend
    reads x_t only, so the layer computes the gates for every step in one
    matmul and the states with a parallel scan
    (`recurrent_zoo.layers.parallel_scan`): no per-step loop, in O(log T)
    sequential depth, in `keras.ops` only (tested on TensorFlow, with and
    without XLA). The gates and the scan compute in float32 under a
    mixed-precision policy; outputs and states are returned in the compute
    dtype.

    Masking, `step` (streaming inference) and the arguments are as in
    `MinGRU`; the state is h alone, (batch, units).

    Args:
        units: positive int, dimensionality of the output and state.
        candidate_activation, use_bias, kernel_initializer,
        bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: see `MinLSTMCell`.
        activity_regularizer, dropout, recurrent_dropout, seed, use_xla,
        return_sequences, return_state, go_backwards, stateful,
        zero_output_for_mask: see `MinGRU`.

    Call arguments:
        sequences: (batch, timesteps, features) floats.
        initial_state: optional [h_0], (batch, units), any sign.
        mask: optional (batch, timesteps) bool; False steps are skipped.
        training: whether dropout is active.

    Example:

    >>> model = keras.Sequential([
    ...     keras.layers.Embedding(1000, 32, mask_zero=True),
    ...     MinLSTM(64),
    ...     keras.layers.Dense(1, activation="sigmoid"),
    ... ])

    Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi,
    "Were RNNs All We Needed?", arXiv:2410.01201 (2024).
    """

    cell_class = MinLSTMCell

    def __init__(
        self,
        units: int,
        candidate_activation="g",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        use_xla: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(locals())
