"""Character language models' cells side by side: equal parameters, equal time.

    python benchmarks/char_lm_cells.py --data ../shared/data          # 6 min a cell
    python benchmarks/char_lm_cells.py --data ../shared/data --quick  # smoke run

Each cell (`--cells`, names of `recurrent_zoo.cells`) gets a one-layer
`CharLanguageModel` whose width gives the parameter count closest to the
reference's (a layer-normalized LSTM of `--reference-units`, 256 by
default: an earlier `imdb_char_lm` preset's shape), then trains for the
same wall-clock time (`--minutes`) on the same IMDB training text: the
same character vocabulary, the same windows in the same order (the char_lm
task's `window_dataset`, seed 0), its optimizer and loss. The learning
rate follows a cosine over elapsed time, not steps (`CosineOverTime`),
from the task's peak to 0 when the time is up, so a faster cell takes more
steps on the same schedule; the clock starts with the first batch, graph
tracing included. Each model is then scored in bits per character on the
first `--test-documents` test reviews, each read whole from a fresh state.

The cells run one after another: their figures compare within a run on a
quiet machine (another process running beside one cell shortens its
training). Results: `benchmarks/results/char_lm_cells.{json,md}` with the
command, machine and date.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from recurrent_zoo.data import load_text_documents  # noqa: E402
from recurrent_zoo.environment import cores_text, run_record  # noqa: E402
from recurrent_zoo.models import get  # noqa: E402
from recurrent_zoo.training.language_modeling import (  # noqa: E402
    LanguageModelTask,
    window_dataset,
)

RESULTS = Path(__file__).resolve().parent / "results"
CELLS = ("lstm", "layer_norm_lstm", "gru", "layer_norm_gru", "min_gru")
BATCH_SIZE = 64


class CosineOverTime(keras.callbacks.Callback):
    """A cosine learning rate over wall-clock time; stops when time is up.

    Before each batch the rate is `peak * (1 + cos(pi * f)) / 2`, f the
    elapsed share of `seconds` (capped at 1); training stops after the
    first batch that ends past `seconds`. `steps` counts the batches run.
    """

    def __init__(
        self,
        peak: float,
        seconds: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        self.peak = peak
        self.seconds = seconds
        self.clock = clock
        self.steps = 0
        self.started: float | None = None

    def rate(self) -> float:
        elapsed = 0.0 if self.started is None else self.clock() - self.started
        fraction = min(1.0, elapsed / self.seconds)
        return self.peak * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.started is None:
            self.started = self.clock()
        self.model.optimizer.learning_rate = self.rate()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        if self.clock() - self.started >= self.seconds:
            self.model.stop_training = True


def built(cell: str, units: int, characters: Sequence[str]) -> keras.Model:
    """A one-layer char LM of `cell`, its weights created."""
    model = get("char_lm", cell=cell, units=(units,), vocabulary=list(characters))
    model(np.zeros((1, 1), dtype="int32"))
    return model


def matched_units(cell: str, target: int, characters: Sequence[str]) -> int:
    """The width whose one-layer model's parameter count is closest to `target`."""

    def count(units: int) -> int:
        return built(cell, units, characters).count_params()

    low, high = 1, 2  # parameters grow with the width: double, then bisect
    while count(high) <= target:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        if count(middle) <= target:
            low = middle
        else:
            high = middle
    counts = {u: count(u) for u in (low, high)}
    return min(counts, key=lambda u: abs(counts[u] - target))


def train_for(model: keras.Model, streams: list, seconds: float, peak: float) -> dict:
    """Trains `model` for `seconds` of wall-clock time; what it did."""
    LanguageModelTask("char_lm").compile(model, peak)
    dataset, _ = window_dataset(
        streams, model.sequence_length, BATCH_SIZE, shuffle=True, seed=0
    )
    schedule = CosineOverTime(peak, seconds)
    started = time.perf_counter()
    history = model.fit(
        dataset.repeat(), epochs=1, steps_per_epoch=10**9, callbacks=[schedule],
        verbose=0,
    )  # fmt: skip
    return {
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": schedule.steps,
        "characters_read": schedule.steps * BATCH_SIZE * model.sequence_length,
        "last_loss_bits": float(history.history["loss"][-1]) / math.log(2),
    }


def compare(args: argparse.Namespace) -> dict:
    """Every cell trained and scored (see the module)."""
    train = load_text_documents(args.data, "train", max_documents=args.train_documents)
    test = load_text_documents(args.data, "test", max_documents=args.test_documents)
    vocabulary = get("char_lm")
    vocabulary.adapt(train.texts)
    characters = vocabulary.vocabulary.characters
    streams = [vocabulary.stream(text) for text in train.texts]
    reference = built("layer_norm_lstm", args.reference_units, characters)
    target = reference.count_params()
    peak = LanguageModelTask("char_lm").learning_rate
    rows = []
    for cell in args.cells:
        units = matched_units(cell, target, characters)
        keras.utils.set_random_seed(0)
        model = built(cell, units, characters)
        row = {"cell": cell, "units": units, "parameters": model.count_params()}
        row.update(train_for(model, streams, 60.0 * args.minutes, peak))
        started = time.perf_counter()
        row["bits_per_character"] = model.bits_per_character(test.texts)
        row["score_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {
        "minutes": args.minutes,
        "reference": (
            f"layer_norm_lstm of {args.reference_units} units, {target:,} parameters"
        ),
        "train_documents": len(train),
        "test_documents": len(test),
        "test_characters": test.characters(),
        "rows": rows,
    }


def write(results: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    machine = results["machine"]
    lines = [
        "# Character language model cells: equal parameters, equal training time",
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}  ",
        f"Machine: {machine['cpu']} ({cores_text(machine)}); "
        f"TensorFlow {machine['tensorflow']}",
        "",
        f"Each cell: one layer sized to the parameter count of a "
        f"{results['reference']}, trained {results['minutes']} minutes on "
        f"IMDB's training reviews ({results['train_documents']:,} documents), "
        f"scored on the first {results['test_documents']:,} test reviews "
        f"({results['test_characters']:,} characters). Lower is better.",
        "",
        "| cell | units | parameters | steps | characters read | "
        "train seconds | test bits per character |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(results["rows"], key=lambda r: r["bits_per_character"]):
        lines.append(
            f"| {row['cell']} | {row['units']} | {row['parameters']:,} | "
            f"{row['steps']:,} | {row['characters_read']:,} | "
            f"{row['train_seconds']} | {row['bits_per_character']:.3f} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", help="holds aclImdb.tar.gz")
    parser.add_argument("--cells", type=lambda s: s.split(","), default=list(CELLS))
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--reference-units", type=int, default=256)
    parser.add_argument("--train-documents", type=int)
    parser.add_argument("--test-documents", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.train_documents, args.test_documents = 0.1, 300, 20
        args.reference_units = 32
    results = {
        **run_record(["benchmarks/char_lm_cells.py", *(argv or sys.argv[1:])]),
        **compare(args),
    }
    stem = "char_lm_cells_quick" if args.quick else "char_lm_cells"
    write(results, args.results, stem)
    print((args.results / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
