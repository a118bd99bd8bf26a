"""A min-RNN's TensorFlow paths: training compiled by XLA, inference looped.

After its one matmul, a min-RNN (`min_rnn.py`) is nothing but elementwise
work over (batch, T, units) tensors: the gates, the coefficients a_t and b_t,
the recurrence and, in training, the gradients of all three. TensorFlow's
graph runs each of those ops as its own pass over memory; XLA fuses them
into a few loops. On a CPU the compiled function runs the recurrence as a
sequential loop (`sequential_recurrence`), one pass over a_t and b_t, where
the parallel scan's levels pass over memory again and again; where a GPU is
visible it keeps the scan, whose O(log T) depth is what a GPU needs.
`python benchmarks/layer_speed.py --pairs MinGRU MinLSTM` measures what
that gives against the same layer without it (`MinGRU(use_xla=False)` in
the table; `benchmarks/results/min_rnn/`).
It costs memory: the training step's peak is higher than the plain scan's
(the table has both; where the extra buffers come from is not measured).

The compiled function runs only where it cannot hurt anyone, as the
recurrent kernels' does: in training, inside a traced `tf.function` (what
`fit` runs), with a time length known when the step is traced
(`tf_kernel_parts.compiles`); inference calls, and so every SavedModel
export, keep plain TensorFlow ops (`tf_kernel_parts.loop_compiler`
says why).

Inference on a CPU loops over the steps for batches of `LOOP_MIN_BATCH` or
more (`inference_states`): plain TensorFlow ops, so exports keep it.

Everywhere else (eager training calls, other backends, unknown lengths in
training, `use_xla=False`, small inference batches, a visible GPU) the
layer runs its `keras.ops` scan, which computes the same.
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_zoo.layers.parallel_scan import (
    linear_recurrence,
    recurrence_gradient,
)
from recurrent_zoo.layers.tf_kernel_parts import compiles

__all__ = [
    "compiled_states",
    "compiles",
    "inference_states",
    "loops",
    "sequential_recurrence",
]


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
        (B, T, H) float32 states. Call it only where `compiles`.
    """

    recurrence = sequential_recurrence if loops() else linear_recurrence

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
        return recurrence(a, b, h0)

    # A Keras variable is not a tensor to tf.function's tracing.
    bias = None if bias is None else tf.convert_to_tensor(bias)
    return states(projected, bias, mask, h0)


@tf.custom_gradient
def sequential_recurrence(a, b, h0):
    """`parallel_scan.linear_recurrence` as a loop over the steps, for XLA
    on a CPU only (`loops`): h_t = a_t * h_{t-1} + b_t, one step at a time.

    Compiled, the loop is one pass over a and b with h in registers or
    cache; the parallel scan's recursion passes over memory at every level
    and does twice the arithmetic, which two cores cannot hide. A
    throwaway probe of the recurrence alone, compiled, forward and gradient
    (batch 64, 128 units) measured it 1.7x (200 steps) to 2x (1,000) faster
    than the parallel scan; a whole minGRU training step 9% and 12% faster
    (`python benchmarks/scan_formulations.py`, 2026-12-08). The gradient
    is `linear_recurrence`'s (`recurrence_gradient`), with the adjoint's
    backward recurrence looped too.

    Args:
        a, b: (B, T, H) float32 with T static.
        h0: (B, H) float32.

    Returns:
        (B, T, H): h_t at every step.
    """
    h = _loop_states(a, b, h0, reverse=False)

    def backwards(a, b):
        return _loop_states(a, b, tf.zeros_like(h0), reverse=True)

    return h, lambda upstream: recurrence_gradient(a, h0, h, upstream, backwards)


def _loop_states(a, b, h0, reverse: bool):
    steps = a.shape[1]

    def step(i, h, states):
        t = steps - 1 - i if reverse else i
        h = a[:, t] * h + b[:, t]
        return i + 1, h, states.write(t, h)

    _, _, states = tf.while_loop(
        lambda i, *_: i < steps,
        step,
        (0, h0, tf.TensorArray(a.dtype, size=steps, element_shape=h0.shape)),
        maximum_iterations=steps,
    )
    return tf.transpose(states.stack(), (1, 0, 2))


# Batches this large or larger run the inference loop, smaller ones the scan:
# at batch 1 the scan's passes over (1, T, H) stay in cache and beat T loop
# iterations; from about 8 to 32 the two are level; at 64 and 256 the loop
# wins (a probe at 200 steps, 128 units; README, "minGRU and minLSTM").
LOOP_MIN_BATCH = 16


def loops() -> bool:
    """Whether inference may loop over the steps: not where a GPU is
    visible, where the scan's O(log T) depth is the point."""
    return not tf.config.list_logical_devices("GPU")


def inference_states(coefficients, project, sequences, mask, h0, keep_all, scan):
    """(h_1..h_T or None, h_T) for inference: a loop over the steps for
    batches of `LOOP_MIN_BATCH` or more, `scan()` for smaller ones.

    The scan streams every (B, T, H) coefficient and partial state through
    memory several times; the loop multiplies x_t by W, computes the gates
    and updates h while all of them are in cache, once per step. Projecting
    every step first, as the scan does, writes a (B, T, gates * H) tensor
    that falls out of cache at large batches (78 MB for a minLSTM of 128
    units at batch 256 and 200 steps) and cost the loop 1.7x its time there.

    Args:
        coefficients: the cell's `coefficients`.
        project: the cell's `project`: (B, F) x_t -> W x_t + b in the
            compute dtype.
        sequences: (B, T, F) inputs.
        mask: None or (B, T, 1) bool.
        h0: (B, H) float32.
        keep_all: whether to return every state (else None for them).
        scan: a callable returning the scan's (states, last state).
    """
    batch = sequences.shape[0]

    def loop():
        return _loop(coefficients, project, sequences, mask, h0, keep_all)

    if batch is not None:
        return loop() if batch >= LOOP_MIN_BATCH else _scanned(scan, keep_all)
    return tf.cond(
        tf.shape(sequences)[0] >= LOOP_MIN_BATCH,
        loop,
        lambda: _scanned(scan, keep_all),
    )


def _scanned(scan, keep_all: bool):
    hs, last = scan()
    return (hs, last) if keep_all else (None, last)


def _loop(coefficients, project, sequences, mask, h0, keep_all: bool):
    steps = tf.shape(sequences)[1]

    def step(t, h, states):
        a, b = coefficients(tf.cast(project(sequences[:, t]), tf.float32))
        h_new = a * h + b
        if mask is not None:
            h_new = tf.where(mask[:, t], h_new, h)
        return t + 1, h_new, states.write(t, h_new) if keep_all else states

    _, last, states = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, tf.TensorArray(tf.float32, size=steps if keep_all else 0)),
        maximum_iterations=steps,
    )
    return (tf.transpose(states.stack(), (1, 0, 2)) if keep_all else None), last
