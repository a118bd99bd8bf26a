"""Layer-normalized LSTM (Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

import keras
from keras import ops

from recurrent_zoo.layers.rnn_base import (
    DropoutMasks,
    ProjectedRNN,
    batch_major_outputs,
    check_positive_int,
    check_unit_interval,
    time_major_inputs,
)


def layer_normalize(x, epsilon: float):
    """(x - mean(x)) / sqrt(var(x) + epsilon) over the last axis."""
    mean = ops.mean(x, axis=-1, keepdims=True)
    centered = x - mean
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    return centered * ops.rsqrt(variance + epsilon)


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class LayerNormLSTMCell(keras.layers.Layer, DropoutMasks):
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
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 8)

    Reference: J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization",
    arXiv:1607.06450 (2016), section 3.1 and appendix.
    """

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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
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
        self.state_size = [self.units, self.units]
        self.output_size = self.units
        # True while the owning layer feeds `project_inputs` results per step.
        self.inputs_projected = False

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(units, 4 * units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            if self.unit_forget_bias:

                def bias_initializer(_, *args, **kwargs):
                    return ops.concatenate(
                        [
                            self.bias_initializer((units,), *args, **kwargs),
                            keras.initializers.get("ones")((units,), *args, **kwargs),
                            self.bias_initializer((units * 2,), *args, **kwargs),
                        ]
                    )

            else:
                bias_initializer = self.bias_initializer
            self.bias = self.add_weight(
                shape=(4 * units,),
                name="bias",
                initializer=bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
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
        if training and self.dropout > 0:
            sequence = len(inputs.shape) == 3
            dp_mask = self.get_dropout_mask(inputs[:, 0, :] if sequence else inputs)
            inputs = inputs * (ops.expand_dims(dp_mask, 1) if sequence else dp_mask)
        z = ops.matmul(inputs, self.kernel)
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
        ser = keras.saving.serialize_keras_object
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(
                self.recurrent_activation
            ),
            "use_bias": self.use_bias,
            "kernel_initializer": ser(self.kernel_initializer),
            "recurrent_initializer": ser(self.recurrent_initializer),
            "bias_initializer": ser(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
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
class LayerNormLSTM(ProjectedRNN):
    """Layer-normalized LSTM layer (Ba, Kiros & Hinton, 2016).

    Runs `LayerNormLSTMCell` over a sequence; see the cell for the equations
    and for which tensors are normalized. The input projection
    gamma_x * LN(W x_t) + b does not depend on the recurrence, so it is
    computed for all time steps in one matmul before the loop. On the
    TensorFlow backend the loop itself is a dedicated kernel with a
    hand-written back-propagation through time
    (`recurrent_zoo.layers.tf_lstm_kernel`); it is used whenever the
    activations are the defaults (tanh, sigmoid), `unroll=False` and no
    recurrent dropout is active. Otherwise, and on other backends, the
    cell runs inside Keras's generic loop; both paths compute the same values.

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
        **kwargs,
    ):
        cell = LayerNormLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
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
            name="layer_norm_lstm_cell",
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
        if (
            keras.backend.backend() != "tensorflow"
            or cell.activation is not keras.activations.tanh
            or cell.recurrent_activation is not keras.activations.sigmoid
            or (training and cell.recurrent_dropout > 0)
        ):
            return None
        from recurrent_zoo.layers.tf_lstm_kernel import lstm_recurrence

        if training and cell.dropout > 0:
            sequences = sequences * ops.expand_dims(
                cell.get_dropout_mask(sequences[:, 0, :]), 1
            )
        # Transpose the narrow input rather than the 4x wider projection.
        sequences, mask = time_major_inputs(sequences, mask, self.go_backwards)
        weights = {"bias": cell.bias}
        if cell.layer_norm:
            weights.update(
                input_gamma=cell.input_gamma,
                recurrent_gamma=cell.recurrent_gamma,
                cell_gamma=cell.cell_gamma,
                cell_beta=cell.cell_beta,
            )
        hs, h_last, c_last = lstm_recurrence(
            ops.matmul(sequences, cell.kernel),
            initial_state[0],
            initial_state[1],
            cell.recurrent_kernel,
            mask=mask,
            epsilon=cell.norm_epsilon,
            **{
                k: None if v is None else ops.convert_to_tensor(v)
                for k, v in weights.items()
            },
        )
        last_output, outputs = batch_major_outputs(hs, mask, self.zero_output_for_mask)
        return last_output, outputs, [h_last, c_last]
