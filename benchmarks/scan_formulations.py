"""Which scan to run a minGRU on: formulations of the same recurrence, timed.

    python benchmarks/scan_formulations.py                  # T = 200 and 1,000
    python benchmarks/scan_formulations.py --steps 4096 --repeats 3
    python benchmarks/scan_formulations.py --quick          # smoke run

Results (not for --quick): `benchmarks/results/scan_formulations.{json,md}`.

Every candidate computes a minGRU's states h_1..h_T (h_t = (1 - z_t) h_{t-1}
+ z_t g(W_h x_t + b_h)) from the same weights, and is timed as a compiled
training step (forward, a loss over all states, gradients of the weights),
repetitions of all candidates interleaved, medians reported, each relative
to `recurrent_zoo.MinGRU`'s own scan in the same run:

- `parallel_scan` (the layer's): Blelloch's even/odd scan on (a, b) in
  linear space, with its gradient written as the reverse scan;
- the same scan differentiated by TensorFlow (`parallel_scan._scan`);
- `keras.ops.associative_scan` over the (a, b) pairs;
- the paper's log space: log h = a* + logcumsumexp(log b - a*), the
  logcumsumexp as `keras.ops.associative_scan(keras.ops.logaddexp)`;
- the same with TensorFlow's own `tf.math.cumulative_logsumexp` (not a
  `keras.ops`: for comparison only);
- the layer's scan compiled by XLA (what its training step ran before
  2026-12-08, and still runs where a GPU is visible), and the loop over the
  steps compiled by XLA that it runs on a CPU
  (`tf_min_rnn_kernel.sequential_recurrence`);
- Keras's sequential loop, `keras.layers.RNN(MinGRUCell)`;
- `keras.layers.LSTM` of the same size, for scale.

All candidates' states are checked against each other before timing (the
log-space ones take h_0 = 0, which their form needs to be positive).
"""

from __future__ import annotations

import argparse
import json
import sys

import harness
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from recurrent_zoo.environment import run_record
from recurrent_zoo.layers import (
    MinGRU,
    MinGRUCell,
    parallel_scan,
    tf_min_rnn_kernel,
)


def _written_gradient(cell, x):
    a, b = cell.recurrence_inputs(x)
    return parallel_scan.linear_recurrence(a, b, ops.zeros_like(b[:, 0]))


def _compiled(recurrence):
    """The gates outside, the recurrence in a function XLA compiles."""
    compiled = tf.function(recurrence, jit_compile=True)

    def states(cell, x):
        a, b = cell.recurrence_inputs(x)
        return compiled(a, b, ops.zeros_like(b[:, 0]))

    return states


def _autodiff(cell, x):
    return parallel_scan._scan(*cell.recurrence_inputs(x), parallel_scan.DYNAMIC_LEVELS)


def _keras_associative_scan(cell, x):
    return ops.associative_scan(_combine, cell.recurrence_inputs(x), axis=1)[1]


def _combine(earlier, later):
    (a1, b1), (a2, b2) = earlier, later
    return a1 * a2, a2 * b1 + b2


def _log_coefficients(cell, x):
    """The paper's log-space gates: log(1 - z), log z + log g(k_h)."""
    projected = ops.matmul(x, cell.kernel) + cell.bias
    k_z, k_h = ops.split(projected, 2, axis=-1)
    log_g = ops.where(k_h >= 0, ops.log(ops.relu(k_h) + 0.5), -ops.softplus(-k_h))
    return -ops.softplus(k_z), -ops.softplus(-k_z) + log_g


def _log_space(logcumsumexp):
    def states(cell, x):
        log_a, log_b = _log_coefficients(cell, x)
        a_star = ops.cumsum(log_a, axis=1)
        return ops.exp(a_star + logcumsumexp(log_b - a_star))

    return states


