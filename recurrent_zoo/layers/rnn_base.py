"""Shared machinery of this package's recurrent layers.

`DropoutMasks` gives cells Keras's per-sequence dropout (one mask reused at
every step, Gal & Ghahramani 2016). `ProjectedRNN` is the `keras.layers.RNN`
subclass both recurrent layers build on: the input projection `W x_t` does not
depend on the recurrence, so it is computed for all time steps in one matmul
before the loop (as cuDNN and haste do), and the loop only carries `U h_{t-1}`.
"""

from __future__ import annotations

import re

import keras
from keras import ops

from recurrent_zoo.layers.checks import (
    check_positive_int,
    check_rate,
    check_sequence_input,
    check_xla,
)


class DropoutMasks:
    """Mixin caching dropout masks so every time step reuses the same one.

    The owning cell must define `dropout`, `recurrent_dropout` and
    `seed_generator`.
    """

    _dropout_mask = None
    _recurrent_dropout_mask = None

    def get_dropout_mask(self, step_input):
        if self._dropout_mask is None and self.dropout > 0:
            self._dropout_mask = keras.random.dropout(
                ops.ones_like(step_input), rate=self.dropout, seed=self.seed_generator
            )
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, step_state):
        if self._recurrent_dropout_mask is None and self.recurrent_dropout > 0:
            self._recurrent_dropout_mask = keras.random.dropout(
                ops.ones_like(step_state),
                rate=self.recurrent_dropout,
                seed=self.seed_generator,
            )
        return self._recurrent_dropout_mask

    def reset_dropout_masks(self):
        self._dropout_mask = None
        self._recurrent_dropout_mask = None


def layer_normalize(x, epsilon: float):
    """(x - mean(x)) / sqrt(var(x) + epsilon) over the last axis.

    Computed in float32 whatever x's dtype: under a float16 policy the
    squares of large pre-activations overflow, and LN(z) would become 0.
    """
    dtype = x.dtype
    x = ops.cast(x, "float32")
    mean = ops.mean(x, axis=-1, keepdims=True)
    centered = x - mean
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    return ops.cast(centered * ops.rsqrt(variance + epsilon), dtype)


