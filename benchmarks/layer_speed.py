"""Speed and memory of recurrent_zoo's layers against Keras's built-ins.

    python benchmarks/layer_speed.py                    # full run, writes results
    python benchmarks/layer_speed.py --pairs LSTM       # some pairs only
    python benchmarks/layer_speed.py --quick            # smoke run, writes nothing

For every pair of `harness.CANDIDATES` (SimpleRNN, LSTM, GRU, MinGRU and
MinLSTM against keras.LSTM, Bidirectional, attention), at one realistic text
shape (batch 64, 200 steps, 64 input features, 128 units by default):

- training throughput: sequences/s and tokens/s of a compiled training step;
- inference latency of a compiled call at batch 1 and batch 256;
- compile time: the first training call (tracing, graph optimization, the
  first step itself) minus a steady step;
- peak training memory, measured in a child process (see `harness`);
- the path each layer took (cuDNN, XLA or TensorFlow's while_loop), read
  from the traced graph.

Each candidate is built `--builds` times (on a shared machine one build can
run steadily slower than another), repetitions of a pair's candidates are
interleaved, warm-up calls are excluded and medians are reported; each ratio
divides two numbers of this one run. The same script runs unchanged on a GPU,
where the built-in LSTM/GRU take cuDNN.

Results: `benchmarks/results/layer_speed.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness
import keras
from matplotlib.figure import Figure


def measure_pair(pair: list[harness.Candidate], args) -> list[dict]:
    shape = dict(
        batch=args.batch, steps=args.steps, features=args.features, units=args.units
    )
    entries = []
    for candidate in pair:
        for build in range(args.builds):
            model = harness.build_model(
                candidate, args.units, args.steps, args.features
            )
            x, y = harness.make_batch(model, args.batch, seed=build)
            step = harness.train_step(model, args.jit_compile)
            first = harness.run(step, x, y)
            for _ in range(args.warmup):
                harness.run(step, x, y)
            entry = {"candidate": candidate, "build": build, "step": (step, x, y),
                     "first": first, "model": model}  # fmt: skip
            if build == 0:
                # Keras's LSTM/GRU with cuDNN on a GPU run without XLA.
                entry["jit"] = args.jit_compile and harness.supports_jit(model)
                entry["path"] = harness.execution_path(
                    harness.graph_ops(step, x, y), entry["jit"]
                )
                infer = harness.infer_step(model, args.jit_compile)
                for size in (1, 256):
                    xi, _ = harness.make_batch(model, size, seed=build)
                    for _ in range(1 + args.warmup):
                        harness.run(infer, xi)
                    entry[f"infer_{size}"] = (infer, xi)
            entries.append(entry)
    keys = {f"{e['candidate'].label}#{e['build']}": e for e in entries}
    train_times = harness.interleaved(
        {k: e["step"] for k, e in keys.items()}, args.repeats, args.calls
    )
    latency = {}
    for size in (1, 256):
        firsts = {k: e[f"infer_{size}"] for k, e in keys.items() if e["build"] == 0}
        latency[size] = harness.interleaved(firsts, args.repeats, args.calls)

    rows = []
    for candidate in pair:
        mine = [k for k, e in keys.items() if e["candidate"] is candidate]
        times = [t for k in mine for t in train_times[k]]
        step_s = harness.median(times)
        first = harness.median([keys[k]["first"] for k in mine])
        lead = keys[mine[0]]
        row = {
            "pair": candidate.pair,
            "layer": candidate.label,
            "builtin": candidate.builtin,
            "path": lead["path"],
            "jit_compile": lead["jit"],
            "train_step_ms": 1e3 * step_s,
            "train_step_ms_best": 1e3 * min(times),
            "sequences_per_s": args.batch / step_s,
            "tokens_per_s": args.batch * args.steps / step_s,
            "compile_s": first - step_s,
            "latency_batch1_ms": 1e3 * harness.median(latency[1][mine[0]]),
            "latency_batch256_ms": 1e3 * harness.median(latency[256][mine[0]]),
            "train_step_s_by_build": [train_times[k] for k in mine],
        }
        rows.append(row)
        print(f"{candidate.label:46s} {row['sequences_per_s']:8.1f} seq/s  "
              f"b1 {row['latency_batch1_ms']:6.1f} ms  b256 "
              f"{row['latency_batch256_ms']:7.1f} ms  compile "
              f"{row['compile_s']:5.1f} s  [{row['path']}]", flush=True)  # fmt: skip
    keras.backend.clear_session()
    if args.memory:
        for row in rows:
            (row["train_peak_mib"],) = harness.measure_memory(
                row["layer"], [shape], args.jit_compile
            )
    return rows


def add_ratios(rows: list[dict]) -> None:
    """Each layer against its pair's first built-in (LSTM: keras.LSTM)."""
    for row in rows:
        base = next(r for r in rows if r["pair"] == row["pair"] and r["builtin"])
        row["versus"] = base["layer"]
        row["throughput_ratio"] = row["sequences_per_s"] / base["sequences_per_s"]
        for key in ("latency_batch1_ms", "latency_batch256_ms"):
            # > 1 means faster than the built-in, like the throughput ratio.
            row[key.replace("_ms", "_speedup")] = base[key] / row[key]
        if row.get("train_peak_mib") and base.get("train_peak_mib"):
            row["memory_ratio"] = row["train_peak_mib"] / base["train_peak_mib"]


