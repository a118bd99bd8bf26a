"""Serving latency and throughput of an exported text classifier, on CPU.

    python benchmarks/serving_latency.py               # full run, writes results
    python benchmarks/serving_latency.py --model DIR   # an existing export
    python benchmarks/serving_latency.py --quick       # smoke run, writes nothing

Without `--model`, a model of the default `sentiment` architecture
(vocabulary 20,000, 400 words, 128-dim embeddings, Bidirectional
LayerNormLSTM(64), attention pooling) is trained for one epoch on a slice of
the real IMDB training reviews and exported with
`recurrent_zoo.export.export_saved_model`, so the graph has the shape of a
real one; its accuracy is beside the point. The SavedModel is then loaded
with plain `tf.saved_model.load` and its `serving_default` signature is
called, with the GPU hidden, the way a TensorFlow server would:

* single review: one real test review per call (cycling through 1,000 of
  them, so lengths vary as in traffic), after warm-up calls; p50/p90/p99
  and mean latency;
* batch of 256: real test reviews, several passes over distinct batches;
  median and best reviews/s. A batch runs as many recurrent steps as its
  longest review (at most 400), so it pays for padding a single call does not.

Timings include turning the strings into a tensor and reading the
probabilities back, as a server must. With a trained model in hand the
script also records the largest difference between the SavedModel's and the
Keras model's probabilities on the same 1,000 reviews.

Results: `benchmarks/results/serving_latency.{json,md}` with the command,
machine, versions and date.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

# Serving on CPU is what is measured, whatever this machine has.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recurrent_zoo.data import load_imdb  # noqa: E402
from recurrent_zoo.environment import (  # noqa: E402
    cores_text,
    cpu_steal_fraction,
    read_cpu_times,
    run_record,
)
from recurrent_zoo.export import export_saved_model, find_saved_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def train_model(args) -> tuple:
    """The `sentiment` architecture, trained for one epoch; and a record."""
    from recurrent_zoo.data.batching import bucketed_dataset
    from recurrent_zoo.models import get

    train = load_imdb(args.data, "train", max_per_class=args.train_per_class)
    overrides = {}
    if args.quick:
        overrides = dict(vocabulary_size=2000, sequence_length=100, units=(8,))
    model = get("sentiment", **overrides)
    start = time.perf_counter()
    model.adapt(train.texts)
    model.compile()
    model.fit(
        bucketed_dataset(train.texts, train.labels, batch_size=32, seed=0),
        epochs=1,
        verbose=0,
    )
    return model, {
        "architecture": "sentiment",
        "overrides": {
            k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()
        },
        "train_reviews": len(train),
        "epochs": 1,
        "seconds": round(time.perf_counter() - start, 1),
        "parameters": int(model.count_params()),
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(signature, texts: list[str], args) -> dict:
    """Single-review latency and batch throughput of `signature` on `texts`."""

    def call(batch: list[str]) -> np.ndarray:
        out = signature(text=tf.constant(batch, dtype=tf.string))
        return out["probabilities"].numpy()

    for i in range(args.warmup):
        call([texts[i % len(texts)]])
    single_ms = []
    for i in range(args.single_calls):
        start = time.perf_counter()
        call([texts[i % len(texts)]])
        single_ms.append(1000 * (time.perf_counter() - start))

    size = args.batch_size
    batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
    call(batches[0])  # warm-up at the batch shape
    batch_seconds = []
    for _ in range(args.repeats):
        for batch in batches:
            start = time.perf_counter()
            call(batch)
            batch_seconds.append(time.perf_counter() - start)
    rates = [size / s for s in batch_seconds]
    return {
        "single": {
            "calls": args.single_calls,
            "warmup_calls": args.warmup,
            "p50_ms": round(percentile(single_ms, 50), 2),
            "p90_ms": round(percentile(single_ms, 90), 2),
            "p99_ms": round(percentile(single_ms, 99), 2),
            "mean_ms": round(statistics.fmean(single_ms), 2),
            "max_ms": round(max(single_ms), 2),
        },
        "batch": {
            "batch_size": size,
            "distinct_batches": len(batches),
            "timed_calls": len(batch_seconds),
            "median_reviews_per_s": round(statistics.median(rates), 1),
            "best_reviews_per_s": round(max(rates), 1),
            "median_batch_ms": round(1000 * statistics.median(batch_seconds), 1),
        },
    }


def write(payload: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving_latency.json").write_text(json.dumps(payload, indent=2) + "\n")
    machine = payload["machine"]
    single, batch = payload["results"]["single"], payload["results"]["batch"]
    words = payload["test_reviews"]["words"]
    load = payload["load_average_1min"]
    lines = [
        "# Serving latency: exported SavedModel on CPU",
        "",
        f"Command: `{payload['command']}`  ",
        f"Date: {payload['date']}  ",
        f"Machine: {machine['cpu']} ({cores_text(machine)}), GPU hidden "
        f"(`CUDA_VISIBLE_DEVICES=`); TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}, Python {machine['python']}  ",
        f"Model: {payload['model']}  ",
        f"Inputs: {payload['test_reviews']['count']} real IMDB test reviews, "
        f"{words['median']} words median ({words['p90']} at p90, "
        f"{words['max']} max; the model reads the first 400).",
        "",
        "The machine is a shared 2-core virtual CPU and other jobs (a long "
        "benchmark, other test runs) may have been running at the same time: "
        f"1-minute load average {load['start']:.1f} at the start and "
        f"{load['end']:.1f} at the end (2 would fill both cores); CPU time "
        "stolen by other guests during the run: "
        f"{100 * payload['cpu_steal_fraction_during_run']:.1f}%. Treat the "
        "numbers as an upper bound on latency (a lower bound on throughput) "
        "for this class of machine, not as a tuned, idle server's.",
        "",
        "| what | value |",
        "|---|---:|",
        f"| single review, p50 | {single['p50_ms']:.1f} ms |",
        f"| single review, p90 | {single['p90_ms']:.1f} ms |",
        f"| single review, p99 | {single['p99_ms']:.1f} ms |",
        f"| single review, mean | {single['mean_ms']:.1f} ms |",
        f"| batch of {batch['batch_size']}, median | "
        f"{batch['median_reviews_per_s']:.0f} reviews/s "
        f"({batch['median_batch_ms']:.0f} ms per batch) |",
        f"| batch of {batch['batch_size']}, best | "
        f"{batch['best_reviews_per_s']:.0f} reviews/s |",
        "",
        f"Single: {single['calls']} calls after {single['warmup_calls']} warm-up "
        "calls, one review each. Batch: "
        f"{batch['timed_calls']} calls over {batch['distinct_batches']} distinct "
        "batches. Timings include building the input tensor and reading the "
        "probabilities back.",
    ]
    lines += ["", f"Test accuracy on these reviews: {payload['test_accuracy']:.3f}."]
    training = payload.get("training")
    if training:
        lines[-1] += (
            f" The model was trained here for {training['epochs']} epoch on "
            f"{training['train_reviews']} IMDB training reviews "
            f"({training['seconds']:.0f} s; {training['parameters']:,} "
            "parameters): the shape, not the accuracy, matters here."
        )
    if "export_seconds" in payload:
        lines[-1] += f" Export took {payload['export_seconds']:.1f} s."
    parity = payload.get("parity_max_abs_diff")
    if parity is not None:
        lines += [
            "",
            "Parity: largest |SavedModel - Keras| probability difference on the "
            f"same reviews: {parity:.2e}.",
        ]
    (RESULTS / "serving_latency.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        help="an export's base path or version folder (default: train one)",
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("RECURRENT_ZOO_DATA", str(DEFAULT_DATA)),
        help="folder with aclImdb.tar.gz (default: $RECURRENT_ZOO_DATA or "
        "../shared/data beside the repository)",
    )
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--single-calls", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="passes over batches")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, no files")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_per_class, args.test_per_class = 40, 40
        args.warmup, args.single_calls, args.batch_size, args.repeats = 2, 10, 32, 1

    record = run_record(
        None if argv is None else ["benchmarks/serving_latency.py", *argv]
    )
    before = read_cpu_times()
    load_before = os.getloadavg()[0]
    test = load_imdb(args.data, "test", max_per_class=args.test_per_class)
    payload: dict = {**record}
    with tempfile.TemporaryDirectory() as scratch:
        model = None
        if args.model and Path(args.model).is_file():
            import keras

            import recurrent_zoo.models  # noqa: F401  registers the classes

            model = keras.saving.load_model(args.model, compile=False)
            payload["model"] = f"`{args.model}`, exported here"
        elif args.model:
            version_dir = find_saved_model(args.model)
            payload["model"] = f"export at `{version_dir}`"
        else:
            model, payload["training"] = train_model(args)
            payload["model"] = (
                "tiny `sentiment` (smoke run)"
                if args.quick
                else "`sentiment` architecture (default settings), trained here"
            )
        if model is not None:
            start = time.perf_counter()
            version_dir = export_saved_model(model, Path(scratch) / "export")
            payload["export_seconds"] = round(time.perf_counter() - start, 1)
            keras_p = model.predict_proba(test.texts)
        loaded = tf.saved_model.load(str(version_dir))
        signature = loaded.signatures["serving_default"]
        results = measure(signature, test.texts, args)
        served = signature(text=tf.constant(test.texts))["probabilities"].numpy()
        if model is not None:
            payload["parity_max_abs_diff"] = float(np.abs(served - keras_p).max())
        payload["test_accuracy"] = float((served.argmax(axis=1) == test.labels).mean())
    word_counts = [len(t.split()) for t in test.texts]
    payload["test_reviews"] = {
        "count": len(test),
        "words": {
            "median": int(np.median(word_counts)),
            "p90": int(np.percentile(word_counts, 90)),
            "max": int(max(word_counts)),
        },
    }
    payload["results"] = results
    payload["cpu_steal_fraction_during_run"] = cpu_steal_fraction(
        before, read_cpu_times()
    )
    # Runnable threads on the machine (2 cores): other jobs' share of the CPU.
    payload["load_average_1min"] = {
        "start": round(load_before, 2),
        "end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(payload["results"], indent=2))
    if not args.quick:
        write(payload)


if __name__ == "__main__":
    main()
