"""Fully-connected recurrent layer (Elman network), optionally layer-normalized."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.layer_norm_lstm import layer_normalize
from recurrent_zoo.layers.rnn_base import (
    DropoutMasks,
    ProjectedRNN,
    batch_major_outputs,
    check_positive_int,
    check_unit_interval,
    time_major_inputs,
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


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class SimpleRNN(ProjectedRNN):
    """Fully-connected RNN layer: `SimpleRNNCell` run over a sequence.

    h_t = act(W x_t + U h_{t-1} + b), optionally with the pre-activation
    layer-normalized (see `SimpleRNNCell`). The input projection W x_t + b is
    computed for all time steps in one matmul before the loop, which leaves
    one matmul and the activation per step. On the TensorFlow backend,
    without layer normalization, with a tanh, relu or linear activation and
    no active recurrent dropout, the loop is a dedicated kernel with a
    hand-written back-propagation through time
    (`recurrent_zoo.layers.tf_simple_rnn_kernel`); otherwise the cell runs in
    Keras's generic loop. Both compute the same values. With `layer_norm=False` the
    layer is a drop-in for `keras.layers.SimpleRNN`: same arguments, same
    weights, same outputs.

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

    Call arguments:
        sequences: (batch, timesteps, features) floats.
        initial_state: optional [h_0].
        mask: optional (batch, timesteps) bool; False steps are skipped (h
            carries over), so right padding never reaches the final state.
        training: whether dropout is active.

    Example:

    >>> layer = SimpleRNN(4, return_sequences=True)
    >>> layer(np.ones((2, 3, 5), "float32")).shape
    (2, 3, 4)

    Reference: J. L. Elman, "Finding structure in time", Cognitive Science 14
    (1990).
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
        **kwargs,
    ):
        cell = SimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            layer_norm=layer_norm,
            norm_epsilon=norm_epsilon,
            gamma_initializer=gamma_initializer,
            beta_initializer=beta_initializer,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="simple_rnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

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

        if training and cell.dropout > 0:
            sequences = sequences * ops.expand_dims(
                cell.get_dropout_mask(sequences[:, 0, :]), 1
            )
        sequences, mask = time_major_inputs(sequences, mask, self.go_backwards)
        bias = None if cell.bias is None else ops.convert_to_tensor(cell.bias)
        hs, h_last = simple_rnn_recurrence(
            ops.matmul(sequences, cell.kernel),
            initial_state[0],
            ops.convert_to_tensor(cell.recurrent_kernel),
            bias=bias,
            activation=activation,
            mask=mask,
        )
        last_output, outputs = batch_major_outputs(hs, mask, self.zero_output_for_mask)
        return last_output, outputs, [h_last]


_ACTIVATION_NAMES = {
    keras.activations.tanh: "tanh",
    keras.activations.relu: "relu",
    keras.activations.linear: "linear",
    None: "linear",
}
