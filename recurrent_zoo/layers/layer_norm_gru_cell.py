"""Cell of the layer-normalized GRU (Cho et al. 2014; Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.rnn_base import RecurrentCell, layer_normalize


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class LayerNormGRUCell(RecurrentCell):
    """Cell of the layer-normalized GRU, for `keras.layers.RNN` or `LayerNormGRU`.

    With LN(v) = (v - mean(v)) / sqrt(var(v) + norm_epsilon) over the feature
    axis and the gates stacked in Keras's order (z update, r reset, h
    candidate), `reset_after=True` (Keras's default, and cuDNN's):

        a_t = gamma_x * LN(W x_t) + b_x                    (3H values)
        s_t = gamma_h * LN(U h_{t-1}) + b_h                (3H values)
        z_t = sigmoid(a_z + s_z),  r_t = sigmoid(a_r + s_r)
        h~_t = tanh(a_h + r_t * s_h)
        h_t = z_t * h_{t-1} + (1 - z_t) * h~_t

    and `reset_after=False` (the reset gate applied before the matmul, as in
    Cho et al.), with one bias b:

        a_t = gamma_x * LN(W x_t) + b
        s_t = gamma_h[:2H] * LN(U_zr h_{t-1})              (2H values)
        z_t, r_t as above
        h~_t = tanh(a_h + gamma_h[2H:] * LN(U_h (r_t * h_{t-1})))

    What is normalized and why: the stacked input projection (one
    normalization over all three gates, as the LSTM's) and the stacked
    recurrent projection. These are the two sums whose scale drifts with the
    weights and the inputs; normalizing them keeps the gates' pre-activations
    of order 1 at every step, which is what lets layer normalization speed
    up training (Ba et al., section 3.1). With `reset_after=False` the
    candidate's recurrent product U_h (r * h) depends on r, so it cannot sit
    in the same normalization as U_zr h and has its own. The state h_t is
    not normalized: it is already a convex mix of h_{t-1} and a tanh, so
    bounded in [-1, 1]. The normalizations have gains but no shifts: a
    shift would only duplicate a bias. With `reset_after=True` the
    recurrent bias b_h stays outside the normalization and inside r * (.),
    as in Keras and cuDNN (and haste's `LayerNormGRU`).

    With `layer_norm=False` every normalization and gain is dropped and the
    cell is exactly `keras.layers.GRUCell` (same weights in the same order:
    kernel, recurrent_kernel, and bias of shape (2, 3H) with
    `reset_after=True`, (3H,) otherwise).

    Args:
        units: positive int, size of h.
        activation: for the candidate h~; default "tanh".
        recurrent_activation: for the gates z and r; default "sigmoid".
        use_bias: whether to add the biases.
        kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: as in
            `keras.layers.GRUCell`.
        dropout: fraction of input units dropped, one mask per sequence.
        recurrent_dropout: fraction of h_{t-1} dropped (in the recurrent
            products only), one mask per sequence.
        reset_after: apply the reset gate after the recurrent matmul.
        layer_norm: False turns the cell into a plain GRU.
        norm_epsilon: added to the variance in each LN.
        gamma_initializer: for the gains gamma_x and gamma_h.
        seed: seed of the dropout masks.

    Call arguments:
        inputs: (batch, features) input at one step.
        states: [h_{t-1}] of shape (batch, units).
        training: whether dropout is active.

    Example:

    >>> layer = keras.layers.RNN(LayerNormGRUCell(8))
    >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
    (2, 8)

    References: K. Cho et al., "Learning Phrase Representations using RNN
    Encoder-Decoder for Statistical Machine Translation", EMNLP 2014;
    J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization",
    arXiv:1607.06450 (2016).
    """

    # Its normalization's weights, by name (what its TF kernel takes).
    norm_weights = ["input_gamma", "recurrent_gamma"]

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        reset_after: bool = True,
        layer_norm: bool = True,
        **kwargs,
    ):
        # A GRU has no shift to initialize (see the docstring).
        kwargs.pop("beta_initializer", None)
        super().__init__(units, layer_norm=layer_norm, **kwargs)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)
        self.state_size = self.units

    def build(self, input_shape):
        # With reset_after, Keras's layout: [input bias; recurrent bias].
        bias_shape = (2, 3 * self.units) if self.reset_after else None
        self.add_recurrent_weights(input_shape[-1], 3, bias_shape=bias_shape)
        if self.layer_norm:
            gain = {"initializer": self.gamma_initializer}
            width = 3 * self.units
            self.input_gamma = self.add_weight(
                shape=(width,), name="input_gamma", **gain
            )
            self.recurrent_gamma = self.add_weight(
                shape=(width,), name="recurrent_gamma", **gain
            )

    def _biases(self):
        """(input bias, recurrent bias or None), or (None, None)."""
        if not self.use_bias:
            return None, None
        if self.reset_after:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def project_inputs(self, inputs, training=None):
        """gamma_x * LN(W x) + b_x: everything in a_t, which depends on x_t only."""
        a = ops.matmul(self.dropped_inputs(inputs, training), self.kernel)
        if self.layer_norm:
            a = self.input_gamma * layer_normalize(a, self.norm_epsilon)
        input_bias, _ = self._biases()
        return a if input_bias is None else a + input_bias

    def _normalized(self, product, gamma):
        if not self.layer_norm:
            return product
        return gamma * layer_normalize(product, self.norm_epsilon)

    def call(self, inputs, states, training=None):
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        a = inputs if self.inputs_projected else self.project_inputs(inputs, training)
        h_in = h_tm1
        if training and self.recurrent_dropout > 0:
            h_in = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        units = self.units
        gamma = self.recurrent_gamma if self.layer_norm else None
        a_z, a_r, a_h = ops.split(a, 3, axis=-1)
        if self.reset_after:
            s = self._normalized(ops.matmul(h_in, self.recurrent_kernel), gamma)
            _, recurrent_bias = self._biases()
            if recurrent_bias is not None:
                s = s + recurrent_bias
            s_z, s_r, s_h = ops.split(s, 3, axis=-1)
        else:
            s = ops.matmul(h_in, self.recurrent_kernel[:, : 2 * units])
            s_z, s_r = ops.split(
                self._normalized(s, None if gamma is None else gamma[: 2 * units]),
                2,
                axis=-1,
            )
        z = self.recurrent_activation(a_z + s_z)
        r = self.recurrent_activation(a_r + s_r)
        if self.reset_after:
            candidate = a_h + r * s_h
        else:
            q = ops.matmul(r * h_in, self.recurrent_kernel[:, 2 * units :])
            gain = None if gamma is None else gamma[2 * units :]
            candidate = a_h + self._normalized(q, gain)
        h = z * h_tm1 + (1 - z) * self.activation(candidate)
        new_state = [h] if isinstance(states, (list, tuple)) else h
        return h, new_state

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(
                self.recurrent_activation
            ),
            "reset_after": self.reset_after,
        }
        config = {**super().get_config(), **config}
        del config["beta_initializer"]
        return config
