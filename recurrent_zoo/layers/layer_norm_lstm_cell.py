"""Cell of the layer-normalized LSTM (Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.rnn_base import RecurrentCell, layer_normalize


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class LayerNormLSTMCell(RecurrentCell):
    """Cell of the layer-normalized LSTM, for `keras.layers.RNN` or `LayerNormLSTM`.

    With LN(v) = (v - mean(v)) / sqrt(var(v) + norm_epsilon) over the feature
    axis and the gates stacked in Keras's order (i, f, g, o):

        z_t = gamma_x * LN(W x_t) + gamma_h * LN(U h_{t-1}) + b
        i_t, f_t, o_t = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o)
        g_t = tanh(z_g)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(gamma_c * LN(c_t) + beta_c)

    Three tensors are normalized: the stacked input projection W x_t (4H
    values, one normalization over all gates, as in Ba et al. eq. 20-22), the
    stacked recurrent projection U h_{t-1}, and the new cell state c_t.
    The *raw* c_t is carried to the next step; LN(c_t) only feeds h_t. This is
    the paper's formulation and haste's; TensorFlow Addons'
    `LayerNormLSTMCell` carried LN(c_t) instead, which re-centres the memory
    every step and so defeats the additive path that lets an LSTM keep
    information over long spans. The input and recurrent normalizations have
    a gain but no shift of their own: a shift there would only duplicate b.

    With `layer_norm=False` all normalizations and gains are dropped and the
    cell is exactly `keras.layers.LSTMCell` (same weights, same order).

    Args:
        units: positive int, size of h and c.
        activation: for the candidate g and the output; default "tanh".
        recurrent_activation: for the gates i, f, o; default "sigmoid".
        use_bias: whether to add b.
        kernel_initializer, recurrent_initializer, bias_initializer: for W,
            U and b.
        unit_forget_bias: add 1 to the forget gate's bias at initialization
            (Jozefowicz et al. 2015).
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: as in
            `keras.layers.LSTMCell`.
        dropout: fraction of input units dropped, one mask per sequence.
        recurrent_dropout: fraction of h_{t-1} dropped, one mask per sequence.
        layer_norm: False turns the cell into a plain LSTM.
        norm_epsilon: added to the variance in each LN.
        gamma_initializer, beta_initializer: for the gains (gamma_x, gamma_h,
            gamma_c) and the shift beta_c.
        seed: seed of the dropout masks.

    Call arguments:
        inputs: (batch, features) input at one step.
        states: [h_{t-1}, c_{t-1}], each (batch, units).
        training: whether dropout is active.

    Example:

    >>> layer = keras.layers.RNN(LayerNormLSTMCell(8))
    >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
    (2, 8)

    Reference: J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization",
    arXiv:1607.06450 (2016), section 3.1 and appendix.
    """

    # Its normalization's weights, by name (what its TF kernel takes).
    norm_weights = ["input_gamma", "recurrent_gamma", "cell_gamma", "cell_beta"]

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        unit_forget_bias: bool = True,
        layer_norm: bool = True,
        **kwargs,
    ):
        super().__init__(units, layer_norm=layer_norm, **kwargs)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def build(self, input_shape):
        units = self.units
        bias_initializer = None
        if self.unit_forget_bias:

            def bias_initializer(_, *args, **kwargs):
                return ops.concatenate(
                    [
                        self.bias_initializer((units,), *args, **kwargs),
                        keras.initializers.get("ones")((units,), *args, **kwargs),
                        self.bias_initializer((units * 2,), *args, **kwargs),
                    ]
                )

        self.add_recurrent_weights(input_shape[-1], 4, bias_initializer)
        if self.layer_norm:
            gain = {"initializer": self.gamma_initializer}
            self.input_gamma = self.add_weight(
                shape=(4 * units,), name="input_gamma", **gain
            )
            self.recurrent_gamma = self.add_weight(
                shape=(4 * units,), name="recurrent_gamma", **gain
            )
            self.cell_gamma = self.add_weight(shape=(units,), name="cell_gamma", **gain)
            self.cell_beta = self.add_weight(
                shape=(units,), name="cell_beta", initializer=self.beta_initializer
            )

    def project_inputs(self, inputs, training=None):
        """gamma_x * LN(W x) + b: everything in z_t that depends on x_t only."""
        z = ops.matmul(self.dropped_inputs(inputs, training), self.kernel)
        if self.layer_norm:
            z = self.input_gamma * layer_normalize(z, self.norm_epsilon)
        if self.use_bias:
            z = z + self.bias
        return z

    def call(self, inputs, states, training=None):
        h_tm1, c_tm1 = states[0], states[1]
        z_x = inputs if self.inputs_projected else self.project_inputs(inputs, training)
        if training and self.recurrent_dropout > 0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        z_h = ops.matmul(h_tm1, self.recurrent_kernel)
        if self.layer_norm:
            z_h = self.recurrent_gamma * layer_normalize(z_h, self.norm_epsilon)
        z_i, z_f, z_g, z_o = ops.split(z_x + z_h, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        o = self.recurrent_activation(z_o)
        c = f * c_tm1 + i * self.activation(z_g)
        c_out = c
        if self.layer_norm:
            c_out = (
                self.cell_gamma * layer_normalize(c, self.norm_epsilon) + self.cell_beta
            )
        h = o * self.activation(c_out)
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
            for _ in range(2)
        ]

    def get_config(self):
        config = {
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(
                self.recurrent_activation
            ),
            "unit_forget_bias": self.unit_forget_bias,
        }
        return {**super().get_config(), **config}
