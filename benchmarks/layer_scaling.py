"""How the layers' cost grows with sequence length, hidden size and batch size.

    python benchmarks/layer_scaling.py              # full run, writes results
    python benchmarks/layer_scaling.py --quick      # smoke run, writes nothing
    python benchmarks/layer_scaling.py --layers recurrent_zoo.MinGRU \
        recurrent_zoo.MinLSTM keras.LSTM            # the parallel-scan layers

From one base shape (batch 64, 200 steps, 64 input features, 128 units), one
dimension at a time is swept: sequence length 50 to 1,000, hidden size 32 to
1,024, batch size 1 to 256. At every point each layer's compiled training
step is timed (warm-up excluded, repetitions of all layers interleaved,
medians), and the throughput ratio of each recurrent_zoo layer to its Keras
built-in is taken from that same point. Also:

- linearity: time per sequence against sequence length, fitted with a line
  through least squares (R^2 reported), and the per-token cost at the longest
  length relative to the shortest;
- memory against sequence length: peak training memory (harness: a child
  process per layer), because back-propagation through time keeps every
  step's activations.

Results: `benchmarks/results/layer_scaling.{json,md}`, plots
`layer_scaling.png` and `layer_memory.png`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness
import keras
import numpy as np
from matplotlib.figure import Figure

LAYERS = (
    "recurrent_zoo.SimpleRNN",
    "keras.SimpleRNN",
    "recurrent_zoo.LayerNormLSTM",
    "keras.LSTM",
    "keras.GRU",
)
SWEEPS = {
    "steps": (50, 100, 200, 500, 1000),
    "units": (32, 64, 128, 256, 512, 1024),
    "batch": (1, 8, 32, 64, 128, 256),
}
# Each recurrent_zoo layer's ratio is taken against this built-in.
VERSUS = {
    "recurrent_zoo.SimpleRNN": "keras.SimpleRNN",
    "recurrent_zoo.LayerNormLSTM": "keras.LSTM",
    "recurrent_zoo.MinGRU": "keras.LSTM",
    "recurrent_zoo.MinLSTM": "keras.LSTM",
}


def measure_point(shape: dict, layers, args) -> dict[str, dict]:
    entries = {}
    for label in layers:
        candidate = harness.find(label)
        model = harness.build_model(
            candidate, shape["units"], shape["steps"], shape["features"]
        )
        x, y = harness.make_batch(model, shape["batch"])
        step = harness.train_step(model, args.jit_compile)
        first = harness.run(step, x, y)
        for _ in range(args.warmup):
            harness.run(step, x, y)
        path = harness.execution_path(harness.graph_ops(step, x, y), args.jit_compile)
        entries[label] = {"step": (step, x, y), "first": first, "path": path}
    times = harness.interleaved(
        {label: e["step"] for label, e in entries.items()}, args.repeats
    )
    keras.backend.clear_session()
    point = {}
    for label, entry in entries.items():
        step_s = harness.median(times[label])
        point[label] = {
            "step_ms": 1e3 * step_s,
            "step_ms_all": [1e3 * t for t in times[label]],
            "sequences_per_s": shape["batch"] / step_s,
            "tokens_per_s": shape["batch"] * shape["steps"] / step_s,
            "compile_s": entry["first"] - step_s,
            "path": entry["path"],
        }
    for label, base in VERSUS.items():
        if label in point and base in point:
            point[label]["ratio"] = (
                point[label]["sequences_per_s"] / point[base]["sequences_per_s"]
            )
    return point


def linear_fit(lengths, seconds) -> dict:
    """Least-squares line seconds = a + b * length, its R^2, and the per-token
    cost at the longest length over that at the shortest."""
    lengths, seconds = np.asarray(lengths, float), np.asarray(seconds, float)
    slope, intercept = np.polyfit(lengths, seconds, 1)
    predicted = intercept + slope * lengths
    residual = float(np.sum((seconds - predicted) ** 2))
    total = float(np.sum((seconds - seconds.mean()) ** 2))
    per_token = seconds / lengths
    return {
        "intercept_ms": 1e3 * float(intercept),
        "ms_per_step": 1e3 * float(slope),
        "r2": 1.0 - residual / total if total > 0 else 1.0,
        "per_token_growth": float(per_token[-1] / per_token[0]),
    }


def run_sweeps(args) -> dict:
    base = dict(
        batch=args.batch, steps=args.steps, features=args.features, units=args.units
    )
    sweeps = {}
    for dimension, values in args.sweeps.items():
        sweeps[dimension] = []
        for value in values:
            shape = {**base, dimension: value}
            point = measure_point(shape, args.layers, args)
            sweeps[dimension].append({"shape": shape, "layers": point})
            summary = "  ".join(
                f"{label.split('.')[-1]} {p['step_ms']:.0f}ms"
                + (f" ({p['ratio']:.2f}x)" if "ratio" in p else "")
                for label, p in point.items()
            )
            print(f"{dimension}={value}: {summary}", flush=True)
    return sweeps


def linearity(sweeps: dict, layers) -> dict:
    points = sweeps.get("steps", [])
    if len(points) < 3:
        return {}
    lengths = [p["shape"]["steps"] for p in points]
    return {
        label: linear_fit(
            lengths, [p["layers"][label]["step_ms"] / 1e3 for p in points]
        )
        for label in layers
    }


def markdown(payload: dict, args) -> list[str]:
    base = payload["base_shape"]
    notes = [
        f"Base shape: batch {base['batch']}, {base['steps']} steps, "
        f"{base['features']} input features, {base['units']} units; one "
        f"dimension swept at a time. `jit_compile={args.jit_compile}`. "
        f"Dtype policy `{args.dtype_policy}` for every layer. "
        f"{args.repeats} interleaved repetitions per point; medians. Ratio: "
        "the recurrent_zoo layer's throughput over its built-in's (SimpleRNN "
        "vs keras.SimpleRNN, LayerNormLSTM vs keras.LSTM) at the same point "
        "of this run; above 1 is faster.",
        "",
        "![scaling](layer_scaling.png)",
        "",
    ]
    layers = payload["layers"]
    for dimension, points in payload["sweeps"].items():
        notes += [
            f"## Training step time (ms) against {dimension}",
            "",
            f"| {dimension} | " + " | ".join(layers) + " |",
            "|---:|" + "---:|" * len(layers),
        ]
        for point in points:
            cells = []
            for label in layers:
                p = point["layers"][label]
                ratio = f" ({p['ratio']:.2f}x)" if "ratio" in p else ""
                cells.append(f"{p['step_ms']:.1f}{ratio}")
            notes.append(f"| {point['shape'][dimension]} | " + " | ".join(cells) + " |")
        notes.append("")
    if payload["linearity"]:
        notes += [
            "## Linearity in sequence length",
            "",
            "Least-squares line through training step time against length; "
            "per-token growth is the cost per step at the longest length over "
            "that at the shortest (1.0 = perfectly linear, no fixed cost).",
            "",
            "| layer | ms per step | intercept ms | R^2 | per-token growth |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, fit in payload["linearity"].items():
            notes.append(
                f"| {label} | {fit['ms_per_step']:.3f} | {fit['intercept_ms']:.1f} "
                f"| {fit['r2']:.4f} | {fit['per_token_growth']:.2f} |"
            )
        notes.append("")
    if payload.get("memory"):
        lengths = payload["memory"]["steps"]
        notes += [
            "## Peak training memory (MiB) against sequence length",
            "",
            "![memory](layer_memory.png)",
            "",
            "| layer | " + " | ".join(str(n) for n in lengths) + " | MiB per step |",
            "|---|" + "---:|" * (len(lengths) + 1),
        ]
        for label, peaks in payload["memory"]["peak_mib"].items():
            cells = ["–" if p is None else f"{p:.0f}" for p in peaks]
            known = [(n, p) for n, p in zip(lengths, peaks, strict=True) if p]
            slope = (
                f"{np.polyfit(*zip(*known, strict=True), 1)[0]:.2f}"
                if len(known) >= 2
                else "–"
            )
            notes.append(f"| {label} | " + " | ".join(cells) + f" | {slope} |")
        notes.append("")
    return harness.header_lines(
        "Layer scaling: recurrent_zoo vs Keras built-ins",
        payload,
        notes,
    )


def plot(payload: dict, path: Path) -> None:
    sweeps, layers = payload["sweeps"], payload["layers"]
    fig = Figure(figsize=(5 * len(sweeps), 8))
    axes = fig.subplots(2, len(sweeps), squeeze=False)
    for column, (dimension, points) in enumerate(sweeps.items()):
        xs = [p["shape"][dimension] for p in points]
        top, bottom = axes[0][column], axes[1][column]
        for label in layers:
            style = "-" if label.startswith("recurrent_zoo") else "--"
            top.plot(xs, [p["layers"][label]["step_ms"] for p in points],
                     style, marker="o", label=label)  # fmt: skip
            if label in VERSUS:
                bottom.plot(xs, [p["layers"][label]["ratio"] for p in points],
                            marker="o", label=f"{label} / {VERSUS[label]}")  # fmt: skip
        top.set(xscale="log", yscale="log", xlabel=dimension,
                ylabel="training step (ms)",
                title=f"step time vs {dimension}")  # fmt: skip
        bottom.axhline(1.0, color="gray", lw=1)
        bottom.set(xscale="log", xlabel=dimension, ylabel="throughput ratio",
                   title="recurrent_zoo / Keras built-in")  # fmt: skip
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    axes[1][0].legend(fontsize=8)
    harness.save_figure(fig, path)


def plot_memory(memory: dict, path: Path) -> None:
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for label, peaks in memory["peak_mib"].items():
        style = "-" if label.startswith("recurrent_zoo") else "--"
        ax.plot(memory["steps"], peaks, style, marker="o", label=label)
    ax.set(xlabel="sequence length", ylabel="peak training memory (MiB)",
           title="memory grows linearly with length (BPTT)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    harness.save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", default=list(LAYERS))
    parser.add_argument("--sweep", nargs="*", choices=tuple(SWEEPS), help="default all")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    harness.add_run_arguments(parser)
    args = parser.parse_args(argv)
    for label in args.layers:
        harness.find(label)  # fails early on a typo
    harness.resolve_run_arguments(args)
    args.sweeps = {k: v for k, v in SWEEPS.items() if not args.sweep or k in args.sweep}
    if args.quick:
        args.batch, args.steps, args.features, args.units = 2, 4, 3, 4
        args.sweeps = {"steps": (2, 4, 8)}
        args.repeats, args.warmup = 1, 0
    record = harness.RunRecord()
    sweeps = run_sweeps(args)
    payload = {
        "layers": list(args.layers),
        "base_shape": dict(
            batch=args.batch,
            steps=args.steps,
            features=args.features,
            units=args.units,
        ),  # fmt: skip
        "jit_compile": args.jit_compile,
        "sweeps": sweeps,
        "linearity": linearity(sweeps, args.layers),
    }
    if args.memory and "steps" in args.sweeps:
        lengths = list(args.sweeps["steps"])
        shapes = [{**payload["base_shape"], "steps": n} for n in lengths]
        payload["memory"] = {
            "steps": lengths,
            "peak_mib": {
                label: harness.measure_memory(label, shapes, args.jit_compile)
                for label in args.layers
            },
        }
        print("memory:", payload["memory"]["peak_mib"], flush=True)
    if args.results is not None:
        payload = {**record.finish(), **payload}
        harness.write_results(
            "layer_scaling", payload, markdown(payload, args), args.results
        )
        plot(payload, args.results / "layer_scaling.png")
        if "memory" in payload:
            plot_memory(payload["memory"], args.results / "layer_memory.png")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
