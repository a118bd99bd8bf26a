"""Cell of the simple (Elman) RNN, optionally layer-normalized."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.layer_norm_lstm_cell import layer_normalize
from recurrent_zoo.layers.rnn_base import (
    DropoutMasks,
    check_positive_int,
    check_unit_interval,
)


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class SimpleRNNCell(keras.layers.Layer, DropoutMasks):
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
    >>> rnn(np.ones((2, 3, 5), "float32")).shape
    (2, 4)

    Reference: J. L. Elman, "Finding structure in time", Cognitive Science 14
    (1990); layer normalization: Ba, Kiros & Hinton, arXiv:1607.06450 (2016).
    """

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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = check_unit_interval("dropout", dropout)
        self.recurrent_dropout = check_unit_interval(
            "recurrent_dropout", recurrent_dropout
        )
        self.layer_norm = bool(layer_norm)
        if not float(norm_epsilon) > 0:
            raise ValueError(
                f"`norm_epsilon` must be > 0, received norm_epsilon={norm_epsilon!r}"
            )
        self.norm_epsilon = float(norm_epsilon)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = self.units
        self.output_size = self.units
        # True while the owning layer feeds `project_inputs` results per step.
        self.inputs_projected = False

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        if self.layer_norm:
            self.gamma = self.add_weight(
                shape=(self.units,), name="gamma", initializer=self.gamma_initializer
            )
            self.beta = self.add_weight(
                shape=(self.units,), name="beta", initializer=self.beta_initializer
            )

    def project_inputs(self, inputs, training=None):
        """W x + b for inputs of any rank (features last)."""
        if training and self.dropout > 0:
            sequence = len(inputs.shape) == 3
            dp_mask = self.get_dropout_mask(inputs[:, 0, :] if sequence else inputs)
            inputs = inputs * (ops.expand_dims(dp_mask, 1) if sequence else dp_mask)
        z = ops.matmul(inputs, self.kernel)
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
        ser = keras.saving.serialize_keras_object
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": ser(self.kernel_initializer),
            "recurrent_initializer": ser(self.recurrent_initializer),
            "bias_initializer": ser(self.bias_initializer),
            "kernel_regularizer": ser(self.kernel_regularizer),
            "recurrent_regularizer": ser(self.recurrent_regularizer),
            "bias_regularizer": ser(self.bias_regularizer),
            "kernel_constraint": ser(self.kernel_constraint),
            "recurrent_constraint": ser(self.recurrent_constraint),
            "bias_constraint": ser(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "layer_norm": self.layer_norm,
            "norm_epsilon": self.norm_epsilon,
            "gamma_initializer": ser(self.gamma_initializer),
            "beta_initializer": ser(self.beta_initializer),
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
