"""Cell of the simple (Elman) RNN, optionally layer-normalized."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.rnn_base import RecurrentCell, layer_normalize


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class SimpleRNNCell(RecurrentCell):
    """Cell of the simple (Elman) RNN, for `keras.layers.RNN` or `SimpleRNN`.

        a_t = W x_t + U h_{t-1} + b
        h_t = act(a_t)                             (layer_norm=False)
        h_t = act(gamma * LN(a_t) + beta)          (layer_norm=True)

    with LN(v) = (v - mean(v)) / sqrt(var(v) + norm_epsilon) over the units.
    Without layer normalization the cell is exactly
    `keras.layers.SimpleRNNCell` (same weights, same order: kernel,
    recurrent_kernel, bias).

    Args:
        units: positive int, size of h.
        activation: default "tanh"; None means linear.
        use_bias: whether to add b.
        kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: as in
            `keras.layers.SimpleRNNCell`.
        dropout: fraction of input units dropped, one mask per sequence.
        recurrent_dropout: fraction of h_{t-1} dropped, one mask per sequence.
        layer_norm: normalize the pre-activation a_t (Ba et al. 2016, eq. 4).
        norm_epsilon, gamma_initializer, beta_initializer: for that
            normalization.
        seed: seed of the dropout masks.

    Call arguments:
        inputs: (batch, features) input at one step.
        states: [h_{t-1}] of shape (batch, units).
        training: whether dropout is active.

    Example:

    >>> rnn = keras.layers.RNN(SimpleRNNCell(4))
    >>> tuple(rnn(np.ones((2, 3, 5), "float32")).shape)
    (2, 4)

    Reference: J. L. Elman, "Finding structure in time", Cognitive Science 14
    (1990); layer normalization: Ba, Kiros & Hinton, arXiv:1607.06450 (2016).
    """

    # Its normalization's weights, by name.
    norm_weights = ["gamma", "beta"]

    def __init__(
        self,
        units: int,
        activation="tanh",
        layer_norm: bool = False,
        **kwargs,
    ):
        super().__init__(units, layer_norm=layer_norm, **kwargs)
        self.activation = keras.activations.get(activation)
        self.state_size = self.units

    def build(self, input_shape):
        self.add_recurrent_weights(input_shape[-1], 1)
        if self.layer_norm:
            self.gamma = self.add_weight(
                shape=(self.units,), name="gamma", initializer=self.gamma_initializer
            )
            self.beta = self.add_weight(
                shape=(self.units,), name="beta", initializer=self.beta_initializer
            )

    def project_inputs(self, inputs, training=None):
        """W x + b for inputs of any rank (features last)."""
        z = ops.matmul(self.dropped_inputs(inputs, training), self.kernel)
        if self.use_bias:
            z = z + self.bias
        return z

    def call(self, inputs, states, training=None):
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        z = inputs if self.inputs_projected else self.project_inputs(inputs, training)
        if training and self.recurrent_dropout > 0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        z = z + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.layer_norm:
            z = self.gamma * layer_normalize(z, self.norm_epsilon) + self.beta
        h = self.activation(z) if self.activation is not None else z
        new_state = [h] if isinstance(states, (list, tuple)) else h
        return h, new_state

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {"activation": keras.activations.serialize(self.activation)}
        return {**super().get_config(), **config}