class RecurrentCell(keras.layers.Layer, DropoutMasks):
    """Arguments, validation and config shared by this package's cells.

    Subclasses add their own activations and weights; every argument here is
    documented on `SimpleRNNCell` and `LayerNormLSTMCell`.
    """

    def __init__(
        self,
        units: int,
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
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
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
        self.output_size = self.units
        # True while the owning layer feeds `project_inputs` results per step.
        self.inputs_projected = False

    def add_recurrent_weights(
        self, input_dim: int, gates: int, bias_initializer=None, bias_shape=None
    ):
        """kernel (input_dim, gates * units), recurrent_kernel, optional bias
        (of shape (gates * units,) unless `bias_shape` says otherwise)."""
        width = gates * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=bias_shape or (width,),
                name="bias",
                initializer=bias_initializer or self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def dropped_inputs(self, inputs, training=None):
        """Inputs (one step, or a whole batch-major sequence) after dropout."""
        if not (training and self.dropout > 0):
            return inputs
        sequence = len(inputs.shape) == 3
        dp_mask = self.get_dropout_mask(inputs[:, 0, :] if sequence else inputs)
        return inputs * (ops.expand_dims(dp_mask, 1) if sequence else dp_mask)

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        config = {
            "units": self.units,
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


# Arguments of a recurrent layer that belong to `keras.layers.RNN`, not its cell.
RNN_ARGUMENTS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
    "activity_regularizer",
    "use_xla",
)


def split_arguments(arguments: dict) -> tuple[dict, dict]:
    """A layer constructor's `locals()` as (its cell's arguments, the RNN's).

    Lets each layer keep Keras's explicit signature (what `help()` and an
    IDE show) without forwarding every argument by hand.
    """
    arguments = {
        k: v for k, v in arguments.items() if k not in ("self", "__class__", "kwargs")
    }
    rnn = {k: arguments.pop(k) for k in RNN_ARGUMENTS if k in arguments}
    return arguments, rnn


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class ProjectedRNN(keras.layers.RNN):
    """`keras.layers.RNN` whose cell's input projection runs outside the loop.

    A subclass names its `cell_class` and passes its constructor's arguments
    through `split_arguments`; the cell is built here. The cell must
    implement `project_inputs(sequences, training)` returning the
    pre-activations that depend on `x_t` alone, and accept those in `call`
    while `cell.inputs_projected` is True. Subclasses may override
    `fused_loop` with a backend-specific kernel over the raw sequence; it
    returns None to fall back to Keras's generic loop.
    """

    cell_class: type[RecurrentCell]

    def __init__(self, cell_arguments: dict, rnn_arguments: dict, **kwargs):
        cell = self.cell_class(
            **cell_arguments,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=snake_case(self.cell_class.__name__),
        )
        use_xla = check_xla(rnn_arguments.pop("use_xla", True))
        super().__init__(cell, **rnn_arguments, **kwargs)
        self.use_xla = use_xla
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        check_sequence_input(type(self).__name__, sequences)
        self.cell.reset_dropout_masks()
        try:
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
        finally:
            self.cell.reset_dropout_masks()

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self.unroll:
            result = self.fused_loop(sequences, initial_state, mask, training)
            if result is not None:
                return result
        projected = self.cell.project_inputs(sequences, training=training)
        if training:
            # Sample the recurrent mask here, outside the loop body, so that
            # every step reuses it rather than drawing a new one per step.
            self.cell.get_recurrent_dropout_mask(initial_state[0])
        self.cell.inputs_projected = True
        try:
            return super().inner_loop(projected, initial_state, mask, training)
        finally:
            self.cell.inputs_projected = False

    def fused_inputs(self, sequences, mask, training):
        """Inputs for a fused loop: the (B, T, F) sequences after input
        dropout, left batch-major (the loop reads step t where it needs it,
        so no time-major copy is held through training), and the mask as
        (T, B) in processing order (reversed for `go_backwards`)."""
        sequences = self.cell.dropped_inputs(sequences, training)
        if mask is not None:
            mask = ops.transpose(ops.cast(mask, "bool"), (1, 0))
            if self.go_backwards:
                mask = ops.flip(mask, axis=0)
        return sequences, mask

    def fused_loop(self, sequences, initial_state, mask, training):
        """A backend-specific loop over the whole sequence, or None.

        Returns Keras's (last_output, outputs, states) triple; None falls
        back to the cell inside Keras's generic loop.
        """
        return None

    def gated_kernel_applies(self, training) -> bool:
        """Whether a gated cell's TF kernel can run this call: the TensorFlow
        backend, the default activations (tanh, sigmoid), and no active
        recurrent dropout (the kernels apply none)."""
        cell = self.cell
        return (
            keras.backend.backend() == "tensorflow"
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not (training and cell.recurrent_dropout > 0)
        )

    def kernel_weights(self) -> dict:
        """The cell's weights as a kernel's keyword arguments: kernel,
        recurrent_kernel, bias and, with layer normalization, the cell's
        `norm_weights` (its gains and shifts, by name)."""
        cell = self.cell
        names = ["kernel", "recurrent_kernel", "bias"]
        if cell.layer_norm:
            names += cell.norm_weights
        weights = {name: getattr(cell, name) for name in names}
        return {
            k: v if v is None else ops.convert_to_tensor(v) for k, v in weights.items()
        }

    def kernel_options(self, mask, training) -> dict:
        """The arguments every TF kernel takes from the layer and the call."""
        return dict(
            mask=mask,
            reverse=self.go_backwards,
            # Outside training nothing is expected to back-propagate through
            # time, so skip the per-step record (gradients still work).
            record=bool(training),
            sequences=wants_sequences(self, mask),
            xla=self.use_xla,
        )

    def kernel_result(self, hs, h_last, mask, states):
        """A kernel's outputs as Keras's (last_output, outputs, states)."""
        last_output, outputs = batch_major_outputs(
            hs, h_last, mask, self.zero_output_for_mask
        )
        return last_output, outputs, states

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def dropout(self) -> float:
        return self.cell.dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.cell.recurrent_dropout

    def get_config(self):
        # Flat config, like keras.layers.LSTM: the cell's arguments plus the
        # RNN's, so `cls(**config)` rebuilds the layer.
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        base_config = super().get_config()
        del base_config["cell"]
        return {**base_config, **cell_config, "use_xla": self.use_xla}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def wants_sequences(layer, mask) -> bool:
    """Whether a fused loop must produce the (T, B, H) step outputs."""
    return layer.return_sequences or (mask is not None and layer.zero_output_for_mask)


def batch_major_outputs(hs, h_last, mask, zero_output_for_mask: bool):
    """(T, B, H) step outputs to Keras's (last_output, outputs) pair.

    `hs` None (a loop that kept no sequence, see `wants_sequences`) gives a
    one-step stand-in for the outputs, which Keras then discards.

    A kernel carries h at a skipped step, h_0 included; Keras's loop outputs
    the previous *output* there, and before a sequence's first real step
    (leading padding, or right padding under `go_backwards`) there is none:
    zeros, as is the last output of a sequence with no real step at all.
    Only the state carries h_0. The outputs follow Keras's rule.
    """
    outputs = None if hs is None else ops.transpose(hs, (1, 0, 2))
    if mask is not None and zero_output_for_mask and outputs is not None:
        keep = ops.expand_dims(ops.transpose(mask, (1, 0)), -1)
        outputs = ops.where(keep, outputs, 0.0)
        return outputs[:, -1], outputs
    last = h_last
    if mask is not None:
        last = ops.where(ops.expand_dims(ops.any(mask, axis=0), -1), h_last, 0.0)
        if outputs is not None:
            started = ops.cumsum(ops.cast(mask, "int32"), axis=0) > 0
            keep = ops.expand_dims(ops.transpose(started, (1, 0)), -1)
            outputs = ops.where(keep, outputs, 0.0)
    # The final state *is* the last output; taking it directly keeps the
    # gradient of a many-to-one model off the (B, T, H) outputs tensor.
    return last, (ops.expand_dims(last, 1) if outputs is None else outputs)
