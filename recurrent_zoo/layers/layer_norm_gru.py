"""Layer-normalized GRU layer (Cho et al. 2014; Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

import keras

from recurrent_zoo.layers.layer_norm_gru_cell import LayerNormGRUCell
from recurrent_zoo.layers.rnn_base import ProjectedRNN, split_arguments


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class LayerNormGRU(ProjectedRNN):
    """Layer-normalized GRU layer: `LayerNormGRUCell` run over a sequence.

    See the cell for the equations and for which tensors are normalized. On
    the TensorFlow backend the loop is a dedicated kernel with a
    hand-written back-propagation through time
    (`recurrent_zoo.layers.tf_gru_kernel`), used whenever the activations are
    the defaults (tanh, sigmoid), `unroll=False` and no recurrent dropout is
    active; it keeps its state in float32 under a mixed-precision policy,
    its matmuls taking bfloat16 operands under "mixed_bfloat16".
    Otherwise, and on other backends, the cell runs inside Keras's generic
    loop, with its input projection computed for all steps in one matmul
    before the loop. Both paths compute the same values and run under XLA.
    With `layer_norm=False` the layer is a drop-in for `keras.layers.GRU`:
    same arguments, same weights, same outputs.

    Args:
        units: positive int, dimensionality of the output.
        activation, recurrent_activation, use_bias, kernel_initializer,
        recurrent_initializer, bias_initializer, kernel_regularizer,
        recurrent_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint, dropout,
        recurrent_dropout, seed, reset_after: as in `keras.layers.GRU`.
        layer_norm: False makes this exactly `keras.layers.GRU`.
        norm_epsilon, gamma_initializer: see the cell.
        return_sequences, return_state, go_backwards, stateful, unroll,
        zero_output_for_mask: as in `keras.layers.RNN`.
        use_xla: as in `LayerNormLSTM`.

    Call arguments:
        sequences: (batch, timesteps, features) floats.
        initial_state: optional [h_0].
        mask: optional (batch, timesteps) bool; False steps are skipped (h
            carries over), so right padding never reaches the final state.
        training: whether dropout is active.

    Example:

    >>> model = keras.Sequential([
    ...     keras.layers.Embedding(1000, 32, mask_zero=True),
    ...     LayerNormGRU(64),
    ...     keras.layers.Dense(1, activation="sigmoid"),
    ... ])

    References: K. Cho et al., EMNLP 2014; J. L. Ba, J. R. Kiros,
    G. E. Hinton, "Layer Normalization", arXiv:1607.06450 (2016).
    """

    cell_class = LayerNormGRUCell

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
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
        reset_after: bool = True,
        layer_norm: bool = True,
        norm_epsilon: float = 1e-3,
        gamma_initializer="ones",
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        use_xla: bool | str = True,
        **kwargs,
    ):
        super().__init__(*split_arguments(locals()), **kwargs)

    @property
    def reset_after(self) -> bool:
        return self.cell.reset_after

    def fused_loop(self, sequences, initial_state, mask, training):
        if not self.gated_kernel_applies(training):
            return None
        from recurrent_zoo.layers.tf_gru_kernel import gru_recurrence

        inputs, mask = self.fused_inputs(sequences, mask, training)
        hs, h_last = gru_recurrence(
            inputs,
            initial_state[0],
            epsilon=self.cell.norm_epsilon,
            reset_after=self.cell.reset_after,
            **self.kernel_weights(),
            **self.kernel_options(mask, training),
        )
        return self.kernel_result(hs, h_last, mask, [h_last])
