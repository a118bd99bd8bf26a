"""Linear recurrences h_t = a_t * h_{t-1} + b_t over a whole sequence at once.

What minGRU and minLSTM reduce to (`min_rnn.py`): the gates depend on x_t
alone, so a_t and b_t are known for every step before the recurrence starts,
and since (a1, b1) then (a2, b2) composes to (a1 * a2, a2 * b1 + b2), an
associative operation, all T states come out of a parallel scan in
O(log T) sequential depth instead of T dependent steps.

The scan runs in linear space, on a_t and b_t themselves, not in the log
space of Feng et al. (2024), whose `parallel_scan_log` computes

    log h_t = a*_t + logcumsumexp_s(log b_s - a*_s),  a*_t = sum_{k<=t} log a_k

That form needs log b_s, so b_s > 0: h~ > 0 (hence the paper's g()) and a
positive h_0; a signed h_0 or candidate needs the sum split by sign, and
the difference of the two parts cancels. Keras has no logcumsumexp, and one
built from `keras.ops.cumsum` with a single shift per sequence underflows:
log b_s - a*_s grows with s (by |k| at a step whose gate pre-activation is
k), so after subtracting the maximum, exp() of the early terms is 0 on long
sequences and the early states come out 0. In linear space nothing can
overflow: 0 <= a_t <= 1 for both cells, so a product of a's can only
underflow to 0, the value it tends to; and every partial combination
a2 * b1 + b2 is the state, from 0, of a stretch of the same recurrence. For
both cells b_t = (1 - a_t) * h~_t (and h_0 joins b_1 as a_1 * h_0), so such
a state is an average of candidates and h_0, never above their largest
magnitude, at any length. The scan is exact for any sign of h_0 and h~, and
a padded step is exactly the identity (a = 1, b = 0).

The scan is Blelloch's (1990) even/odd recursion: combine neighbouring
pairs, scan the T/2 results, fill in the other half; about 2T combinations
in total. Its gradient is written out: with g_t = dL/dh_t, the adjoint
lambda_t = g_t + a_{t+1} * lambda_{t+1} is the same recurrence run
backwards, and dL/db_t = lambda_t, dL/da_t = lambda_t * h_{t-1},
dL/dh_0 = a_1 * lambda_1. Differentiating the recursion's reshapes and
slices instead keeps every level and costs several times the forward pass
on TensorFlow's CPU.

`python benchmarks/scan_formulations.py` times this form against the same
scan differentiated automatically, `keras.ops.associative_scan`, the
paper's log space and a sequential loop
(`benchmarks/results/scan_formulations.md`).

On a CPU the parallel scan is no faster than a sequential loop over the
same cell (at 1,000 steps the loop was faster): it does about twice the
arithmetic, and two cores gain nothing from shorter dependency chains.
What it buys is O(log T) sequential depth instead of T, which pays where
many steps can run at once (accelerators);
the saving over an LSTM here comes from the cell (no recurrent matmul).
So on a CPU the TensorFlow training step runs the recurrence as a
compiled loop instead (`tf_min_rnn_kernel.sequential_recurrence`).

Sequence lengths unknown when a TensorFlow graph is traced (a functional
model's `None` time axis) take the same recursion for `DYNAMIC_LEVELS`
levels, padding odd lengths with an identity step, then finish whatever is
left (one step up to 2^DYNAMIC_LEVELS steps) with a doubling scan in a
while loop; every shape in it is fixed, so XLA compiles it too.
"""

from __future__ import annotations

from keras import ops

__all__ = ["linear_recurrence", "recurrence_gradient"]

# Halvings taken on a length unknown at tracing: enough to reduce sequences
# of up to 4,096 steps to one; longer ones finish in the doubling loop.
DYNAMIC_LEVELS = 12


def linear_recurrence(a, b, h0):
    """States h_1..h_T of h_t = a_t * h_{t-1} + b_t from h_0.

    Args:
        a, b: (batch, T, units) coefficients, any float dtype (all three
            arguments must share it).
        h0: (batch, units) initial state.

    Returns:
        (batch, T, units): h_t at every step t.
    """
    return _recurrence_with_gradient(a, b, h0)


