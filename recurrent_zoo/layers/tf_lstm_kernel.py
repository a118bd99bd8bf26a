"""TensorFlow kernel for the (layer-normalized) LSTM recurrence.

The generic Keras loop differentiates through `tf.while_loop` automatically,
which pushes every intermediate of every step onto stacks and replays them.
This kernel supplies its own back-propagation through time (the derivation of
`recurrent_zoo.reference.layer_norm_lstm`, rearranged as below) so that both
loops do as few operations per step as the recurrence allows, and a training
step keeps little more than Keras's own LSTM keeps:

- In training each step multiplies x_t by W and h_{t-1} by K itself: no
  (T, B, 4H) input projection is held, nor streamed through memory (the
  inference loop computes x W for all steps first when that fits in cache).
- Both normalizations of matmul outputs act on the narrow side. With the
  rows of a kernel centred (W_c = W - rowmean(W)), x W_c is x W minus its
  mean over the gates, and mean((x W_c)^2) is the quadratic form
  x (W_c W_c^T / 4H) x^T; so gamma * LN(x W) = (x / rms) (W_c * gamma). The
  4H-wide products are never normalized, centred or scaled: the input side
  costs one (T, B, F) pass, the recurrent side one H-wide multiply per step.
- The forward loop records h, c, the four gates and three statistics per
  example (1/rms of h U_c, mean and 1/std of c_t); the backward loop rebuilds
  LN(c_t) and tanh(.) from them. Each record is its own TensorArray: stacking
  one briefly holds it twice, and H-wide records peak lower than 4H-wide.
- The backward loop accumulates dW, dK and db step by step (as Keras's
  loop does), so no (T, B, 4H) gradient is materialized.
- A layer that returns only its last state asks for no output sequence and
  receives no (T, B, H) gradient for one.
- With `xla`, a training call of fixed length runs both loops compiled by
  XLA, which fuses each step's small operations (`tf_kernel_parts.
  loop_compiler` says where that is safe); the gradient between them stays
  a graph op, so the two loops pass each other the same records. Inside
  Keras's predict, evaluate and fit steps the inference loop compiles too
  (`tf_kernel_parts.inference_compiler`); elsewhere, and so in every
  export, it keeps plain ops.

The state, the statistics and the accumulated gradients are always
float32: under a mixed-precision policy the inputs are cast up and the
outputs back, so the cell state and the gradient sums never lose precision
over long sequences. The step matmuls take float32 operands, except under
a bfloat16 policy, where they take bfloat16 ones and still return float32
products (`tf_kernel_parts.matmul_dtype`: faster on a CPU with AMX and
on a GPU); h_{t-1} then enters h U rounded to 8 bits, as it would in
Keras's own LSTM, while c_t, which carries the long-range memory, is not
rounded. On a GPU the float32 matmuls use TF32 tensor cores where enabled.

Gate order is Keras's: i, f, g (candidate), o.
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_zoo.layers.tf_kernel_parts import (
    Steps,
    centered,
    dim,
    inference_compiler,
    input_share,
    inverse_rms,
    inverse_rms_of,
    loop_compiler,
    matmul,
    matmul_dtype,
    moments_grad,
    normalized_inputs,
    time_index,
)


def _normalize(x, epsilon, mean=None):
    if mean is None:
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    deviation = x - mean
    inv_std = tf.math.rsqrt(
        tf.reduce_mean(tf.square(deviation), axis=-1, keepdims=True) + epsilon
    )
    return deviation * inv_std, inv_std


def _normalize_grad(dxhat, xhat, inv_std):
    """d/dx of xhat = (x - mean) * inv_std, given dL/dxhat."""
    return inv_std * (
        dxhat
        - tf.reduce_mean(dxhat, axis=-1, keepdims=True)
        - xhat * tf.reduce_mean(dxhat * xhat, axis=-1, keepdims=True)
    )


def lstm_recurrence(
    inputs,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    bias=None,
    input_gamma=None,
    recurrent_gamma=None,
    cell_gamma=None,
    cell_beta=None,
    mask=None,
    epsilon=1e-3,
    record=True,
    sequences=True,
    reverse=False,
    xla=False,
):
    """Runs the LSTM over batch-major inputs.

    Computes, for t = 0..T-1 (LN = normalization over the feature axis; with
    all gains None the LSTM is plain and every LN and gain is dropped):

        z_t = gamma_x * LN(x_t W) + gamma_h * LN(h_{t-1} U) + b
        i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(gamma_c * LN(c_t) + beta_c)

    Where `mask[t, b]` is False the step is skipped: h and c carry over.

    Args:
        inputs: (B, T, F) inputs x_t (after any dropout).
        h0, c0: (B, H) initial states.
        kernel: (F, 4H) W; recurrent_kernel: (H, 4H) U.
        bias: (4H,) or None.
        input_gamma, recurrent_gamma: (4H,); cell_gamma, cell_beta: (H,);
            all None for a plain LSTM.
        mask: optional (T, B) bool, in processing order.
        epsilon: normalization epsilon.
        record: keep what the hand-written backward pass needs at every
            step. False (inference) runs a lean forward loop instead: still
            differentiable, by TensorFlow's generic while_loop gradient.
        sequences: False skips the (T, B, H) outputs (hs is then None): a
            layer that returns only its last state keeps no output sequence
            and receives no gradient for one.
        reverse: process the steps last to first (hs in processing order).
        xla: compile a training call's two loops with XLA where it may
            (`tf_kernel_parts.loop_compiler`), and the inference loop
            inside Keras's own steps (`inference_compiler`).

    Returns:
        (hs, h_T, c_T) with hs of shape (T, B, H), in the inputs' dtype.
    """
    dtype = tf.convert_to_tensor(inputs).dtype

    def f32(t):
        return None if t is None else tf.cast(tf.convert_to_tensor(t), tf.float32)

    x, h0, c0, kernel, recurrent, bias = map(
        f32, (inputs, h0, c0, kernel, recurrent_kernel, bias)
    )
    units = tf.shape(h0)[-1]
    layer_norm = recurrent_gamma is not None
    if layer_norm:
        x, kernel = normalized_inputs(x, kernel, f32(input_gamma), epsilon)
        recurrent, moments = centered(recurrent)
        recurrent = recurrent * f32(recurrent_gamma)
        gains = (moments, f32(cell_gamma), f32(cell_beta))
    else:
        gains = (tf.zeros([0]),) * 3
    bias = tf.zeros([4 * units]) if bias is None else bias
    masked = mask is not None
    if not masked:
        mask = tf.zeros([0, 0], tf.bool)
    options = (layer_norm, masked, sequences, reverse, epsilon, matmul_dtype(dtype))
    tensors = (x, kernel, bias, h0, c0, recurrent, *gains, mask)
    if record:
        outputs = _recurrence(options, *tensors, loops=loop_compiler(xla, inputs))
    else:
        outputs = inference_compiler(xla, inputs)(_forward)(options, *tensors)
    if record and not sequences:
        outputs = (None, *outputs)
    return tuple(None if t is None else tf.cast(t, dtype) for t in outputs)


# Floats of a (T, B, 4H) input share that still stay in a CPU's cache.
_CACHED_FLOATS = 2**18


def _cell(layer_norm, masked, epsilon, t, h, c, z_x, kernel, gains, mask):
    """One step: (h_t, c_t, record) with what the backward pass reads.

    z_x is the input's share x_t W + b. With layer normalization `kernel` is
    K = U_c * gamma_h and gains[0] is M = U_c U_c^T / 4H: h U_c / rms(h U_c)
    is (h / rms) U_c, with rms(h U_c)^2 = h M h^T, so the normalization
    scales the H-wide h before the matmul instead of the 4H-wide product.
    gains[0] None means `kernel` is [K | M] (`_joined_recurrent_share`).
    """
    moments, gamma_c, beta_c = gains
    if layer_norm and moments is None:
        inv, z_h = _joined_recurrent_share(h, kernel, epsilon)
        z = z_x + z_h
    elif layer_norm:
        inv = inverse_rms(h, moments, epsilon)
        z = z_x + matmul(h * inv, kernel, kernel.dtype)
    else:
        z = z_x + matmul(h, kernel, kernel.dtype)
    # Activations on the H-wide gates (measured faster on a CPU than one
    # sigmoid over all 4H with the candidate rescaled).
    z_i, z_f, z_g, z_o = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
    c_new = f * c + i * g
    if layer_norm:
        c_mean = tf.reduce_mean(c_new, -1, keepdims=True)
        c_hat, c_inv = _normalize(c_new, epsilon, c_mean)
        y = tf.tanh(gamma_c * c_hat + beta_c)
        # Statistics, not normalized copies: c_hat and y are rebuilt from c.
        record = {"stats": tf.concat([inv, c_mean, c_inv], -1)}
    else:
        y = tf.tanh(c_new)
        record = {}
    # One record per gate: stacking a record briefly holds it twice, and
    # four H-wide records peak lower than one 4H-wide one.
    record.update(i=i, f=f, g=g, o=o)
    h_new = o * y
    if masked:
        keep = tf.expand_dims(mask[t], -1)
        h_new = tf.where(keep, h_new, h)
        c_new = tf.where(keep, c_new, c)
    return h_new, c_new, record


def _joined_recurrent_share(h, joined, epsilon):
    """(1/rms, LN(h U_c) * gamma_h) from one matmul h [K | M]: the H-wide
    h M beside the 4H-wide h K, scaled after the product rather than h
    before it (measured 1.1x faster than two matmuls at batch 256 and 1.3x
    at batch 1, for the inference loop, which records neither)."""
    both = matmul(h, joined, joined.dtype)
    width = joined.shape[1] - joined.shape[0]  # 4H, static: no op a step
    z_h, h_moments = both[:, :width], both[:, width:]
    inv = inverse_rms_of(h, h_moments, epsilon)
    return inv, z_h * inv


def _forward(options, x, w, b, h0, c0, kernel, *rest):
    layer_norm, masked, sequences, reverse, epsilon, precision = options
    moments, *gains, mask = rest
    x, w, kernel, moments = (tf.cast(t, precision) for t in (x, w, kernel, moments))
    if layer_norm:  # one matmul a step (`_joined_recurrent_share`)
        kernel, moments = tf.concat([kernel, moments], axis=1), None
    gains = (moments, *gains)
    steps = tf.shape(x)[1]
    share = input_share(x, w, b, reverse, _CACHED_FLOATS)

    def step(t, h, c, outputs):
        h, c, _ = _cell(layer_norm, masked, epsilon, t, h, c, share(t),
                        kernel, gains, mask)  # fmt: skip
        return t + 1, h, c, outputs.write(t, h) if sequences else outputs

    _, h_last, c_last, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, c0, tf.TensorArray(tf.float32, size=steps if sequences else 0)),
        maximum_iterations=steps,
    )
    return (outputs.stack() if sequences else None), h_last, c_last


def _recurrence(options, *tensors, loops):
    """The recording forward loop, differentiated by `_backward`; `loops`
    (`tf_kernel_parts.loop_compiler`) may compile both loops with XLA."""
    sequences, precision = options[2], options[5]

    @tf.custom_gradient
    def run(x, w, b, h0, c0, kernel, moments, gamma_c, beta_c, mask):
        x_low, w_low, kernel_low, moments_low = (
            tf.cast(t, precision) for t in (x, w, kernel, moments)
        )
        gains = (moments_low, gamma_c, beta_c)
        h_last, c_last, saved = loops(_record)(
            options, x_low, w_low, b, h0, c0, kernel_low, gains, mask
        )

        def grad(*upstream):
            d_hs, *upstream = upstream if sequences else (None, *upstream)
            return loops(_backward)(
                options, saved, (x, w, kernel, *gains, mask), (d_hs, *upstream)
            )

        # Outside the compiled loop: there this slice aliases `saved`.
        hs = saved["h"][1:]
        outputs = (hs, h_last, c_last) if sequences else (h_last, c_last)
        return outputs, grad

    return run(*tensors)


def _record(options, x, w, b, h0, c0, kernel, gains, mask):
    """The forward loop of training: (h_T, c_T, what `_backward` reads)."""
    layer_norm, masked, _, reverse, epsilon, precision = options
    steps = tf.shape(x)[1]
    names = ["i", "f", "g", "o"]
    if layer_norm:
        names.append("stats")
    # h and c with h_0, c_0 in front: h_{t-1} and h_t are then two views.
    states = Steps(steps + 1, ["h", "c"])
    records = Steps(steps, names)

    def step(t, h, c, state_buffers, record_buffers):
        x_t = x[:, time_index(t, steps, reverse)]
        z_x = matmul(x_t, w, precision) + b  # no (T, B, 4H) is held
        h, c, record = _cell(layer_norm, masked, epsilon, t, h, c, z_x,
                             kernel, gains, mask)  # fmt: skip
        state_buffers = states.write(state_buffers, t + 1, {"h": h, "c": c})
        record_buffers = records.write(record_buffers, t, record)
        return t + 1, h, c, state_buffers, record_buffers

    first = states.write(states.buffers, 0, {"h": h0, "c": c0})
    _, h_last, c_last, state_buffers, record_buffers = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, c0, first, records.buffers),
        maximum_iterations=steps,
    )
    saved = {**states.finish(state_buffers), **records.finish(record_buffers)}
    return h_last, c_last, saved


def _tanh_grad(y, dy):
    """dy * (1 - y^2) for y = tanh(z): d/dz given dL/dy."""
    return tf.raw_ops.TanhGrad(y=y, dy=dy)


def _sigmoid_grad(y, dy):
    """dy * y (1 - y) for y = sigmoid(z): d/dz given dL/dy."""
    return tf.raw_ops.SigmoidGrad(y=y, dy=dy)


def _gate_grads(saved, stats, t, dh_new, dc, keep):
    """Step t's gradients, given dh_new = dL/dh_t (zero where the step is
    masked: `keep` False) and dc, what the later steps send to c_t.

    Returns dz_t (B, 4H) for the gates' pre-activations; dL/dc_t f_t, what
    reaches c_{t-1} through the forget gate (dL/dc_t is dc plus the path
    through h_t, zero at a masked step); and, with layer normalization
    (`stats`: LN(c)'s per-step mean and inverse deviation, gain and bias),
    the step's gradients for LN(c)'s gain and bias (None without it).
    """
    i, f, g, o = (saved[k][t] for k in "ifgo")
    # The step's own c_t (at a skipped step the carried one: its gradient is
    # zero either way).
    c_t = saved["c"][t + 1]
    if stats is not None:
        c_mean, c_inv, gamma_c, beta_c = stats
        c_hat = (c_t - c_mean[t]) * c_inv[t]
        y = tf.tanh(gamma_c * c_hat + beta_c)
    else:
        y = tf.tanh(c_t)
    # TanhGrad and SigmoidGrad (what TensorFlow's own gradients use): one op
    # each for dy (1 - y^2) and dy a (1 - a), on H-wide tensors; measured
    # 4-5% faster training (6-8% without layer normalization) than those
    # products over the 4H-wide concatenation of the gates.
    d_y = _tanh_grad(y, dh_new * o)
    d_cell = None
    if stats is not None:
        d_cell = tf.reduce_sum(tf.concat([d_y * c_hat, d_y], -1), 0)
        dc_new = dc + _normalize_grad(d_y * gamma_c, c_hat, c_inv[t])
    else:
        dc_new = dc + d_y
    if keep is not None:
        dc_new = tf.where(keep, dc_new, 0.0)
    dz = tf.concat(
        [
            _sigmoid_grad(i, dc_new * g),
            _sigmoid_grad(f, dc_new * saved["c"][t]),
            _tanh_grad(g, dc_new * i),
            _sigmoid_grad(o, dh_new * y),
        ],
        -1,
    )
    return dz, dc_new * f, d_cell


def _backward(options, saved, inputs, upstream):
    """Gradients of `_recurrence` for its inputs.

    The weight gradients are accumulated step by step, as Keras's own loop
    does (x_t^T dz_t, (inv_t h_{t-1})^T dz_t and the sum of dz_t), so no
    (T, B, 4H) gradient is ever materialized.
    Through the recurrent normalization, with s = h K (K = U_c * gamma_h),
    m = h M h^T (M = U_c U_c^T / 4H) and inv = (m + eps)^-1/2:
    dh = inv q + 2 dm (h M) with q = dz K^T and dm = -inv^3 (h . q) / 2,
    dK = sum (inv h)^T dz and dM = sum (dm h)^T h, so no step rebuilds the
    4H-wide h U_c.
    """
    layer_norm, masked, _, reverse, epsilon, precision = options
    x, w, kernel, moments, gamma_c, beta_c, mask = inputs
    d_hs, d_h_last, d_c_last = upstream
    steps = tf.shape(x)[1]
    units = dim(saved["c"], 2)
    low = (x, tf.transpose(w), tf.transpose(kernel), moments)
    x, w_t, kernel_t, moments = (tf.cast(t, precision) for t in low)
    stats = None
    if layer_norm:
        inv, c_mean, c_inv = tf.split(saved["stats"], 3, axis=-1)
        neg_inv_cubed = -(inv**3)
        stats = (c_mean, c_inv, gamma_c, beta_c)
    grads = Steps(steps, ["dx", "dm"] if layer_norm else ["dx"])

    def back(t, dh, dc, d_w, d_kernel, d_b, d_cell, buffers):
        if d_hs is not None:
            dh = dh + d_hs[t]
        keep = tf.expand_dims(mask[t], -1) if masked else None
        dh_new = dh if keep is None else tf.where(keep, dh, 0.0)
        dz, dc_prev, d_cell_t = _gate_grads(saved, stats, t, dh_new, dc, keep)
        if layer_norm:
            d_cell += d_cell_t
        # Separate matmuls and accumulators: on a CPU one [W; K]-wide
        # accumulator spills out of cache and costs 3x two narrower ones.
        dx, q = matmul(dz, w_t, precision), matmul(dz, kernel_t, precision)
        h_t = saved["h"][t]  # h_{t-1}: h_0 is in front
        if layer_norm:
            inv_t = inv[t]
            # 2 dm, dm = dL/d(h M h^T); h M is cheaper rebuilt than stored.
            dm = neg_inv_cubed[t] * tf.reduce_sum(h_t * q, -1, keepdims=True)
            dh_prev = inv_t * q + dm * matmul(h_t, moments, precision)
            h_in = h_t * inv_t
            buffers = grads.write(buffers, t, {"dm": dm})
        else:
            dh_prev = q
            h_in = h_t
        index = time_index(t, steps, reverse)
        buffers = grads.write(buffers, index, {"dx": dx})
        x_t = x[:, index]
        d_w += matmul(x_t, dz, precision, transpose_a=True)
        d_kernel += matmul(h_in, dz, precision, transpose_a=True)
        d_b += tf.reduce_sum(dz, 0)
        if masked:
            dh_prev = tf.where(keep, dh_prev, dh)
            dc_prev = tf.where(keep, dc_prev, dc)
        return t - 1, dh_prev, dc_prev, d_w, d_kernel, d_b, d_cell, buffers

    initial = (
        steps - 1, d_h_last, d_c_last, tf.zeros_like(w), tf.zeros_like(kernel),
        tf.zeros([4 * units]), tf.zeros([2 * units]), grads.buffers,
    )  # fmt: skip
    _, dh0, dc0, d_w, d_kernel, d_b, d_cell, buffers = tf.while_loop(
        lambda t, *_: t >= 0, back, initial, maximum_iterations=steps
    )
    out = grads.finish(buffers)
    out["dx"] = tf.transpose(out["dx"], (1, 0, 2))
    if not layer_norm:
        empty = tf.zeros([0])
        return out["dx"], d_w, d_b, dh0, dc0, d_kernel, empty, empty, empty, None
    d_moments = moments_grad(saved["h"], out["dm"], states=True)
    d_gamma_c, d_beta_c = tf.split(d_cell, 2)
    return (out["dx"], d_w, d_b, dh0, dc0, d_kernel, d_moments, d_gamma_c,
            d_beta_c, None)  # fmt: skip
