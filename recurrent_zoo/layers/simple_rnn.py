"""Fully-connected recurrent layer (Elman network), optionally layer-normalized."""

from __future__ import annotations

import keras

from recurrent_zoo.layers.rnn_base import ProjectedRNN, split_arguments
from recurrent_zoo.layers.simple_rnn_cell import SimpleRNNCell


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class SimpleRNN(ProjectedRNN):
    """Fully-connected RNN layer: `SimpleRNNCell` run over a sequence.

    h_t = act(W x_t + U h_{t-1} + b), optionally with the pre-activation
    layer-normalized (see `SimpleRNNCell`). On the TensorFlow backend,
    without layer normalization, with a tanh, relu or linear activation and
    no active recurrent dropout, the loop is a dedicated kernel with a
    hand-written back-propagation through time
    (`recurrent_zoo.layers.tf_simple_rnn_kernel`), which computes in float32
    under a mixed-precision policy; otherwise the cell runs in Keras's
    generic loop, with W x_t + b computed for all steps in one matmul before
    the loop. Both compute the same values and run under XLA. With
    `layer_norm=False` the layer is a drop-in for `keras.layers.SimpleRNN`:
    same arguments, same weights, same outputs.

    Args:
        units: positive int, dimensionality of the output.
        activation, use_bias, kernel_initializer, recurrent_initializer,
        bias_initializer, kernel_regularizer, recurrent_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
        seed: as in `keras.layers.SimpleRNN`.
        layer_norm, norm_epsilon, gamma_initializer, beta_initializer: see
            `SimpleRNNCell`.
        return_sequences, return_state, go_backwards, stateful, unroll,
        zero_output_for_mask: as in `keras.layers.RNN`.
        use_xla: as in `LayerNormLSTM`, but "inference" by default: only
            the inference loop compiles. A training step of a simple RNN is
            one matmul and a tanh, which leaves XLA little to fuse (it
            measured slower, with more memory, on a CPU), while an
            inference loop sheds TensorFlow's per-step overhead (2.3x at
            batch 1).

    Call arguments:
        sequences: (batch, timesteps, features) floats.
        initial_state: optional [h_0].
        mask: optional (batch, timesteps) bool; False steps are skipped (h
            carries over), so right padding never reaches the final state.
        training: whether dropout is active.

    Example:

    >>> layer = SimpleRNN(4, return_sequences=True)
    >>> tuple(layer(np.ones((2, 3, 5), "float32")).shape)
    (2, 3, 4)

    Reference: J. L. Elman, "Finding structure in time", Cognitive Science 14
    (1990).
    """

    cell_class = SimpleRNNCell

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = False,
        norm_epsilon: float = 1e-3,
        gamma_initializer="ones",
        beta_initializer="zeros",
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        use_xla: bool | str = "inference",
        **kwargs,
    ):
        super().__init__(*split_arguments(locals()), **kwargs)

    def fused_loop(self, sequences, initial_state, mask, training):
        cell = self.cell
        activation = _ACTIVATION_NAMES.get(cell.activation)
        if (
            keras.backend.backend() != "tensorflow"
            or activation is None
            or cell.layer_norm
            or (training and cell.recurrent_dropout > 0)
        ):
            return None
        from recurrent_zoo.layers.tf_simple_rnn_kernel import simple_rnn_recurrence

        inputs, mask = self.fused_inputs(sequences, mask, training)
        hs, h_last = simple_rnn_recurrence(
            inputs,
            initial_state[0],
            activation=activation,
            **self.kernel_weights(),
            **self.kernel_options(mask, training),
        )
        return self.kernel_result(hs, h_last, mask, [h_last])


_ACTIVATION_NAMES = {
    keras.activations.tanh: "tanh",
    keras.activations.relu: "relu",
    keras.activations.linear: "linear",
    None: "linear",
}
