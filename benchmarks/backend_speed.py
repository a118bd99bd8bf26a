"""The layers' training and inference speed on each Keras backend.

    pip install -e ".[dev,backends]"
    python benchmarks/backend_speed.py                       # all backends
    python benchmarks/backend_speed.py --backends jax --quick

For each backend (TensorFlow, JAX, PyTorch; one child process each, since
Keras picks its backend once per process) every candidate layer is put in
the same small model, `Input((T, features)) -> layer(units) -> Dense(1)`,
compiled with SGD and MSE the way a user would (`jit_compile="auto"`:
XLA on JAX, TensorFlow's graph without XLA on a CPU, eager PyTorch), and
timed with `train_on_batch` at batch 64 and `predict_on_batch` at batch 1
and 256. Repetitions of all candidates of a backend are interleaved, so
machine noise hits them alike; medians are reported, and the ratios are
each time over that backend's own `keras.layers.LSTM` (above 1: faster)
in the same process. On JAX `LayerNormLSTM` runs its JAX kernel
(`recurrent_zoo.layers.jax_lstm_kernel`; `benchmarks/jax_kernel.py` sets it
beside the generic loop); otherwise off TensorFlow, `LayerNormLSTM`,
`LayerNormGRU` and `SimpleRNN` take Keras's generic loop (their fused
kernels are TensorFlow code); `MinGRU`/`MinLSTM` run the same `keras.ops`
scan everywhere.

Results: `benchmarks/results/backend_speed.{json,md}`, with the command,
machine and date.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
CANDIDATES = {
    "keras.LSTM": lambda keras, rz, u: keras.layers.LSTM(u),
    "keras.GRU": lambda keras, rz, u: keras.layers.GRU(u),
    "recurrent_zoo.LayerNormLSTM": lambda keras, rz, u: rz.LayerNormLSTM(u),
    "recurrent_zoo.LayerNormGRU": lambda keras, rz, u: rz.LayerNormGRU(u),
    "recurrent_zoo.SimpleRNN": lambda keras, rz, u: rz.SimpleRNN(u),
    "recurrent_zoo.MinGRU": lambda keras, rz, u: rz.MinGRU(u),
    "recurrent_zoo.MinLSTM": lambda keras, rz, u: rz.MinLSTM(u),
}


def _timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def time_candidates(makers: dict, args: argparse.Namespace) -> list[dict]:
    """Each layer in `Input -> layer -> Dense(1)`, timed interleaved.

    `makers` maps a label to a function of the unit count that returns the
    layer. Every model is traced at all three shapes first (the first
    call's time is kept apart), then rounds of all candidates alternate:
    two SGD `train_on_batch` steps at batch 64, three `predict_on_batch`
    at batch 1 and one at batch 256 each; medians in seconds.
    """
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, args.steps, args.features)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    x1, x256 = x[:1], np.concatenate([x] * 4)
    models, first = {}, {}
    for label, make in makers.items():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((args.steps, args.features))
        outputs = keras.layers.Dense(1)(make(args.units)(inputs))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        started = time.perf_counter()
        for batch in (x1, x256):  # trace/compile both shapes before timing
            model.predict_on_batch(batch)
        model.train_on_batch(x, y)
        first[label] = time.perf_counter() - started
        model.train_on_batch(x, y)  # warm-up
        models[label] = model
    times = {label: {"train": [], "b1": [], "b256": []} for label in models}
    for _ in range(args.repeats):
        for label, model in models.items():
            times[label]["train"] += _timed(lambda m=model: m.train_on_batch(x, y), 2)
            times[label]["b1"] += _timed(lambda m=model: m.predict_on_batch(x1), 3)
            times[label]["b256"] += _timed(lambda m=model: m.predict_on_batch(x256), 1)
    return [
        {
            "layer": label,
            "first_call_s": first[label],
            **{f"{k}_s": statistics.median(v) for k, v in series.items()},
        }
        for label, series in times.items()
    ]


def measure(args: argparse.Namespace) -> list[dict]:
    """In the child: every candidate on this process's backend."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from recurrent_zoo import layers as rz

    makers = {
        label: (lambda units, make=make: make(keras, rz, units))
        for label, make in CANDIDATES.items()
    }
    rows = [
        {"backend": keras.backend.backend(), **row}
        for row in time_candidates(makers, args)
    ]
    base = next(row for row in rows if row["layer"] == "keras.LSTM")
    for row in rows:
        for key in ("train_s", "b1_s", "b256_s"):
            row[key.replace("_s", "_vs_keras_lstm")] = base[key] / row[key]
    return rows


def markdown(rows: list[dict], record: dict, args: argparse.Namespace) -> str:
    lines = [
        "# Layer speed on each Keras backend",
        "",
        f"`{record['command']}` on {record['machine']['cpu']}, {record['date']}.",
        f"Batch 64 (training), {args.steps} steps, {args.features} features, "
        f"{args.units} units; medians of {args.repeats} interleaved rounds. "
        "Ratios: that backend's `keras.layers.LSTM` time over the layer's "
        "(above 1: faster), measured in the same process.",
        "",
        "| backend | layer | train step (ms) | vs keras.LSTM | "
        "batch-1 latency (ms) | vs | batch-256 latency (ms) | vs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['layer']} | {1e3 * r['train_s']:.1f} | "
            f"{r['train_vs_keras_lstm']:.2f}x | {1e3 * r['b1_s']:.2f} | "
            f"{r['b1_vs_keras_lstm']:.2f}x | {1e3 * r['b256_s']:.1f} | "
            f"{r['b256_vs_keras_lstm']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.features, args.units, args.repeats = 8, 4, 4, 1
    if args.child:
        print(json.dumps(measure(args)))
        return []
    rows = []
    for backend in args.backends:
        if importlib.util.find_spec(BACKENDS[backend]) is None:
            print(f"{backend}: not installed, skipped", file=sys.stderr)
            continue
        child = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
        child += ["--features", str(args.features), "--units", str(args.units)]
        child += ["--repeats", str(args.repeats)]
        env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run(child, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{backend} failed:\n{done.stderr[-3000:]}")
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    from recurrent_zoo.environment import machine_info, run_record

    record = {**run_record(sys.argv if argv is None else [__file__, *argv])}
    record["machine"] = machine_info()
    name = "backend_speed_quick" if args.quick else "backend_speed"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({**record, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / f"{name}.md").write_text(markdown(rows, record, args))
    print(markdown(rows, record, args))
    return rows


if __name__ == "__main__":
    main()
