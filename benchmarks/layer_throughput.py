"""Training throughput of recurrent_zoo layers against their Keras built-ins.

    python benchmarks/layer_throughput.py            # full run, writes results
    python benchmarks/layer_throughput.py --quick    # smoke run, writes nothing

Each pair is trained side by side in one process, at a realistic text shape
(batch 64, 200 steps, 64 input features, 128 units), with `model.fit` on the
same in-memory batches: warm-up epochs are excluded, each model is built
several times (one build can run steadily ~2x slower than another on this
shared machine), epochs of all candidates are interleaved so machine noise
hits them alike, and the median and the best epoch are reported. Every
candidate is measured with XLA off and on (`jit_compile`),
because Keras's default (`"auto"`) turns XLA on for these models and XLA is
not always the faster choice on a CPU. Ratios compare each recurrent_zoo
layer with its built-in at the same setting and with the built-in's best.

Results: `benchmarks/results/layer_throughput.{json,md}` with the command,
machine, versions and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recurrent_zoo import layers as rz  # noqa: E402
from recurrent_zoo.environment import (  # noqa: E402
    cpu_steal_fraction,
    machine_info,
    read_cpu_times,
)

RESULTS = Path(__file__).resolve().parent / "results"


def candidates(units: int):
    """(pair name, label, layer factory, needs a query input)."""
    return [
        ("SimpleRNN", "recurrent_zoo.SimpleRNN", lambda: rz.SimpleRNN(units), False),
        ("SimpleRNN", "keras.SimpleRNN", lambda: keras.layers.SimpleRNN(units), False),
        ("LSTM", "recurrent_zoo.LayerNormLSTM", lambda: rz.LayerNormLSTM(units), False),
        (
            "LSTM",
            "recurrent_zoo.LayerNormLSTM(layer_norm=False)",
            lambda: rz.LayerNormLSTM(units, layer_norm=False),
            False,
        ),
        ("LSTM", "keras.LSTM", lambda: keras.layers.LSTM(units), False),
        (
            "Bidirectional",
            "recurrent_zoo.Bidirectional(LayerNormLSTM)",
            lambda: rz.Bidirectional(rz.LayerNormLSTM(units)),
            False,
        ),
        (
            "Bidirectional",
            "recurrent_zoo.Bidirectional(keras.LSTM)",
            lambda: rz.Bidirectional(keras.layers.LSTM(units)),
            False,
        ),
        (
            "Bidirectional",
            "keras.Bidirectional(LSTM)",
            lambda: keras.layers.Bidirectional(keras.layers.LSTM(units)),
            False,
        ),
        (
            "Attention",
            "recurrent_zoo.BahdanauAttention",
            lambda: rz.BahdanauAttention(units),
            True,
        ),
        (
            "Attention",
            "keras.AdditiveAttention",
            lambda: keras.layers.AdditiveAttention(),
            True,
        ),
    ]


def build(factory, query: bool, shape, jit: bool) -> keras.Model:
    steps, features = shape
    if query:
        # Attention over a sequence of `steps` keys with 16 decoder queries.
        q = keras.Input((16, features))
        v = keras.Input((steps, features))
        model = keras.Model([q, v], factory()([q, v]))
    else:
        x = keras.Input((steps, features))
        model = keras.Model(x, factory()(x))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=jit)
    return model


def make_data(model, batch: int, batches: int, shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = batch * batches
    inputs = [
        rng.normal(size=(n, *i.shape[1:])).astype("float32") for i in model.inputs
    ]
    target = rng.normal(size=(n, *model.outputs[0].shape[1:])).astype("float32")
    data = tuple(inputs) if len(inputs) > 1 else inputs[0]
    return tf.data.Dataset.from_tensor_slices((data, target)).batch(batch).cache()


def measure(args) -> list[dict]:
    shape = (args.steps, args.features)
    rows = []
    for jit in (False, True):
        entries = []
        for pair, label, factory, query in candidates(args.units):
            if args.only and pair not in args.only:
                continue
            # Each candidate is built several times: on this shared 2-core
            # machine one build of a model can run steadily ~2x slower than
            # another build of the same model (thread scheduling), so a
            # single build would make any ratio a coin toss.
            for build_index in range(args.builds):
                model = build(factory, query, shape, jit)
                data = make_data(model, args.batch, args.batches, shape)
                start = time.perf_counter()
                model.fit(data, epochs=1, verbose=0)
                first = time.perf_counter() - start
                model.fit(data, epochs=1, verbose=0)  # warm-up
                entries.append({"pair": pair, "layer": label, "build": build_index,
                                "model": model, "data": data, "first_epoch_s": first,
                                "times": []})  # fmt: skip
        for _ in range(args.repeats):
            for entry in entries:
                start = time.perf_counter()
                entry["model"].fit(entry["data"], epochs=1, verbose=0)
                entry["times"].append(time.perf_counter() - start)
        labels = list(dict.fromkeys(entry["layer"] for entry in entries))
        for label in labels:
            mine = [entry for entry in entries if entry["layer"] == label]
            times = [t for entry in mine for t in entry["times"]]
            sequences = args.batch * args.batches
            rows.append({
                "pair": mine[0]["pair"], "layer": label, "jit_compile": jit,
                "sequences_per_s": sequences / statistics.median(times),
                "sequences_per_s_best": sequences / min(times),
                "epoch_s_by_build": [entry["times"] for entry in mine],
                "first_epoch_s_by_build": [entry["first_epoch_s"] for entry in mine],
            })  # fmt: skip
            median, best = rows[-1]["sequences_per_s"], rows[-1]["sequences_per_s_best"]
            print(f"{label:48s} jit={jit!s:5s} {median:8.1f} seq/s median, "
                  f"{best:8.1f} best", flush=True)  # fmt: skip
        keras.backend.clear_session()
    return rows


def add_ratios(rows: list[dict]) -> None:
    """Ratios to the built-in of the pair, from medians and from best epochs.

    The best (fastest) epoch is the one least disturbed by other tenants of a
    shared machine, so its ratio is the steadier of the two.
    """
    for row in rows:
        builtins = [
            r
            for r in rows
            if r["pair"] == row["pair"] and r["layer"].startswith("keras.")
        ]
        for key, suffix in (("sequences_per_s", ""), ("sequences_per_s_best", "_best")):
            same = [r for r in builtins if r["jit_compile"] == row["jit_compile"]]
            if same:
                row[f"ratio_vs_builtin_same_jit{suffix}"] = row[key] / same[0][key]
            if builtins:
                row[f"ratio_vs_builtin_best_jit{suffix}"] = row[key] / max(
                    r[key] for r in builtins
                )


def write(rows: list[dict], args, info: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    command = "python " + " ".join(sys.argv)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    shape = {"batch": args.batch, "timesteps": args.steps,
             "features": args.features, "units": args.units}  # fmt: skip
    payload = {"command": command, "date": date, "machine": info, "shape": shape,
               "builds": args.builds, "repeats": args.repeats,
               "batches_per_epoch": args.batches, "results": rows}  # fmt: skip
    (RESULTS / "layer_throughput.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Training throughput: recurrent_zoo vs Keras built-ins",
        "",
        f"Command: `{command}`  ",
        f"Date: {date}  ",
        f"Machine: {info['cpu']} ({info['cpu_count']} cores), GPUs: "
        f"{info['gpus'] or 'none'}; TensorFlow {info['tensorflow']}, "
        f"Keras {info['keras']}; built-in path: {info['builtin_path']}  ",
        f"Shape: batch {args.batch}, {args.steps} steps, {args.features} "
        f"features, {args.units} units; {args.builds} builds of each model x "
        f"{args.repeats} interleaved epochs of {args.batches} batches; median "
        "and best epoch.",
        "",
        f"CPU time stolen by other guests during the run: "
        f"{100 * info['cpu_steal_fraction_during_run']:.1f}% (the machine is "
        "shared; the best-epoch columns are the steadier ones).",
        "",
        "Ratios are against the pair's Keras built-in: at the same `jit_compile` "
        "setting, and against the built-in's faster setting.",
        "",
        "| pair | layer | jit_compile | seq/s (median) | seq/s (best) "
        "| ratio same jit (median / best) | ratio vs built-in's best (median / best) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['pair']} | {row['layer']} | {row['jit_compile']} | "
            f"{row['sequences_per_s']:.1f} | {row['sequences_per_s_best']:.1f} | "
            f"{row['ratio_vs_builtin_same_jit']:.2f}x / "
            f"{row['ratio_vs_builtin_same_jit_best']:.2f}x | "
            f"{row['ratio_vs_builtin_best_jit']:.2f}x / "
            f"{row['ratio_vs_builtin_best_jit_best']:.2f}x |"
        )
    (RESULTS / "layer_throughput.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batches", type=int, default=4, help="batches per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="epochs per build")
    parser.add_argument("--builds", type=int, default=3, help="models per candidate")
    parser.add_argument("--only", nargs="*", help="pairs to run, e.g. LSTM SimpleRNN")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, no files")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.features, args.units = 4, 6, 3, 5
        args.batches, args.repeats, args.builds = 1, 1, 1
    before = read_cpu_times()
    rows = measure(args)
    info = machine_info()
    info["cpu_steal_fraction_during_run"] = cpu_steal_fraction(before, read_cpu_times())
    add_ratios(rows)
    if not args.quick:
        write(rows, args, info)


if __name__ == "__main__":
    main()
