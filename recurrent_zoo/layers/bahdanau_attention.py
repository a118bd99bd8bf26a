"""Additive (Bahdanau) attention with learned query/key projections."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from recurrent_zoo.layers.checks import (
    check_float_dtype,
    check_positive_int,
    check_rate,
)

__all__ = ["BahdanauAttention", "masked_softmax"]


def masked_softmax(scores: Any, mask: Any = None, axis: int = -1) -> Any:
    """Softmax over `axis` that gives masked entries exactly zero weight.

    Unlike adding a large negative number to masked scores, this keeps masked
    weights at exactly 0, and a row with no unmasked entry yields all zeros
    (not NaN, not a uniform distribution), with finite gradients.

    Args:
        scores: floating tensor of logits.
        mask: optional boolean tensor broadcastable to `scores`; `True` marks
            entries that may receive weight.
        axis: axis to normalise over.

    Returns:
        Tensor shaped like `scores` whose unmasked entries sum to 1 along
        `axis` (0 for fully masked rows).
    """
    if mask is None:
        return ops.softmax(scores, axis=axis)
    mask = ops.cast(mask, "bool")
    has_any = ops.any(mask, axis=axis, keepdims=True)
    # The max is taken over unmasked entries only, so garbage at masked
    # positions can neither overflow the exponent nor underflow the rest.
    row_max = ops.max(ops.where(mask, scores, float("-inf")), axis=axis, keepdims=True)
    # Softmax is shift invariant, so the shift needs no gradient; the `where`
    # replaces the -inf of fully masked rows before it can reach arithmetic.
    row_max = ops.stop_gradient(ops.where(has_any, row_max, 0.0))
    shifted = ops.where(mask, scores - row_max, 0.0)
    numerator = ops.where(mask, ops.exp(shifted), 0.0)
    total = ops.sum(numerator, axis=axis, keepdims=True)
    # A non-empty row has total >= 1 (its max contributes exp(0)). Dividing
    # empty rows by 1 rather than by a tiny epsilon keeps their gradient
    # bounded instead of scaling it by 1/epsilon.
    total = ops.where(has_any, total, 1.0)
    return numerator / total


class _AdditiveScoringLayer(keras.layers.Layer):
    """Arguments, weights helpers and config shared by the additive layers.

    Both layers score with `v^T tanh(W x + ... + b)` and take the same
    constructor arguments, so these live here once.
    """

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = check_rate("dropout", dropout)
        self.seed = seed
        # Only created when needed so a dropout-free layer has no RNG state
        # in its saved weights.
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if self.dropout > 0 else None
        )
        self.supports_masking = True

    def _add_kernel(self, name: str, shape: tuple) -> Any:
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _add_bias(self) -> Any:
        if not self.use_bias:
            return None
        return self.add_weight(
            name="bias",
            shape=(self.units,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _drop(self, weights: Any, training: bool | None) -> Any:
        if training and self.dropout > 0:
            return keras.random.dropout(weights, self.dropout, seed=self.seed_generator)
        return weights

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "dropout": self.dropout,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class BahdanauAttention(_AdditiveScoringLayer):
    """Additive attention of Bahdanau, Cho & Bengio (2015).

    For each query step `q_i` and key step `k_j`:

        score_ij = v^T tanh(W_q q_i + W_k k_j + b)
        a_ij     = softmax_j(score_ij)        (over unmasked value steps only)
        c_i      = sum_j a_ij value_j

    `keras.layers.AdditiveAttention` computes `v^T tanh(q_i + k_j)` without
    the projections `W_q`, `W_k`, so it needs equal query and key sizes and
    cannot learn the alignment space; this layer learns both.

    Args:
        units: size of the alignment (hidden) space, a positive int.
        use_bias: whether to add the bias `b` inside the `tanh`.
        kernel_initializer: initializer for `W_q`, `W_k` and `v`.
        bias_initializer: initializer for `b`.
        kernel_regularizer: regularizer for `W_q`, `W_k` and `v`.
        bias_regularizer: regularizer for `b`.
        kernel_constraint: constraint for `W_q`, `W_k` and `v`.
        bias_constraint: constraint for `b`.
        dropout: fraction of attention weights dropped in training, in [0, 1).
        seed: optional int seed for the dropout.

    Call arguments:
        inputs: `[query, value]` or `[query, value, key]` (`key` defaults to
            `value`). `query` is `(batch, Tq, dq)`, or `(batch, dq)` for a
            single decoder step; `value` is `(batch, Tv, dv)`; `key` is
            `(batch, Tv, dk)`.
        mask: optional `[query_mask, value_mask]` (or with a third
            `key_mask`), each boolean or None, shaped `(batch, Tq)` (or
            `(batch,)` for a 2-D query) and `(batch, Tv)`.
        training: whether dropout is applied.
        return_attention_scores: if True, also return the weights.

    Returns:
        The context `(batch, Tq, dv)` (`(batch, dv)` for a 2-D query) and,
        if requested, the attention weights `(batch, Tq, Tv)` (`(batch, Tv)`).
        The returned weights are the ones actually used, i.e. after dropout.
        In a functional model, ask for the weights on the layer's first call:
        Keras cannot wire a later call with more outputs than the first.

    Masking: masked value (or key) steps get weight exactly 0; a query whose
    value steps are all masked gets all-zero weights and a zero context,
    never NaN. Masked query steps output zero context and zero weights. The
    output mask is the query mask (None for a 2-D query).

    The score tensor is `(batch, Tq, Tv, units)` before the reduction by
    `v`, which is inherent to additive attention; keep `units` modest for
    long sequences.

    Example:

    >>> query = keras.random.normal((2, 3, 5))
    >>> value = keras.random.normal((2, 4, 6))
    >>> context, weights = BahdanauAttention(8)(
    ...     [query, value], return_attention_scores=True)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 3, 6), (2, 3, 4))

    Reference:
        D. Bahdanau, K. Cho, Y. Bengio. "Neural Machine Translation by Jointly
        Learning to Align and Translate." ICLR 2015. arXiv:1409.0473.
    """

    def _unpack_shapes(self, input_shape: Any) -> tuple:
        is_shape_list = isinstance(input_shape, (list, tuple)) and all(
            isinstance(shape, (list, tuple)) for shape in input_shape
        )
        if not is_shape_list or len(input_shape) not in (2, 3):
            raise ValueError(
                f"{type(self).__name__} must be called on [query, value] or "
                f"[query, value, key]. Received input shape: {input_shape}"
            )
        query_shape, value_shape = tuple(input_shape[0]), tuple(input_shape[1])
        key_shape = tuple(input_shape[2]) if len(input_shape) == 3 else value_shape
        if len(query_shape) not in (2, 3):
            raise ValueError(
                f"{type(self).__name__} expects a query of rank 2 or 3. "
                f"Received query shape: {query_shape}"
            )
        for name, shape in (("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(
                    f"{type(self).__name__} expects a {name} of rank 3 "
                    f"(batch, Tv, features). Received {name} shape: {shape}"
                )
        return query_shape, value_shape, key_shape

    def build(self, input_shape: Any) -> None:
        query_shape, _, key_shape = self._unpack_shapes(input_shape)
        if query_shape[-1] is None or key_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs known query and key feature sizes. "
                f"Received query shape {query_shape}, key shape {key_shape}"
            )
        self.query_kernel = self._add_kernel(
            "query_kernel", (query_shape[-1], self.units)
        )
        self.key_kernel = self._add_kernel("key_kernel", (key_shape[-1], self.units))
        self.score_kernel = self._add_kernel("score_kernel", (self.units,))
        # One bias suffices: separate biases on W_q q and W_k k would only add.
        self.bias = self._add_bias()

    def _unpack_inputs(self, inputs: Any) -> tuple:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"{type(self).__name__} must be called on [query, value] or "
                f"[query, value, key]. Received: {type(inputs).__name__}"
            )
        self._unpack_shapes([tuple(x.shape) for x in inputs])
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else value
        for name, tensor in (("query", query), ("value", value), ("key", key)):
            check_float_dtype(type(self).__name__, name, tensor)
        return query, value, key

    def _unpack_mask(self, mask: Any) -> tuple:
        if mask is None:
            return None, None
        if not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3):
            raise ValueError(
                f"{type(self).__name__} expects mask=[query_mask, value_mask] "
                f"(optionally with a key_mask). Received: mask={mask}"
            )
        query_mask, value_mask = mask[0], mask[1]
        key_mask = mask[2] if len(mask) == 3 else None
        if key_mask is not None:
            # Key and value share the time axis: a step dropped by either
            # cannot be attended to.
            key_mask = ops.cast(key_mask, "bool")
            value_mask = (
                key_mask
                if value_mask is None
                else ops.logical_and(ops.cast(value_mask, "bool"), key_mask)
            )
        return query_mask, value_mask

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
    ) -> Any:
        query, value, key = self._unpack_inputs(inputs)
        query_mask, value_mask = self._unpack_mask(mask)
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)
            if query_mask is not None:
                query_mask = ops.reshape(query_mask, (-1, 1))

        query_proj = ops.matmul(query, self.query_kernel)  # (B, Tq, units)
        key_proj = ops.matmul(key, self.key_kernel)  # (B, Tv, units)
        if self.bias is not None:
            query_proj = query_proj + self.bias
        hidden = ops.tanh(
            ops.expand_dims(query_proj, 2) + ops.expand_dims(key_proj, 1)
        )  # (B, Tq, Tv, units)
        scores = ops.einsum("bqvu,u->bqv", hidden, self.score_kernel)

        score_mask = None if value_mask is None else ops.expand_dims(value_mask, 1)
        weights = masked_softmax(scores, score_mask, axis=-1)
        weights = self._drop(weights, training)
        context = ops.matmul(weights, value)  # (B, Tq, dv)

        if query_mask is not None:
            keep = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
            context = ops.where(keep, context, 0.0)
            weights = ops.where(keep, weights, 0.0)
        if single_step:
            context = ops.squeeze(context, 1)
            weights = ops.squeeze(weights, 1)
        if return_attention_scores:
            return context, weights
        return context

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        query_mask, _ = self._unpack_mask(mask)
        if query_mask is None or len(inputs[0].shape) == 2:
            return None
        return query_mask

    def compute_output_shape(self, input_shape: Any) -> tuple:
        query_shape, value_shape, _ = self._unpack_shapes(input_shape)
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
    ) -> Any:
        query, value, _ = self._unpack_inputs(inputs)
        self._unpack_mask(mask)
        output_shape = self.compute_output_shape([tuple(x.shape) for x in inputs])
        context = keras.KerasTensor(output_shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return context
        weights_shape = (*query.shape[:-1], value.shape[1])
        return context, keras.KerasTensor(weights_shape, dtype=self.compute_dtype)
