"""`LayerNormLSTM`'s JAX kernel against Keras's generic loop and JAX's LSTM.

    python benchmarks/jax_kernel.py
    python benchmarks/jax_kernel.py --quick

In one JAX process (the script sets KERAS_BACKEND=jax before importing
Keras), each candidate is put in `benchmarks/backend_speed.py`'s model,
`Input((T, features)) -> layer(units) -> Dense(1)`, compiled with SGD and
MSE (`jit_compile="auto"`: XLA), and timed with `train_on_batch` at batch 64
and `predict_on_batch` at batch 1 and 256; repetitions of all candidates are
interleaved and medians reported. Candidates:

- `keras.LSTM`: JAX's own `keras.layers.LSTM` (the ratios' base);
- `LayerNormLSTM generic`: the cell inside Keras's generic loop
  (`jax.lax.scan` differentiated by JAX), the path before the kernel;
- `LayerNormLSTM kernel, autodiff`: the kernel's forward (input side
  hoisted, one scan), differentiated by JAX;
- `LayerNormLSTM kernel`: the same with its `jax.custom_vjp` backward pass
  (`jax_lstm_kernel.fused_loop`).

Results: `benchmarks/results/jax_kernel.{json,md}`, with the command,
machine, date and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The timing loop is backend_speed.py's, so the two tables measure alike.
from backend_speed import time_candidates  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def candidates():
    import keras

    from recurrent_zoo.layers import LayerNormLSTM, jax_lstm_kernel

    class Generic(LayerNormLSTM):
        def fused_loop(self, *args):
            return None

    class Autodiff(LayerNormLSTM):
        def fused_loop(self, *args):
            return jax_lstm_kernel.fused_loop(self, *args, custom_gradient=False)

    class Kernel(LayerNormLSTM):
        def fused_loop(self, *args):
            return jax_lstm_kernel.fused_loop(self, *args, custom_gradient=True)

    return {
        "keras.LSTM": keras.layers.LSTM,
        "LayerNormLSTM generic": Generic,
        "LayerNormLSTM kernel, autodiff": Autodiff,
        "LayerNormLSTM kernel": Kernel,
    }


def measure(args: argparse.Namespace) -> list[dict]:
    rows = time_candidates(candidates(), args)
    base = {key: rows[0][key] for key in ("train_s", "b1_s", "b256_s")}
    generic = {key: rows[1][key] for key in base}
    for row in rows:
        for key in base:
            row[key.replace("_s", "_vs_keras_lstm")] = base[key] / row[key]
            row[key.replace("_s", "_vs_generic")] = generic[key] / row[key]
    return rows


def markdown(rows: list[dict], record: dict, args: argparse.Namespace) -> str:
    lines = [
        "# LayerNormLSTM's JAX kernel",
        "",
        f"`{record['command']}` on {record['machine']['cpu']}, {record['date']}, "
        f"load average {record['load_average']} before / "
        f"{record['load_average_after']} after.",
        f"JAX {record['jax']}, Keras {record['keras']}, XLA on the CPU. "
        f"Batch 64 (training), {args.steps} steps, {args.features} features, "
        f"{args.units} units; medians of {args.repeats} interleaved rounds. "
        "Ratios: time of JAX's `keras.layers.LSTM` (or of the generic loop) "
        "over the candidate's, in the same process (above 1: faster).",
        "",
        "| layer | train step (ms) | vs keras.LSTM | vs generic | "
        "batch-1 (ms) | vs keras.LSTM | vs generic | "
        "batch-256 (ms) | vs keras.LSTM | vs generic |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["layer"]]
        for key, scale, digits in (("train", 1e3, 1), ("b1", 1e3, 2), ("b256", 1e3, 1)):
            cells += [
                f"{scale * r[key + '_s']:.{digits}f}",
                f"{r[key + '_vs_keras_lstm']:.2f}x",
                f"{r[key + '_vs_generic']:.2f}x",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.features, args.units, args.repeats = 8, 4, 4, 1
    load = os.getloadavg()
    rows = measure(args)
    import jax
    import keras

    from recurrent_zoo.environment import machine_info, run_record

    record = {**run_record(sys.argv if argv is None else [__file__, *argv])}
    record["machine"] = machine_info()
    record["load_average"] = " ".join(f"{v:.2f}" for v in load)
    record["load_average_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    record["jax"], record["keras"] = jax.__version__, keras.__version__
    name = "jax_kernel_quick" if args.quick else "jax_kernel"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({**record, "rows": rows}, indent=2) + "\n"
    )
    text = markdown(rows, record, args)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
