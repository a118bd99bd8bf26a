"""Attention pooling: a learned query that summarises a sequence in one vector."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from recurrent_zoo.layers.bahdanau_attention import (
    _AdditiveScoringLayer,
    masked_softmax,
)
from recurrent_zoo.layers.checks import check_float_dtype

__all__ = ["AttentionPooling"]


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class AttentionPooling(_AdditiveScoringLayer):
    """Additive attention pooling over time (Yang et al., 2016).

    For RNN outputs `h_1 .. h_T`:

        e_t = v^T tanh(W h_t + b)
        a_t = softmax_t(e_t)                  (over unmasked steps only)
        output = sum_t a_t h_t

    Yang et al. write `u_t = tanh(W h_t + b)` and `e_t = u_t^T u_w` with a
    learned context (query) vector `u_w`; that vector is `v` here. The result
    is a fixed-size summary for classification heads, and `a_t` shows which
    steps the model relied on.

    Args:
        units: size of the hidden attention space, a positive int.
        use_bias: whether to add `b` inside the `tanh`.
        kernel_initializer: initializer for `W` and `v`.
        bias_initializer: initializer for `b`.
        kernel_regularizer: regularizer for `W` and `v`.
        bias_regularizer: regularizer for `b`.
        kernel_constraint: constraint for `W` and `v`.
        bias_constraint: constraint for `b`.
        dropout: fraction of attention weights dropped in training, in [0, 1).
        seed: optional int seed for the dropout.

    Call arguments:
        inputs: floating tensor `(batch, T, D)`.
        mask: optional boolean `(batch, T)`; picked up automatically from an
            upstream `Embedding(mask_zero=True)` or `Masking` layer.
        training: whether dropout is applied.
        return_attention_scores: if True, return `(pooled, weights)`.

    Returns:
        `pooled` of shape `(batch, D)` and, if requested, the weights
        `(batch, T)` actually used (after dropout). `attention_weights()`
        returns the weights alone, handy for plotting. In a functional model,
        ask for the weights on the layer's first call (then build a second
        `keras.Model` ending at them): Keras cannot wire a later call with
        more outputs than the first.

    Masking: masked steps get weight exactly 0; a fully masked sequence gets
    all-zero weights and a zero output, never NaN. The time axis is consumed,
    so no mask is propagated.

    Example:

    >>> tokens = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(100, 16, mask_zero=True)(tokens)
    >>> x = keras.layers.LSTM(32, return_sequences=True)(x)
    >>> x = AttentionPooling(16)(x)
    >>> model = keras.Model(tokens, keras.layers.Dense(2)(x))

    Reference:
        Z. Yang, D. Yang, C. Dyer, X. He, A. Smola, E. Hovy. "Hierarchical
        Attention Networks for Document Classification." NAACL 2016.
        Scoring follows Bahdanau, Cho & Bengio (ICLR 2015).
    """

    def _check_shape(self, input_shape: Any) -> tuple:
        is_shape = isinstance(input_shape, (list, tuple)) and all(
            dim is None or isinstance(dim, int) for dim in input_shape
        )
        if not is_shape or len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects one input of rank 3 "
                f"(batch, time, features). Received input shape: {input_shape}"
            )
        return tuple(input_shape)

    def build(self, input_shape: Any) -> None:
        input_shape = self._check_shape(input_shape)
        if input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known feature size. "
                f"Received input shape: {input_shape}"
            )
        self.kernel = self._add_kernel("kernel", (input_shape[-1], self.units))
        self.score_kernel = self._add_kernel("score_kernel", (self.units,))
        self.bias = self._add_bias()

    def _check_inputs(self, inputs: Any) -> None:
        if not hasattr(inputs, "shape"):
            raise ValueError(
                f"{type(self).__name__} expects one tensor (batch, time, "
                f"features). Received: {type(inputs).__name__}"
            )
        self._check_shape(tuple(inputs.shape))
        check_float_dtype(type(self).__name__, "inputs", inputs)

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
    ) -> Any:
        self._check_inputs(inputs)
        hidden = ops.matmul(inputs, self.kernel)  # (B, T, units)
        if self.bias is not None:
            hidden = hidden + self.bias
        scores = ops.einsum("btu,u->bt", ops.tanh(hidden), self.score_kernel)
        weights = masked_softmax(scores, mask, axis=-1)
        weights = self._drop(weights, training)
        pooled = ops.einsum("bt,btd->bd", weights, inputs)
        if return_attention_scores:
            return pooled, weights
        return pooled

    def attention_weights(self, inputs: Any, mask: Any = None) -> Any:
        """The pooling weights `(batch, T)` for `inputs`, in inference mode.

        Meant for eager use, e.g. `pool.attention_weights(rnn_outputs)`; a
        mask carried by `inputs` (from `Embedding(mask_zero=True)`) is picked
        up as in a normal call. For a symbolic plotting model, call the layer
        with `return_attention_scores=True` when building the network and
        make a second `keras.Model` ending at the weights: Keras cannot wire
        a second call whose number of outputs differs from the first call's.
        """
        return self(inputs, mask=mask, training=False, return_attention_scores=True)[1]

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: Any) -> tuple:
        input_shape = self._check_shape(input_shape)
        return (input_shape[0], input_shape[-1])

    def compute_output_spec(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
    ) -> Any:
        self._check_inputs(inputs)
        shape = tuple(inputs.shape)
        pooled = keras.KerasTensor(
            self.compute_output_shape(shape), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return pooled
        return pooled, keras.KerasTensor(shape[:2], dtype=self.compute_dtype)
