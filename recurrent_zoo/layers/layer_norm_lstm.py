"""Layer-normalized LSTM layer (Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

import keras

from recurrent_zoo.layers.layer_norm_lstm_cell import LayerNormLSTMCell
from recurrent_zoo.layers.rnn_base import ProjectedRNN, split_arguments


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class LayerNormLSTM(ProjectedRNN):
    """Layer-normalized LSTM layer (Ba, Kiros & Hinton, 2016).

    Runs `LayerNormLSTMCell` over a sequence; see the cell for the equations
    and for which tensors are normalized. On the TensorFlow backend the loop
    is a dedicated kernel with a hand-written back-propagation through time
    (`recurrent_zoo.layers.tf_lstm_kernel`, whose docstring explains how it
    keeps training memory near `keras.layers.LSTM`'s); it is used whenever
    the activations are the defaults (tanh, sigmoid), `unroll=False` and no
    recurrent dropout is active. On the JAX backend, under the same
    conditions and with `layer_norm=True`, the loop is a `jax.lax.scan`
    kernel with a `jax.custom_vjp` backward pass
    (`recurrent_zoo.layers.jax_lstm_kernel`). Otherwise, and on PyTorch, the
    cell runs inside Keras's generic loop, with its input projection
    gamma_x * LN(W x_t) + b computed for all steps in one matmul before the
    loop; both paths compute the same values, and both run under XLA
    (`jit_compile=True`).

    Mixed precision (`keras.mixed_precision.set_dtype_policy`): the kernel
    keeps the carried state, the normalization statistics and the gradients
    in float32 and returns the compute dtype; under "mixed_bfloat16" its
    matmuls take bfloat16 operands (AMX on a CPU, tensor cores on a GPU);
    the generic loop carries the state in the compute dtype, as Keras's own
    LSTM does, with normalization statistics in float32.

    Args:
        units: positive int, dimensionality of the output.
        activation, recurrent_activation, use_bias, kernel_initializer,
        recurrent_initializer, bias_initializer, unit_forget_bias,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint, dropout, recurrent_dropout, seed: as in
            `keras.layers.LSTM`.
        layer_norm: False makes this exactly `keras.layers.LSTM`.
        norm_epsilon, gamma_initializer, beta_initializer: see the cell.
        return_sequences: return the whole output sequence, not just the last.
        return_state: also return the final [h, c].
        go_backwards: process the sequence in reverse (outputs are then in
            processing order, as in Keras).
        stateful: carry the final states of batch i into batch i.
        unroll: unroll the loop (short sequences only).
        zero_output_for_mask: output zeros (instead of the carried h) at
            masked steps when returning sequences.
        use_xla: on TensorFlow, where the time length is fixed, run the
            kernel's loops compiled by XLA (faster on a CPU): both loops of
            a training call, and the inference loop inside Keras's own
            predict, evaluate and fit steps (`recurrent_zoo.layers.
            tf_kernel_parts.loop_compiler`, `inference_compiler`). Exports
            never use it. "inference" compiles the inference loop only;
            False keeps plain ops.

    Call arguments:
        sequences: (batch, timesteps, features) floats.
        initial_state: optional [h_0, c_0].
        mask: optional (batch, timesteps) bool; False steps are skipped: h
            and c carry over unchanged, so right padding never reaches the
            final state.
        training: whether dropout is active.

    Example:

    >>> model = keras.Sequential([
    ...     keras.layers.Embedding(1000, 32, mask_zero=True),
    ...     LayerNormLSTM(64),
    ...     keras.layers.Dense(1, activation="sigmoid"),
    ... ])

    Reference: J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization",
    arXiv:1607.06450 (2016).
    """

    cell_class = LayerNormLSTMCell

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = True,
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
        use_xla: bool | str = True,
        **kwargs,
    ):
        super().__init__(*split_arguments(locals()), **kwargs)

    def fused_loop(self, sequences, initial_state, mask, training):
        if keras.backend.backend() == "jax":
            from recurrent_zoo.layers.jax_lstm_kernel import fused_loop

            return fused_loop(self, sequences, initial_state, mask, training)
        if not self.gated_kernel_applies(training):
            return None
        from recurrent_zoo.layers.tf_lstm_kernel import lstm_recurrence

        inputs, mask = self.fused_inputs(sequences, mask, training)
        hs, h_last, c_last = lstm_recurrence(
            inputs,
            initial_state[0],
            initial_state[1],
            epsilon=self.cell.norm_epsilon,
            **self.kernel_weights(),
            **self.kernel_options(mask, training),
        )
        return self.kernel_result(hs, h_last, mask, [h_last, c_last])