FORMULATIONS = {
    "parallel_scan (written gradient)": _written_gradient,
    "parallel_scan, XLA": _compiled(parallel_scan.linear_recurrence),
    "sequential_recurrence, XLA (the layer on a CPU)": _compiled(
        tf_min_rnn_kernel.sequential_recurrence
    ),
    "parallel_scan, autodiff": _autodiff,
    "keras.ops.associative_scan": _keras_associative_scan,
    "log space, associative_scan(logaddexp)": _log_space(
        lambda v: ops.associative_scan(ops.logaddexp, v, axis=1)
    ),
    "log space, tf.math.cumulative_logsumexp": _log_space(
        lambda v: tf.math.cumulative_logsumexp(v, axis=1)
    ),
}
SEQUENTIAL = "keras.layers.RNN(MinGRUCell), sequential"
LSTM = "keras.layers.LSTM (reference)"


def build(args):
    """name -> (compiled training step, inputs), all on one MinGRU's weights."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.steps, args.features)), "float32")
    layer = MinGRU(args.units, return_sequences=True)
    layer(x[:, :1])
    sequential = keras.layers.RNN(MinGRUCell(args.units), return_sequences=True)
    sequential(x[:, :1])
    sequential.set_weights(layer.get_weights())
    lstm = keras.layers.LSTM(args.units, return_sequences=True)
    lstm(x[:, :1])
    models = {name: _bound(fn, layer.cell) for name, fn in FORMULATIONS.items()}
    models[SEQUENTIAL], models[LSTM] = sequential, lstm
    variables = {name: layer.trainable_variables for name in FORMULATIONS}
    variables[SEQUENTIAL] = sequential.trainable_variables
    variables[LSTM] = lstm.trainable_variables
    return models, variables, x


def _bound(formulation, cell):
    return lambda x: formulation(cell, x)


def train_step(model, variables):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            states = model(x)
            loss = tf.reduce_mean(tf.square(states))
        return loss, tape.gradient(loss, variables)

    return step


def check_agreement(models, x) -> None:
    reference = np.asarray(models[SEQUENTIAL](x))
    for name, model in models.items():
        if name != LSTM:
            np.testing.assert_allclose(
                model(x), reference, atol=1e-4, rtol=1e-4, err_msg=name
            )


def measure(args) -> list[dict]:
    models, variables, x = build(args)
    check_agreement(models, x)
    steps = {name: train_step(models[name], variables[name]) for name in models}
    for step in steps.values():
        for _ in range(1 + args.warmup):
            harness.run(step, x)
    times = harness.interleaved({k: (s, x) for k, s in steps.items()}, args.repeats)
    base = harness.median(times["parallel_scan (written gradient)"])
    rows = []
    for name, seconds in times.items():
        median = harness.median(seconds)
        row = {"formulation": name, "steps": args.steps}
        row.update(train_step_ms=1e3 * median, relative=median / base)
        rows.append(row)
        print(
            f"T={args.steps:5d}  {name:44s} {1e3 * median:8.1f} ms  "
            f"{median / base:5.2f}x",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="*", default=[200, 1000])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.features, args.units = [7], 2, 3, 4
        args.repeats, args.warmup = 1, 0
    rows = []
    for steps in args.steps:
        rows += measure(argparse.Namespace(**{**vars(args), "steps": steps}))
    if not args.quick:
        argv = sys.argv[1:] if argv is None else argv
        write(rows, args, run_record(["benchmarks/scan_formulations.py", *argv]))
    return rows


def write(rows: list[dict], args: argparse.Namespace, record: dict) -> None:
    """`benchmarks/results/scan_formulations.{json,md}`, with the command."""
    harness.RESULTS.mkdir(exist_ok=True)
    stem = harness.RESULTS / "scan_formulations"
    stem.with_suffix(".json").write_text(
        json.dumps({**record, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# minGRU scan formulations: a compiled training step, timed",
        "",
        f"`{record['command']}` on {record['machine']['cpu']}, {record['date']}.",
        f"Batch {args.batch}, {args.features} features, {args.units} units; "
        f"medians of {args.repeats} interleaved repetitions. Relative: time over "
        "the layer's own scan (`parallel_scan (written gradient)`) in the same "
        "run (above 1: slower).",
        "",
        "| T | formulation | train step (ms) | relative |",
        "|---:|---|---:|---:|",
    ]
    lines += [
        f"| {r['steps']} | {r['formulation']} | {r['train_step_ms']:.1f} "
        f"| {r['relative']:.2f}x |"
        for r in rows
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
