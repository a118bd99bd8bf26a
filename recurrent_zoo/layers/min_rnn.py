"""What minGRU and minLSTM share (Feng et al. 2024): gates of x_t alone.

A min-RNN cell projects x_t once, W x_t + b, and turns that into the two
coefficients of a linear recurrence, h_t = a_t * h_{t-1} + b_t; `MinGRUCell`
and `MinLSTMCell` differ only in how (`coefficients`). `MinRNNCell` is that
cell, one step at a time (for `keras.layers.RNN` and streaming inference);
`MinRNN` the layer, which computes the coefficients of every step in one
matmul and all states with one parallel scan (`parallel_scan.py`).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from recurrent_zoo.layers.checks import (
    check_bool,
    check_float_dtype,
    check_positive_int,
    check_rate,
    check_sequence_input,
)
from recurrent_zoo.layers.parallel_scan import linear_recurrence
from recurrent_zoo.layers.rnn_base import snake_case

__all__ = ["MinRNN", "MinRNNCell", "candidate_g"]


def candidate_g(x):
    """Feng et al.'s g(x) = x + 0.5 for x >= 0, sigmoid(x) below: positive,
    continuous at 0, linear (unbounded) above it."""
    return ops.where(x >= 0, x + 0.5, ops.sigmoid(x))


def _candidate_activation(identifier: Any):
    if identifier == "g":
        return candidate_g
    try:
        return keras.activations.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "`candidate_activation` must be 'g' or a Keras activation. "
            f"Received: candidate_activation={identifier!r}"
        ) from error


class MinRNNCell(keras.layers.Layer):
    """One step of a min-RNN; subclasses set `gates` and `coefficients`.

    Weights: `kernel` (features, gates * units) and `bias` (gates * units,),
    the gates stacked in the subclass's order. The arguments are documented
    on `MinGRUCell`.
    """

    gates: int

    def __init__(
        self,
        units: int,
        candidate_activation="g",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.candidate_activation = _candidate_activation(candidate_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(width,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def coefficients(self, projected):
        """(a, b) of h_t = a * h_{t-1} + b from W x_t + b (float32)."""
        raise NotImplementedError

    def recurrence_inputs(self, inputs):
        """(a, b) of one step (batch, features) or of every step (batch,
        time, features), in float32 whatever the dtype policy: the gates of a
        long sequence compound, and float16 rounds a forget gate of 0.9995
        to 1. The projection itself runs in the compute dtype, also when
        called outside the layer's call (`MinRNN.step`), where Keras does not
        cast the weights."""
        return self.coefficients(ops.cast(self.project(inputs), "float32"))

    def project(self, inputs, add_bias: bool = True):
        """W x (+ b) in the compute dtype, for one step or every step."""
        dtype = self.compute_dtype
        projected = ops.matmul(ops.cast(inputs, dtype), ops.cast(self.kernel, dtype))
        if self.use_bias and add_bias:
            projected = projected + ops.cast(self.bias, dtype)
        return projected

    def call(self, inputs, states):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        a, b = self.recurrence_inputs(inputs)
        h = ops.cast(a * ops.cast(h_prev, "float32") + b, self.compute_dtype)
        return h, [h]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        activation = self.candidate_activation
        config = {
            "units": self.units,
            "candidate_activation": "g"
            if activation is candidate_g
            else keras.activations.serialize(activation),
            "use_bias": self.use_bias,
            "kernel_initializer": ser(self.kernel_initializer),
            "bias_initializer": ser(self.bias_initializer),
            "kernel_regularizer": ser(self.kernel_regularizer),
            "bias_regularizer": ser(self.bias_regularizer),
            "kernel_constraint": ser(self.kernel_constraint),
            "bias_constraint": ser(self.bias_constraint),
        }
        return {**super().get_config(), **config}


# The layer's own arguments, neither its cell's nor keras.layers.RNN's.
_LAYER_ARGUMENTS = ("dropout", "recurrent_dropout", "seed", "use_xla")
_RNN_ARGUMENTS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "zero_output_for_mask",
    "activity_regularizer",
)


class MinRNN(keras.layers.RNN):
    """A min-RNN layer: every step's gates in one matmul, the states in one
    parallel scan. Subclasses name their `cell_class` and pass their
    constructor's `locals()`; the arguments are documented on `MinGRU`."""

    cell_class: type[MinRNNCell]

    def __init__(self, arguments: dict[str, Any], **kwargs):
        arguments = {
            k: v for k, v in arguments.items() if k not in ("self", "__class__")
        }
        kwargs.update(arguments.pop("kwargs", {}))
        if kwargs.pop("unroll", False):
            raise ValueError(
                f"{type(self).__name__} has no loop to unroll: it runs a "
                "parallel scan. Received: unroll=True"
            )
        own = {k: arguments.pop(k) for k in _LAYER_ARGUMENTS}
        rnn = {k: arguments.pop(k) for k in _RNN_ARGUMENTS}
        cell = self.cell_class(
            **arguments,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=snake_case(self.cell_class.__name__),
        )
        super().__init__(cell, **rnn, **kwargs)
        self.dropout = check_rate("dropout", own["dropout"])
        if own["recurrent_dropout"] != 0:
            raise ValueError(
                f"{type(self).__name__} has no recurrent weights to drop out "
                "(its gates read x_t only); `recurrent_dropout` must be 0. "
                f"Received: recurrent_dropout={own['recurrent_dropout']!r}"
            )
        self.recurrent_dropout = 0.0
        self.seed = own["seed"]
        self.use_xla = check_bool("use_xla", own["use_xla"])
        self.seed_generator = keras.random.SeedGenerator(seed=self.seed)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self) -> int:
        return self.cell.units

    def call(self, sequences, initial_state=None, mask=None, training=False):
        check_sequence_input(type(self).__name__, sequences)
        return super().call(
            sequences, initial_state=initial_state, mask=mask, training=training
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if training and self.dropout > 0:
            # One mask per sequence, as Keras's recurrent layers drop inputs.
            keep = keras.random.dropout(
                ops.ones_like(sequences[:, 0]), self.dropout, seed=self.seed_generator
            )
            sequences = sequences * ops.expand_dims(keep, 1)
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, "bool"), -1)
        h0 = ops.cast(initial_state[0], "float32")
        result = self.fused_states(sequences, mask, h0, training)
        if result is None:
            result = self.scan_states(self.cell.project(sequences), mask, h0)
        hs, state = result
        last_output, outputs = self._keras_outputs(hs, state, mask)
        return last_output, outputs, [state]

    def scan_states(self, projected, mask, h0):
        """(every state, the last) by the `keras.ops` parallel scan, from the
        projected inputs W x_t + b (B, T, gates * units)."""
        a, b = self.cell.coefficients(ops.cast(projected, "float32"))
        if mask is not None:
            # A padded step is the identity: h_t = h_{t-1}.
            a = ops.where(mask, a, 1.0)
            b = ops.where(mask, b, 0.0)
        hs = linear_recurrence(a, b, h0)
        return hs, hs[:, -1]

    def fused_states(self, sequences, mask, h0, training):
        """(every state or None, the last) by a TensorFlow path, or None to
        fall back to `scan_states`: a training step compiled by XLA (with
        `use_xla`), or an inference loop on a CPU (`tf_min_rnn_kernel` says
        when and why)."""
        if keras.backend.backend() != "tensorflow":
            return None
        from recurrent_zoo.layers import tf_min_rnn_kernel as kernel

        cell = self.cell
        if training:
            if not (self.use_xla and kernel.compiles(sequences)):
                return None
            # The bias is added inside, where XLA fuses it with the gates.
            projected = cell.project(sequences, add_bias=False)
            hs = kernel.compiled_states(
                cell.coefficients, projected, cell.bias, mask, h0
            )
            return hs, hs[:, -1]
        if not kernel.loops():
            return None
        return kernel.inference_states(
            cell.coefficients,
            cell.project,
            sequences,
            mask,
            h0,
            keep_all=self.return_sequences,
            scan=lambda: self.scan_states(cell.project(sequences), mask, h0),
        )

    def _keras_outputs(self, hs, state, mask):
        """(last_output, outputs) as Keras's loop gives them: at a padded step
        the previous output (zeros before the first real step: the state
        carries h_0, the outputs do not), or zeros with
        `zero_output_for_mask`. `hs` None (a path that kept only the last
        state, for a layer that returns no sequences) gives a one-step
        stand-in for the outputs, which Keras discards."""
        if mask is None:
            return state, (ops.expand_dims(state, 1) if hs is None else hs)
        if self.zero_output_for_mask:
            if hs is None:
                last_output = ops.where(mask[:, -1], state, 0.0)
                return last_output, ops.expand_dims(last_output, 1)
            outputs = ops.where(mask, hs, 0.0)
            return outputs[:, -1], outputs
        last_output = ops.where(ops.any(mask, axis=1), state, 0.0)
        if hs is None:
            return last_output, ops.expand_dims(last_output, 1)
        started = ops.cumsum(ops.cast(mask, "int32"), axis=1) > 0
        return last_output, ops.where(started, hs, 0.0)

    def step(self, inputs, state=None) -> tuple[Any, Any]:
        """One step for streaming inference, O(1) in the sequence length.

        Feeding x_1, x_2, ... one at a time, each with the state the
        previous call returned, gives at step t what the layer's call gives
        at step t of the whole sequence (unmasked, forwards).

        Args:
            inputs: x_t, (batch, features).
            state: h_{t-1}, (batch, units); zeros when None.

        Returns:
            (h_t, new_state): h_t of shape (batch, units) in the compute
            dtype, and h_t as the state to pass next, in float32 under any
            policy (the scan keeps its states in float32 too, so a stream
            under mixed precision does not round h every token).
        """
        check_float_dtype(type(self).__name__, "inputs", inputs)
        if not self.built:
            self.build((None, None, inputs.shape[-1]))
        a, b = self.cell.recurrence_inputs(inputs)
        if state is None:
            state = ops.zeros_like(b)
        state = a * ops.cast(state, "float32") + b
        return ops.cast(state, self.compute_dtype), state

    def get_config(self):
        # Flat, like keras.layers.LSTM: the cell's arguments, the RNN's and
        # the layer's own, so `cls(**config)` rebuilds the layer.
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        base_config = super().get_config()
        for key in ("cell", "unroll"):
            del base_config[key]
        own = {
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "use_xla": self.use_xla,
        }
        return {**base_config, **cell_config, **own}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
