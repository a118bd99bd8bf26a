"""Shared machinery of this package's recurrent layers.

`DropoutMasks` gives cells Keras's per-sequence dropout (one mask reused at
every step, Gal & Ghahramani 2016). `ProjectedRNN` is the `keras.layers.RNN`
subclass both recurrent layers build on: the input projection `W x_t` does not
depend on the recurrence, so it is computed for all time steps in one matmul
before the loop (as cuDNN and haste do), and the loop only carries `U h_{t-1}`.
"""

from __future__ import annotations

import keras
from keras import ops


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


def check_unit_interval(name: str, value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), received {name}={value!r}")
    return float(value)


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer, received {name}={value!r}"
        )
    return value


def check_sequence_input(layer_name: str, sequences) -> None:
    """Raise a clear error for inputs a recurrent layer cannot take."""
    if len(sequences.shape) != 3:
        raise ValueError(
            f"{layer_name} expects a 3-D input (batch, timesteps, features), "
            f"received shape {tuple(sequences.shape)}"
        )
    if not keras.backend.is_float_dtype(
        keras.backend.standardize_dtype(sequences.dtype)
    ):
        raise ValueError(
            f"{layer_name} expects floating-point inputs, received dtype "
            f"{keras.backend.standardize_dtype(sequences.dtype)} (embed integer "
            "token ids first, e.g. with keras.layers.Embedding)"
        )


class ProjectedRNN(keras.layers.RNN):
    """`keras.layers.RNN` whose cell's input projection runs outside the loop.

    The cell must implement `project_inputs(sequences, training)` returning
    the pre-activations that depend on `x_t` alone, and accept those in
    `call` while `cell.inputs_projected` is True. Subclasses may override
    `fused_loop` with a backend-specific kernel over the raw sequence; it
    returns None to fall back to Keras's generic loop.
    """

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
        self.cell.inputs_projected = True
        try:
            return super().inner_loop(projected, initial_state, mask, training)
        finally:
            self.cell.inputs_projected = False

    def fused_loop(self, sequences, initial_state, mask, training):
        """A backend-specific loop over the whole sequence, or None.

        Returns Keras's (last_output, outputs, states) triple; None falls
        back to the cell inside Keras's generic loop.
        """
        return None

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
        return {**base_config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def time_major_inputs(sequences, mask, go_backwards: bool):
    """(B, T, F) inputs and (B, T) mask to time-major, reversed if asked."""
    xz = ops.transpose(sequences, (1, 0, 2))
    if mask is not None:
        mask = ops.transpose(ops.cast(mask, "bool"), (1, 0))
    if go_backwards:
        xz = ops.flip(xz, axis=0)
        mask = None if mask is None else ops.flip(mask, axis=0)
    return xz, mask


def batch_major_outputs(hs, h_last, mask, zero_output_for_mask: bool):
    """(T, B, H) step outputs to Keras's (last_output, outputs) pair."""
    outputs = ops.transpose(hs, (1, 0, 2))
    if mask is None or not zero_output_for_mask:
        # The final state *is* the last output; taking it directly keeps the
        # gradient of a many-to-one model off the (B, T, H) outputs tensor.
        return h_last, outputs
    keep = ops.expand_dims(ops.transpose(mask, (1, 0)), -1)
    outputs = ops.where(keep, outputs, 0.0)
    return outputs[:, -1], outputs
