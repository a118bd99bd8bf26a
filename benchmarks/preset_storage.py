"""How coarsely a preset's vocabulary-sized matrices can be stored.

    python benchmarks/preset_storage.py --data ../shared/data

A preset is mostly its word embedding (and, for a wide & deep model, the
wide kernel): vocabulary-sized matrices. `save_compact(rounded=...)` stores
them on a grid whose step is at most `relative_step` times their root mean
square, which deflates far better than float16 alone. This script measures
what that costs, to choose the step `accuracy.py --save-presets` uses
(`RELATIVE_STEP`):

For each finished run of `benchmarks/accuracy.py`, it takes the model
validation chose (`benchmarks/runs/<name>/best.keras`, which never trained
on the validation texts; the refitted model did), saves it with
`save_compact` at each step (and without rounding: float16 only), and
records the file size and, on that run's own validation split, the accuracy
and how many predictions differ from the float32 model's. Test data is not
read: the shipped file's test score is on its card.

Results: `benchmarks/results/preset_storage.{json,md}`, with the command,
machine and date.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from accuracy import (  # noqa: E402
    RELATIVE_STEP,
    corpus_parser,
    vocabulary_sized,
)

from recurrent_zoo.data import load_corpus  # noqa: E402
from recurrent_zoo.environment import cores_text, run_record  # noqa: E402
from recurrent_zoo.models import save_compact  # noqa: E402
from recurrent_zoo.models.compact import grid_step  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
STEPS = (None, 0.125, 0.25, 0.5, 1.0)  # None: float16 storage only


def validation_split(run: dict, data: str):
    """The validation texts `train` carved for this run (same loader, seed)."""
    kwargs = {"max_per_class": run["max_per_class"], "seed": run["seed"]}
    if run["remove"]:
        kwargs["remove"] = tuple(sorted(run["remove"]))
    full = load_corpus(run["corpus"], data, "train", **kwargs)
    return full.split(run["validation_fraction"], run["seed"])[1]


def predicted(model: keras.Model, texts) -> np.ndarray:
    return model.predict_proba(texts, batch_size=256).argmax(axis=1)


def measure(out: Path, data: str) -> dict:
    """Sizes and validation predictions of `out/best.keras` at each step."""
    run = json.loads((out / "run.json").read_text())
    model = keras.saving.load_model(out / "best.keras", compile=False)
    validation = validation_split(run, data)
    texts, labels = np.asarray(validation.texts, dtype=object), validation.labels
    reference = predicted(model, texts)
    weights = vocabulary_sized(model)
    rounded = list(weights)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model.save(Path(scratch) / "float32.keras")
        float32_size = (Path(scratch) / "float32.keras").stat().st_size
        path = Path(scratch) / "model.keras"
        for step in STEPS:
            kwargs = {} if step is None else {"rounded": rounded, "relative_step": step}
            size = save_compact(model, path, **kwargs)
            shipped = predicted(keras.saving.load_model(path, compile=False), texts)
            grid = {p: grid_step(weights[p], step) for p in rounded} if step else {}
            rows.append(
                {
                    "relative_step": step,
                    "grid": grid,
                    "size_bytes": size,
                    "validation_accuracy": float(np.mean(shipped == labels)),
                    "changed": int(np.sum(shipped != reference)),
                }
            )
            print(out.name, rows[-1], flush=True)
    return {
        "model": str(out / "best.keras"),
        "validation_texts": len(labels),
        "float32_validation_accuracy": float(np.mean(reference == labels)),
        "float32_size_bytes": float32_size,
        "rounded": rounded,
        "rows": rows,
    }


def write(results: dict, record: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / "preset_storage"
    stem.with_suffix(".json").write_text(
        json.dumps({**record, "results": results}, indent=2) + "\n"
    )
    machine = record["machine"]
    lines = [
        "# Preset storage: size against validation predictions",
        "",
        f"Command: `{record['command']}`  ",
        f"Date: {record['date']}  ",
        f"Machine: {machine['cpu']} ({cores_text(machine)}), "
        f"TF {machine['tensorflow']}, Keras {machine['keras']}",
        "",
        "Each run's `best.keras` (chosen on validation, never trained on it)",
        "saved with `save_compact`; `relative_step` none is float16 only.",
        "Changed: validation predictions that differ from the float32",
        f"model's. The presets use relative_step {RELATIVE_STEP}.",
        "",
        "| run | rounded | relative_step | grid | size | validation accuracy "
        "| changed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | float32 (`model.save`) | | "
            f"| {r['float32_size_bytes'] / 1e6:.2f} MB "
            f"| {r['float32_validation_accuracy']:.4f} | of {r['validation_texts']} |"
        )
        for row in r["rows"]:
            grid = ", ".join(
                f"2^{int(np.log2(h))}" if h else "0" for h in row["grid"].values()
            )
            step = row["relative_step"]
            lines.append(
                f"| {name} | {', '.join(r['rounded']) if step else ''} "
                f"| {step or 'none'} | {grid} | {row['size_bytes'] / 1e6:.2f} MB "
                f"| {row['validation_accuracy']:.4f} | {row['changed']} |"
            )
    lines += [
        "",
        "Over all runs: the largest drop in validation accuracy against the",
        "float32 model, and the predictions changed.",
        "",
        "| relative_step | largest drop | changed |",
        "|---|---|---|",
    ]
    for i, step in enumerate(STEPS):
        drops = {
            name: r["float32_validation_accuracy"] - r["rows"][i]["validation_accuracy"]
            for name, r in results.items()
        }
        worst = max(drops, key=drops.get)
        changed = sum(r["rows"][i]["changed"] for r in results.values())
        total = sum(r["validation_texts"] for r in results.values())
        lines.append(
            f"| {step or 'none'} | {100 * drops[worst]:.2f} points ({worst}) "
            f"| {changed} of {total} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    missing = [n for n in names if not (args.runs / n / "best.keras").exists()]
    if missing:
        parser.error(
            f"no finished run for {missing} in {args.runs}: "
            "run benchmarks/accuracy.py first"
        )
    script = "benchmarks/preset_storage.py"
    record = run_record(None if argv is None else [script, *argv])
    results = {name: measure(args.runs / name, args.data) for name in names}
    write(results, record, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
