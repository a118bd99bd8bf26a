"""Pieces the TensorFlow recurrence kernels (LSTM, GRU) share.

The layer-normalization helpers rest on one identity. With the rows of a
kernel centred (K_c = K - rowmean(K)), x K_c is x K minus its mean over the
N outputs, and mean((x K_c)^2) is the quadratic form x (K_c K_c^T / N) x^T;
so gamma * LN(x K) = (x / rms) (K_c * gamma): a kernel normalizes its
N-wide product by scaling only the narrow x side.
"""

from __future__ import annotations

import functools

import tensorflow as tf


def compiles(sequences) -> bool:
    """Whether a training call on `sequences` (B, T, F) may run compiled by
    XLA: inside a traced function (eagerly, each call would compile anew),
    with T known. XLA compiles once per input shape, so a model fed batches
    of varying length (text trimmed to its longest example) would compile
    again for every new length; such calls keep plain TensorFlow ops. The
    batch size may vary: a final short batch costs one more compilation."""
    return tf.inside_function() and sequences.shape[1] is not None


def loop_compiler(xla: bool | str, sequences):
    """How a kernel runs its two training loops: `loops(f)` is `f` as an
    XLA-compiled function where `xla` is True (not "inference", which
    compiles only the inference loop: `inference_compiler`) and a training
    call on `sequences` may compile (`compiles`), else `f` itself.

    TensorFlow's graph runs each op of a step as its own kernel launch, with
    its own pass over memory; XLA fuses a step's elementwise work into a few
    loops. Only the loops compile: the hand-written gradient that joins them
    stays a graph op, so the forward loop hands the backward one its records
    and nothing else (an XLA function differentiated by TensorFlow would
    also return copies of its inputs for its gradient). Inference calls keep
    plain ops outside Keras's own steps (`inference_compiler`), and so
    every SavedModel `export` traces: a SavedModel holding
    an XLA-compiled function is refused by TensorFlow Serving unless it was
    started with `--xla_cpu_compilation_enabled` (tensorflow/serving#2214),
    and the package promises exports served anywhere.
    """
    if xla is True and compiles(sequences):
        return functools.partial(tf.function, jit_compile=True, autograph=False)
    return lambda function: function


# The tf.functions Keras's TensorFlow trainer runs its steps in: fit's and
# evaluate's (one_step_on_data, inside multi_step_on_iterator) and
# predict's (one_step_on_data_distributed, or multi_step_on_data with
# steps_per_execution > 1). No export traces a function of these names.
KERAS_STEPS = frozenset(
    {
        "one_step_on_data",
        "multi_step_on_iterator",
        "one_step_on_data_distributed",
        "multi_step_on_data",
    }
)


def in_keras_step() -> bool:
    """Whether the current trace is inside a step of Keras's fit, evaluate
    or predict (a `KERAS_STEPS` function, at any depth)."""
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if getattr(graph, "name", None) in KERAS_STEPS:
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def inference_compiler(xla: bool | str, sequences):
    """How a kernel runs its inference loop: `run(f)` is `f` compiled by
    XLA where `xla` is True or "inference", the call may compile
    (`compiles`) and it is traced inside Keras's own predict, evaluate or
    fit step (`in_keras_step`), else `f` itself.

    An inference step is dominated by per-op overhead (batch 1) and passes
    over memory (batch 256), which XLA's fusion removes: the layer-
    normalized LSTM's predict step ran 5.3x faster at batch 1 and 1.9x at
    batch 256 than with the plain loop (a probe at the benchmarks' base
    shape; `benchmarks/layer_speed.py` compares with Keras's LSTM). Only
    Keras's steps are compiled, never a function traced
    elsewhere, because a SavedModel export traces the same inference call
    and must keep plain ops (`loop_compiler`): Keras's `model.export`, a
    `tf.saved_model.save` and the package's exporters trace functions of
    their own names. Were Keras to rename its steps, predict would only run
    plain ops again (`test_kernel_xla` would say so). A gradient taken
    through the compiled loop (a layer called with training=False inside a
    training step) replays the plain loop: TensorFlow cannot differentiate
    an XLA-compiled while loop from outside it.
    """
    if xla in (True, "inference") and compiles(sequences) and in_keras_step():
        return _compiled_inference
    return lambda function: function


def _compiled_inference(function):
    """`function(options, *tensors)` compiled by XLA (`options` a Python
    value it is traced for), differentiable through a replay of the plain
    `function`; its outputs are tensors or None."""
    compiled = tf.function(function, jit_compile=True, autograph=False)

    def run(options, *tensors):
        present = []  # which outputs are tensors (not None), in order

        @tf.custom_gradient
        def forward(*tensors):
            outputs = compiled(options, *tensors)
            present.extend(t is not None for t in outputs)

            def grad(*upstream):
                floats = [t for t in tensors if t.dtype.is_floating]
                with tf.GradientTape() as tape:
                    tape.watch(floats)
                    replay = function(options, *tensors)
                replayed = [t for t, kept in zip(replay, present, strict=True) if kept]
                grads = iter(tape.gradient(replayed, floats, list(upstream)))
                return [next(grads) if t.dtype.is_floating else None for t in tensors]

            return [t for t in outputs if t is not None], grad

        outputs = iter(forward(*tensors))
        return tuple(next(outputs) if kept else None for kept in present)

    return run


def time_index(t, steps, reverse: bool):
    """The time step of the inputs read at processing step t."""
    return steps - 1 - t if reverse else t


def dim(tensor, axis):
    """The static size of an axis where known (keeps loop shapes static)."""
    return tensor.shape[axis] or tf.shape(tensor)[axis]


