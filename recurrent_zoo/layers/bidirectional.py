"""A bidirectional wrapper whose backward pass starts at each sequence's end."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import keras
from keras import ops

from recurrent_zoo.layers.reversal import reversal_indices, reverse_within_spans

_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


def _check_sequences(shape, dtype=None) -> None:
    if len(shape) != 3:
        raise ValueError(
            "Bidirectional expects 3-D input (batch, time, features). "
            f"Received input with shape {tuple(shape)} (rank {len(shape)})."
        )
    if dtype is not None and "float" not in keras.backend.standardize_dtype(dtype):
        raise ValueError(
            "Bidirectional expects floating-point input. Received dtype "
            f"{keras.backend.standardize_dtype(dtype)!r}; embed or cast it first."
        )


def _clone(layer: keras.layers.Layer, name: str, **overrides: Any):
    # A fresh layer from the config, so no weights or state are shared with
    # the instance the caller passed in (as keras.layers.Bidirectional does).
    config = keras.saving.serialize_keras_object(layer)
    config["config"].update(name=name, **overrides)
    clone = keras.saving.deserialize_keras_object(config)
    if hasattr(layer, "use_cudnn"):  # Not part of the config.
        clone.use_cudnn = layer.use_cudnn
    return clone


def _check_recurrent(argument: str, layer: Any) -> None:
    if not isinstance(layer, keras.layers.Layer) or not hasattr(
        layer, "return_sequences"
    ):
        raise ValueError(
            f"`{argument}` must be a recurrent keras layer (one with a "
            f"`return_sequences` attribute). Received: {layer!r}"
        )
    if getattr(layer, "stateful", False):
        # A carried-over backward state would come from the start of the
        # previous chunk, which is not a backward pass over the sequence.
        raise ValueError(f"`{argument}` must not be stateful: {layer.name!r} is.")


def _accepts(layer: keras.layers.Layer, argument: str) -> bool:
    return argument in inspect.signature(layer.call).parameters


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class Bidirectional(keras.layers.Layer):
    """Runs a recurrent layer over a sequence in both directions and merges.

    For input x_1..x_T (T = the sequence's own length when masked):

        h_fwd_t = f(x_t, h_fwd_{t-1})          (the forward layer)
        h_bwd_t = g(x_t, h_bwd_{t+1})          (the backward layer, from x_T)
        y_t = merge(h_fwd_t, h_bwd_t)

    with merge one of concat [h_fwd; h_bwd], sum h_fwd + h_bwd, ave
    (h_fwd + h_bwd) / 2, mul h_fwd * h_bwd, or None (no merge: a list
    [h_fwd, h_bwd]). With `return_sequences=False` the layer merges h_fwd_T
    and h_bwd_1, the last outputs of both directions.

    Args:
        layer: a recurrent layer: `keras.layers.LSTM`, `GRU`, `SimpleRNN`,
            `RNN` or this package's layers; anything with `return_sequences`
            and `return_state` attributes and a `get_config`. It must not be
            `go_backwards` or `stateful`. It is copied from its config, named
            "forward_<name>"; its weights are not reused.
        merge_mode: "concat" (default), "sum", "ave", "mul" or None.
        backward_layer: optional layer for the backward direction (default: a
            copy of `layer` named "backward_<name>"). Its `return_sequences`
            and `return_state` must equal `layer`'s. It is copied from its
            config with `go_backwards=False`, since this wrapper reverses the
            input itself, so either `go_backwards` value is accepted.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        sequences: float tensor (batch, time, features).
        initial_state: optional list of the forward layer's initial states
            followed by the backward layer's.
        training: passed to both layers (dropout).
        mask: optional boolean (batch, time); True marks real steps.

    Returns the merged output (or [h_fwd, h_bwd] for merge_mode=None), followed,
    when `return_state`, by the forward states and then the backward states.

    Masking: the backward layer runs forwards over a copy of each row reversed
    within its span (up to and including its last unmasked step; later steps
    stay in place), with the mask reversed alongside, and its sequence output
    is reversed back the same way. For a right-padded row of length L the
    backward pass thus starts at x_L, never in the padding:

    - with layers that skip masked steps (all Keras RNNs), every output at a
      real position and every final state equal those of the row run alone,
      unpadded;
    - with a layer that ignores the mask, sequence outputs at real positions
      are still those of the row alone (both directions meet the padding only
      after the real steps), but last outputs and final states include it.

    Sequence outputs are exactly zero at masked positions. Masks that are not
    right-padded (left padding, holes) are accepted: masked steps stay masked
    in both directions, so step-skipping layers give the result of running on
    the real steps alone, while mask-blind layers see padding between real
    steps. Without a mask the backward input is the plain time reversal (as
    `go_backwards`), so results match `keras.layers.Bidirectional` exactly.

    Example:

    >>> inputs = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 16, mask_zero=True)(inputs)
    >>> Bidirectional(keras.layers.LSTM(32))(x).shape
    (None, 64)

    Reference: M. Schuster and K. K. Paliwal, "Bidirectional recurrent neural
    networks", IEEE Transactions on Signal Processing 45(11), 1997.
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        merge_mode: str | None = "concat",
        backward_layer: keras.layers.Layer | None = None,
        **kwargs: Any,
    ) -> None:
        _check_recurrent("layer", layer)
        if backward_layer is not None:
            _check_recurrent("backward_layer", backward_layer)
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Invalid merge_mode {merge_mode!r}; expected one of {_MERGE_MODES}."
            )
        if getattr(layer, "go_backwards", False):
            raise ValueError(
                f"`layer` must read forwards, but {layer.name!r} has "
                "go_backwards=True; Bidirectional builds the backward direction."
            )
        if backward_layer is not None:
            for attribute in ("return_sequences", "return_state"):
                forward_value = getattr(layer, attribute, False)
                backward_value = getattr(backward_layer, attribute, False)
                if forward_value != backward_value:
                    raise ValueError(
                        f"`backward_layer.{attribute}` ({backward_value!r}) must "
                        f"equal `layer.{attribute}` ({forward_value!r})."
                    )
        super().__init__(**kwargs)
        base_name = layer.name.removeprefix("forward_")
        self.forward_layer = _clone(layer, f"forward_{base_name}")
        if backward_layer is None:
            backward_layer = layer
            backward_name = f"backward_{base_name}"
        else:
            backward_name = backward_layer.name
        overrides = {}
        if "go_backwards" in backward_layer.get_config():
            overrides["go_backwards"] = False
        self.backward_layer = _clone(backward_layer, backward_name, **overrides)
        self.merge_mode = merge_mode
        self.return_sequences = bool(layer.return_sequences)
        self.return_state = bool(getattr(layer, "return_state", False))
        self.supports_masking = True
        self._num_states = 0

    def build(self, sequences_shape: tuple, initial_state_shape=None) -> None:
        _check_sequences(sequences_shape)
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(sequences_shape)
        if self.return_state:
            shapes = self.forward_layer.compute_output_shape(sequences_shape)
            self._num_states = len(shapes) - 1

    def compute_output_spec(self, sequences, *args, **kwargs):
        # Catches integer inputs (e.g. forgetting an Embedding) while the
        # functional model is being built, not only at the first real call.
        _check_sequences(sequences.shape, sequences.dtype)
        return super().compute_output_spec(sequences, *args, **kwargs)

    def _run(self, layer, sequences, initial_state, training, mask):
        kwargs = {}
        if initial_state is not None:
            kwargs["initial_state"] = initial_state
        if training is not None and _accepts(layer, "training"):
            kwargs["training"] = training
        if mask is not None and _accepts(layer, "mask"):
            kwargs["mask"] = mask
        result = layer(sequences, **kwargs)
        if self.return_state:
            return ops.cast(result[0], self.compute_dtype), list(result[1:])
        return ops.cast(result, self.compute_dtype), []

    def call(
        self,
        sequences: Any,
        initial_state: list | None = None,
        training: bool | None = None,
        mask: Any = None,
    ) -> Any:
        _check_sequences(sequences.shape, sequences.dtype)
        forward_state = backward_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            if len(initial_state) % 2:
                raise ValueError(
                    "initial_state must hold the forward states followed by the "
                    f"backward states; received {len(initial_state)} tensors."
                )
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]

        indices = backward_mask = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
            indices = reversal_indices(mask)
            backward_mask = reverse_within_spans(mask, indices)

        y_fwd, states_fwd = self._run(
            self.forward_layer, sequences, forward_state, training, mask
        )
        y_bwd, states_bwd = self._run(
            self.backward_layer,
            reverse_within_spans(sequences, indices),
            backward_state,
            training,
            backward_mask,
        )
        if self.return_sequences:
            y_bwd = reverse_within_spans(y_bwd, indices)
            if mask is not None:
                # Wrapped layers may repeat the last output at masked steps.
                keep = ops.expand_dims(mask, -1)
                y_fwd = ops.where(keep, y_fwd, ops.zeros_like(y_fwd))
                y_bwd = ops.where(keep, y_bwd, ops.zeros_like(y_bwd))

        if self.merge_mode == "concat":
            outputs = [ops.concatenate([y_fwd, y_bwd], axis=-1)]
        elif self.merge_mode == "sum":
            outputs = [y_fwd + y_bwd]
        elif self.merge_mode == "ave":
            outputs = [(y_fwd + y_bwd) / 2]
        elif self.merge_mode == "mul":
            outputs = [y_fwd * y_bwd]
        else:
            outputs = [y_fwd, y_bwd]
        outputs += states_fwd + states_bwd
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_shape(
        self, sequences_shape: tuple, initial_state_shape=None
    ) -> tuple | list:
        _check_sequences(sequences_shape)
        shapes = self.forward_layer.compute_output_shape(sequences_shape)
        output_shape, state_shapes = (
            (shapes[0], list(shapes[1:])) if self.return_state else (shapes, [])
        )
        output_shape = tuple(output_shape)
        if self.merge_mode == "concat":
            output_shape = output_shape[:-1] + (output_shape[-1] * 2,)
        outputs = [output_shape] * (2 if self.merge_mode is None else 1)
        outputs += state_shapes * 2
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_mask(self, sequences: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        masks = [output_mask] * (2 if self.merge_mode is None else 1)
        masks += [None] * (2 * self._num_states if self.return_state else 0)
        return masks[0] if len(masks) == 1 else masks

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            layer=keras.saving.serialize_keras_object(self.forward_layer),
            merge_mode=self.merge_mode,
            backward_layer=keras.saving.serialize_keras_object(self.backward_layer),
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> Bidirectional:
        config = copy.deepcopy(config)
        for key in ("layer", "backward_layer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)