def _with_initial_state(a, b, h0):
    # h_1 = a_1 * h_0 + b_1: h_0 joins the first step's constant term.
    first = b[:, :1] + a[:, :1] * ops.expand_dims(h0, 1)
    return ops.concatenate([first, b[:, 1:]], axis=1)


@ops.custom_gradient
def _recurrence_with_gradient(a, b, h0):
    h = _scan(a, _with_initial_state(a, b, h0), DYNAMIC_LEVELS)

    def grad(*args, upstream=None):
        if upstream is None:  # TensorFlow and JAX pass it positionally.
            (upstream,) = args
        return recurrence_gradient(a, h0, h, upstream, _reverse_scan)

    return h, grad


def _reverse_scan(a, b):
    return ops.flip(_scan(ops.flip(a, 1), ops.flip(b, 1), DYNAMIC_LEVELS), 1)


def recurrence_gradient(a, h0, h, upstream, backwards):
    """(dL/da, dL/db, dL/dh0) of h = linear_recurrence(a, b, h0).

    Args:
        a, h0, h: the recurrence's coefficients, initial and computed states.
        upstream: dL/dh, (batch, T, units).
        backwards: `backwards(a, b)` gives h_t = a_t h_{t+1} + b_t from the
            last step back, from h_{T+1} = 0 (any way of computing it).
    """
    # lambda_t = g_t + a_{t+1} lambda_{t+1}: the recurrence run backwards;
    # a_{T+1} meets lambda_{T+1} = 0, so any value does.
    a_next = ops.concatenate([a[:, 1:], ops.zeros_like(a[:, :1])], axis=1)
    adjoint = backwards(a_next, upstream)
    h_prev = ops.concatenate([ops.expand_dims(h0, 1), h[:, :-1]], axis=1)
    return adjoint * h_prev, adjoint, a[:, 0] * adjoint[:, 0]


def _halves(x):
    """(B, 2n, H) -> its even and odd steps, each (B, n, H)."""
    pairs = ops.reshape(x, (ops.shape(x)[0], -1, 2, x.shape[2]))
    return pairs[:, :, 0], pairs[:, :, 1]


def _scan(a, b, levels: int):
    """h_t = a_t h_{t-1} + b_t from h_0 = 0, by even/odd recursion."""
    length = a.shape[1]
    if length == 1:
        return b
    if length is None and levels == 0:
        return _doubling_scan(a, b)
    steps = ops.shape(a)[1]
    padded = length is None or length % 2 == 1
    if padded:
        # An identity step (a = 1, b = 0) makes the length even.
        a = ops.concatenate([a, ops.ones_like(a[:, :1])], axis=1)
        b = ops.concatenate([b, ops.zeros_like(b[:, :1])], axis=1)
        if length is None:  # Keep the pad only where the length was odd.
            even = 2 * ((steps + 1) // 2)
            a, b = a[:, :even], b[:, :even]
    a_even, a_odd = _halves(a)
    b_even, b_odd = _halves(b)
    # Steps 2k and 2k+1 combined are one step; its scan gives h at odd t.
    h_odd = _scan(a_even * a_odd, a_odd * b_even + b_odd, levels - 1)
    # Each even step follows the odd one before it (the first has none).
    h_even = ops.concatenate(
        [b_even[:, :1], a_even[:, 1:] * h_odd[:, :-1] + b_even[:, 1:]], axis=1
    )
    h = ops.reshape(
        ops.stack([h_even, h_odd], axis=2), (ops.shape(a)[0], -1, a.shape[2])
    )
    return h[:, :steps] if padded else h


def _doubling_scan(a, b):
    """Hillis & Steele's scan: after the round with shift k, each step holds
    the combination of the 2k steps ending there. Shapes never change, so
    it runs in a while loop of ceil(log2 T) rounds for any T."""
    steps = ops.shape(a)[1]
    position = ops.reshape(ops.arange(steps), (1, -1, 1))

    def shifted(x, shift, identity):
        earlier = ops.take(x, ops.maximum(ops.arange(steps) - shift, 0), axis=1)
        return ops.where(position >= shift, earlier, identity)

    def body(shift, a, b):
        b = b + a * shifted(b, shift, 0.0)
        a = a * shifted(a, shift, 1.0)
        return shift * 2, a, b

    _, _, b = ops.while_loop(lambda shift, a, b: shift < steps, body, (1, a, b))
    return b