def matmul_dtype(compute_dtype) -> tf.DType:
    """The dtype of a kernel's matmul operands under a compute dtype.

    bfloat16 under a bfloat16 policy: its matmuls run on a CPU's AMX units
    (Intel Sapphire Rapids and later) and on a GPU's tensor cores faster
    than float32 ones (README, Speed and memory), while the
    products, the state and the statistics stay float32. float16 keeps
    float32 operands: its range is too narrow for the loss-scaled
    gradients of a backward pass, and few CPUs multiply it faster.
    """
    return tf.bfloat16 if tf.as_dtype(compute_dtype) == tf.bfloat16 else tf.float32


def matmul(a, b, dtype=tf.float32, **kwargs):
    """a @ b with its operands in `dtype` and the product in float32 (a cast
    of an operand already in `dtype` is free, so cast weights once)."""
    if dtype == tf.float32:
        return tf.matmul(a, b, **kwargs)
    product = tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype), **kwargs)
    return tf.cast(product, tf.float32)


def project(x, kernel):
    """(T, B, F) @ (F, N) as one 2-D matmul, in float32."""
    shape = tf.shape(x)
    flat = matmul(tf.reshape(x, [-1, shape[-1]]), kernel, kernel.dtype)
    return tf.reshape(flat, tf.concat([shape[:-1], tf.shape(kernel)[-1:]], 0))


def input_share(x, w, b, reverse: bool, cached_floats: int):
    """x_t W + b at processing step t, as a function of t, for a loop that
    keeps nothing for a backward pass (inference).

    When the shares of all steps fit in `cached_floats` they are one matmul
    before the loop (measured 10-20% faster at batch 1); a larger one,
    streamed from memory, is slower than x_t W at each step (20% at batch
    64), and so is a shape known only at run time. A plain add for b:
    TensorFlow's fused MatMul+BiasAdd measured slower on a CPU.
    """
    size = x.shape[0] and x.shape[1] and x.shape[0] * x.shape[1] * w.shape[1]
    if size and size <= cached_floats:
        time_major = tf.transpose(tf.reverse(x, [1]) if reverse else x, (1, 0, 2))
        shares = project(time_major, w) + b
        return lambda t: shares[t]
    steps = tf.shape(x)[1]
    return lambda t: matmul(x[:, time_index(t, steps, reverse)], w, w.dtype) + b


def centered(kernel):
    """(K_c, K_c K_c^T / N) with K_c = K minus the mean of each row.

    x K_c is x K centred over its N outputs, and mean((x K_c)^2) is the
    quadratic form x (K_c K_c^T / N) x^T: so LN(x K) needs no pass over the
    N-wide product beyond the matmul itself.
    """
    centred = kernel - tf.reduce_mean(kernel, axis=1, keepdims=True)
    width = tf.cast(tf.shape(kernel)[1], tf.float32)
    return centred, tf.matmul(centred, centred, transpose_b=True) / width


def inverse_rms(x, moments, epsilon):
    """1 / sqrt(x M x^T + eps) per row: 1/std of LN(x K) for M of `centered`."""
    return inverse_rms_of(x, matmul(x, moments, moments.dtype), epsilon)


def inverse_rms_of(x, x_moments, epsilon):
    """`inverse_rms` given the product x M already computed."""
    mean_square = tf.reduce_sum(x_moments * x, -1, keepdims=True)
    # x M x^T >= 0, but rounding may take it just below: never below 0.
    return tf.math.rsqrt(tf.maximum(mean_square, 0.0) + epsilon)


def moments_grad(xs, dm, states: bool = False):
    """The gradient of a moment matrix M (`centered`) from each row's
    dm = dL/d(x M x^T): the sum over steps and examples of (dm x)^T x / 2,
    as one matmul. xs (T, B, W) and dm (T, B, 1).

    With `states`, xs is (T + 1, B, W), h_0..h_T as the kernels record them,
    and dm is h_0..h_{T-1}'s: h_T gets a zero dm rather than xs a slice,
    which XLA would copy (TensorFlow's graph aliases it).
    """
    if states:
        dm = tf.concat([dm, tf.zeros_like(dm[:1])], 0)
    flat = tf.reshape(xs, [-1, dim(xs, 2)])
    return tf.matmul(flat * tf.reshape(0.5 * dm, [-1, 1]), flat, transpose_a=True)


def normalized_inputs(x, kernel, gamma, epsilon):
    """(x / rms(x W_c), W_c * gamma): their product is gamma * LN(x W), and
    only the narrow (T, B, F) side is ever scaled; the mean square comes
    from the quadratic form of `centered`."""
    centred, moments = centered(kernel)
    mean_square = tf.reduce_sum(project(x, moments) * x, -1, keepdims=True)
    inv = tf.math.rsqrt(tf.maximum(mean_square, 0.0) + epsilon)
    return x * inv, centred * gamma


class Steps:
    """(T, ...) TensorArrays a loop fills one step at a time, by name."""

    def __init__(self, size, names):
        self.buffers = {k: tf.TensorArray(tf.float32, size=size) for k in names}

    @staticmethod
    def write(buffers: dict, t, values: dict) -> dict:
        return {**buffers, **{k: buffers[k].write(t, v) for k, v in values.items()}}

    @staticmethod
    def finish(buffers: dict) -> dict:
        # Stacked tensors, not the TensorArrays: a gradient function that
        # captures TensorList variants cannot be written into a SavedModel.
        return {k: b.stack() for k, b in buffers.items()}
