"""minGRU (Feng et al. 2024): a GRU whose gate reads x_t only, parallel in time."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.min_rnn import MinRNN, MinRNNCell


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class MinGRUCell(MinRNNCell):
    """Cell of the minGRU, for `keras.layers.RNN`; `MinGRU` runs it in parallel.

    With the kernel's two blocks stacked as (z, h~):

        z_t  = sigmoid(W_z x_t + b_z)
        h~_t = g(W_h x_t + b_h)
        h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

    A GRU without the reset gate and with h_{t-1} dropped from the update
    gate and the candidate (Feng et al. 2024, section 3.1). Nothing in a step
    depends on h_{t-1} except the final blend, so h_t = a_t * h_{t-1} + b_t
    with a_t = 1 - z_t, b_t = z_t * h~_t known in advance for every step:
    `MinGRU` computes all of them in one matmul and the states in one
    parallel scan. a_t is computed as sigmoid(-(W_z x_t + b_z)), not
    1 - z_t, which is 0 in float32 once z_t rounds to 1 (pre-activations
    above about 17) while the sigmoid still holds about e^-17.

    The paper trains in log space: with log z_t = -softplus(-k_t),
    log(1 - z_t) = -softplus(k_t) and log h~_t = log g(.), its
    `parallel_scan_log` takes h_t = exp(a*_t + logcumsumexp(log b - a*)),
    a*_t the cumulative sum of log(1 - z). That needs h~_t > 0, hence its
    candidate activation g(x) = x + 0.5 (x >= 0), sigmoid(x) (x < 0), and a
    positive h_0. This layer's scan runs in linear space instead (see
    `recurrent_zoo.layers.parallel_scan` for why: exact for any sign, no
    overflow, and faster here), so the sign restriction is gone; the default
    candidate activation is still the paper's g, as in its log-space models.
    `candidate_activation="linear"` gives the paper's plain minGRU
    (h~_t = W_h x_t + b_h), and h_0 may be any real vector with either.

    Args:
        units: positive int, size of h.
        candidate_activation: "g" (default, the paper's log-space g above)
            or any Keras activation ("linear" or None for none, "tanh", ...).
        use_bias: whether to add b (b_z and b_h).
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint: for the kernel
            (features, 2 * units) and the bias (2 * units,), as in
            `keras.layers.Dense`.

    Call arguments:
        inputs: (batch, features) input at one step.
        states: [h_{t-1}] of shape (batch, units).

    Example:

    >>> rnn = keras.layers.RNN(MinGRUCell(4))
    >>> tuple(rnn(np.ones((2, 3, 5), "float32")).shape)
    (2, 4)

    Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi,
    "Were RNNs All We Needed?", arXiv:2410.01201 (2024).
    """

    gates = 2

    def coefficients(self, projected):
        k_z, k_h = ops.split(projected, 2, axis=-1)
        return ops.sigmoid(-k_z), ops.sigmoid(k_z) * self.candidate_activation(k_h)


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class MinGRU(MinRNN):
    """minGRU layer (Feng et al. 2024): all time steps at once.

    h_t = (1 - z_t) * h_{t-1} + z_t * g(W_h x_t + b_h), with
    z_t = sigmoid(W_z x_t + b_z); see `MinGRUCell` for the equations and the
    paper's log-space form. The gates read x_t only, so the layer computes
    them for every step in one matmul and the states with a parallel scan
    (`recurrent_zoo.layers.parallel_scan`): no per-step loop, in O(log T)
    sequential depth, in `keras.ops` only (tested on TensorFlow, with and
    without XLA). The gates and the scan compute in float32 under a
    mixed-precision policy; outputs and states are returned in the compute
    dtype.

    Masking: a masked step leaves the state as it was (a = 1, nothing
    added), so right padding never reaches the final state; the outputs
    follow `keras.layers.RNN` (the previous output at a masked step, zeros
    before the first real one, or zeros at every masked step with
    `zero_output_for_mask`).

    For streaming inference, `step(x_t, state)` advances one token in
    O(1) and gives what the layer gives at that step.

    Args:
        units: positive int, dimensionality of the output and state.
        candidate_activation, use_bias, kernel_initializer,
        bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: see `MinGRUCell`.
        activity_regularizer: on the layer's output.
        dropout: fraction of input features dropped, one mask per sequence.
        recurrent_dropout: must be 0: nothing recurrent has weights (kept so
            the layer takes the models' common recurrent arguments).
        seed: seed of the dropout mask.
        use_xla: on TensorFlow, compile a training step's gates and scan
            with XLA where the time length is fixed (faster on a CPU; see
            `recurrent_zoo.layers.tf_min_rnn_kernel`). Inference and
            exports never use it. False keeps plain TensorFlow ops.
        return_sequences, return_state, go_backwards, stateful,
        zero_output_for_mask: as in `keras.layers.RNN`.

    Call arguments:
        sequences: (batch, timesteps, features) floats.
        initial_state: optional [h_0], (batch, units), any sign.
        mask: optional (batch, timesteps) bool; False steps are skipped.
        training: whether dropout is active.

    Example:

    >>> layer = MinGRU(4, return_sequences=True)
    >>> tuple(layer(np.ones((2, 3, 5), "float32")).shape)
    (2, 3, 4)
    >>> h, state = layer.step(np.ones((2, 5), "float32"))
    >>> tuple(state.shape)
    (2, 4)

    Reference: L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi,
    "Were RNNs All We Needed?", arXiv:2410.01201 (2024).
    """

    cell_class = MinGRUCell

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