def _memory(row: dict) -> str:
    if row.get("train_peak_mib") is None:
        return "–"
    ratio = row.get("memory_ratio")
    return f"{row['train_peak_mib']:.0f}" + (f" ({ratio:.2f}x)" if ratio else "")


def markdown(rows: list[dict], record: dict, args) -> list[str]:
    notes = [
        f"Shape: batch {args.batch}, {args.steps} steps, {args.features} input "
        f"features, {args.units} units (attention: {harness.QUERIES} queries "
        f"over {args.steps} keys). `jit_compile={args.jit_compile}` "
        + (
            "(what Keras's `auto` picks on this machine). "
            if getattr(args, "jit_compile_auto", False)
            else "(`--jit-compile`; layers that XLA can't compile run without). "
        )
        + (
            f"Dtype policy `{args.dtype_policy}` (`--dtype-policy`) for every "
            "candidate, the built-ins too. "
            if args.dtype_policy != "float32"
            else ""
        )
        + f"{args.builds} builds x {args.repeats} interleaved repetitions of "
        f"{args.calls} calls; medians.",
        "",
        "Ratios divide by the pair's Keras built-in measured in this same run "
        "(LSTM pair: keras.LSTM). Throughput and latency ratios above 1 mean "
        "faster than the built-in; memory ratios above 1 mean more memory. "
        "Path: how the layer ran, read from its traced graph.",
        "",
        "![throughput](layer_speed.png)",
        "",
        "| pair | layer | path | train seq/s | tokens/s | vs built-in "
        "| latency b1 ms | b256 ms | latency vs built-in (b1 / b256) "
        "| compile s | train peak MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        notes.append(
            f"| {r['pair']} | {r['layer']} | {r['path']} | "
            f"{r['sequences_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['throughput_ratio']:.2f}x | {r['latency_batch1_ms']:.2f} | "
            f"{r['latency_batch256_ms']:.1f} | {r['latency_batch1_speedup']:.2f}x"
            f" / {r['latency_batch256_speedup']:.2f}x | {r['compile_s']:.1f} | "
            f"{_memory(r)} |"
        )
    return harness.header_lines(
        "Layer speed and memory: recurrent_zoo vs Keras built-ins", record, notes
    )


def plot(rows: list[dict], path: Path) -> None:
    fig = Figure(figsize=(13, 0.42 * len(rows) + 1.5))
    axes = fig.subplots(1, 2)
    # keras.LSTM is the built-in of several pairs: name the pair beside it.
    names = [r["layer"] for r in rows]
    labels = [
        f"{name} ({r['pair']})" if names.count(name) > 1 else name
        for name, r in zip(names, rows, strict=True)
    ][::-1]
    colors = ["tab:gray" if r["builtin"] else "tab:blue" for r in rows][::-1]
    for ax, key, title in (
        (axes[0], "sequences_per_s", "training throughput (sequences/s)"),
        (axes[1], "latency_batch1_ms", "inference latency, batch 1 (ms)"),
    ):
        ax.barh(labels, [r[key] for r in rows][::-1], color=colors)
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticks([])
    fig.suptitle("recurrent_zoo (blue) vs Keras built-ins (gray)")
    harness.save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="*", help="e.g. LSTM SimpleRNN (default all)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--builds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2, help="calls per repetition")
    parser.add_argument("--warmup", type=int, default=2)
    harness.add_run_arguments(parser)
    args = parser.parse_args(argv)
    harness.resolve_run_arguments(args)
    if args.quick:
        args.batch, args.steps, args.features, args.units = 4, 6, 3, 5
        args.builds, args.repeats, args.calls, args.warmup = 1, 1, 1, 0
    record = harness.RunRecord()
    rows = []
    for pair in dict.fromkeys(c.pair for c in harness.candidates(args.pairs)):
        rows += measure_pair([c for c in harness.CANDIDATES if c.pair == pair], args)
    add_ratios(rows)
    if args.results is not None:
        finished = record.finish()
        payload = {**finished, "arguments": vars(args) | {"results": None},
                   "results": rows}  # fmt: skip
        harness.write_results(
            "layer_speed", payload, markdown(rows, finished, args), args.results
        )
        plot(rows, args.results / "layer_speed.png")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
