"""A min-RNN's gates and scan compiled by XLA, for training on TensorFlow.

After its one matmul, a min-RNN (`min_rnn.py`) is nothing but elementwise
work over (batch, T, units) tensors: the gates, the coefficients a_t and b_t,
the parallel scan and, in training, the gradients of all three. TensorFlow's
graph runs each of those ops as its own pass over memory; XLA fuses them
into a few loops. `python benchmarks/layer_speed.py --pairs MinGRU MinLSTM`
measures what that gives against the same layer without it
(`MinGRU(use_xla=False)` in the table; `benchmarks/results/min_rnn_xla/`).
It costs memory: the training step's peak is higher than the plain scan's
(the table has both; where the extra buffers come from is not measured).

The compiled function runs only where it cannot hurt anyone:

- in training, inside a traced `tf.function` (what `fit` runs). An
  inference call, and so every SavedModel `export` traces, keeps plain
  TensorFlow ops: a SavedModel holding an XLA-compiled function is refused
  by TensorFlow Serving unless it was started with
  `--xla_cpu_compilation_enabled` (tensorflow/serving#2214), and the
  package promises exports served anywhere;
- with a time length known when the step is traced. XLA compiles once per
  input shape, so a model fed batches of varying length (text trimmed to
  its longest example) would compile again for every new length; such
  calls keep the plain ops too. The batch size may vary: a final short
  batch costs one more compilation.

Everywhere else (eager calls, other backends, unknown lengths, `use_xla=False`)
the layer runs its `keras.ops` scan, which computes the same.
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_zoo.layers.parallel_scan import linear_recurrence

__all__ = ["applies", "compiled_states"]


def applies(sequences) -> bool:
    """Whether a training call on `sequences` (B, T, F) compiles: inside a
    traced function (not eagerly, where each call would trace anew), with
    T known."""
    return tf.inside_function() and sequences.shape[1] is not None


def compiled_states(coefficients, projected, bias, mask, h0):
    """h_1..h_T from the projected inputs by an XLA-compiled function.

    Args:
        coefficients: the cell's `coefficients`, float32 (B, T, gates * H)
            -> (a, b).
        projected: (B, T, gates * H), W x_t in the compute dtype; the time
            length must be static.
        bias: None or the cell's bias (gates * H,), added in the compute
            dtype as the cell adds it.
        mask: None or (B, T, 1) bool; a padded step is the identity.
        h0: (B, H) float32.

    Returns:
        (B, T, H) float32 states. Call it only where `applies`.
    """

    # Made anew for each trace of the caller, so it closes over this cell's
    # `coefficients` and is traced once per trace of the training step.
    @tf.function(jit_compile=True, autograph=False)
    def states(projected, bias, mask, h0):
        if bias is not None:
            projected = projected + tf.cast(bias, projected.dtype)
        a, b = coefficients(tf.cast(projected, tf.float32))
        if mask is not None:
            a = tf.where(mask, a, 1.0)
            b = tf.where(mask, b, 0.0)
        return linear_recurrence(a, b, h0)

    # A Keras variable is not a tensor to tf.function's tracing.
    bias = None if bias is None else tf.convert_to_tensor(bias)
    return states(projected, bias, mask, h0)
