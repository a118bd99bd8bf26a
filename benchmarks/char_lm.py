"""Bits per character on IMDB's test reviews: a language model against compressors.

    python benchmarks/char_lm.py --data ../shared/data                  # compressors
    python benchmarks/char_lm.py --data ../shared/data --model runs/lm/model.keras
    python benchmarks/char_lm.py --data ../shared/data --quick          # smoke run
    python benchmarks/char_lm.py --data ../shared/data --model runs/lm/model.keras \
        --save-preset imdb_char_lm                                     # ship it

The text is the 25,000 test reviews as `recurrent-zoo train char_lm` holds
them out (`load_text_documents(..., "test")`: `<br />` replaced by a
space), never seen in training. A model scores every review from its start
and a fresh state (`CharLanguageModel.bits_per_character`); each
general-purpose compressor (`xz -9e`, `bzip2 -9`, `zstd --ultra -22`, its
highest level) gets the reviews as one UTF-8 stream, a review a line, and
its bits per character are the compressed size in bits over the number of
characters (code points, as the model counts them). The compressors see
the whole test set at once, so they learn from earlier reviews while they
read later ones; the model starts every review afresh. The model's figure
is only as good as the model: this script reports, it does not train.

Results: `benchmarks/results/char_lm.{json,md}` with the command, machine
and date; a run with `--model` adds (or replaces) that model's row.

`--save-preset NAME` ships the model as `recurrent_zoo/presets/NAME.keras`,
its weights stored as float16 (`save_compact`), and scores the shipped
file, not the float32 one: its row and its card (`NAME.json`) give that
file's bits per character, beside what the model's run recorded in the
`metrics.json` next to the model file (the float32 model's test score, or
the run's own where it scored fewer texts or under another dtype policy;
the training seconds, the command and machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recurrent_zoo.data import load_text_documents  # noqa: E402
from recurrent_zoo.environment import cores_text, run_record  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# The command and flags of each compressor, at its highest standard level.
COMPRESSORS: dict[str, list[str]] = {
    "xz -9e": ["xz", "-9e", "-c", "-T1"],
    "bzip2 -9": ["bzip2", "-9", "-c"],
    "zstd --ultra -22": ["zstd", "--ultra", "-22", "-c", "-q", "-T1"],
}


def compressed_bits(command: list[str], payload: bytes) -> int | None:
    """The size in bits of `payload` compressed by `command`, None if absent."""
    if shutil.which(command[0]) is None:
        return None
    result = subprocess.run(command, input=payload, capture_output=True, check=True)
    return 8 * len(result.stdout)


def compressor_rows(texts: list[str]) -> list[dict]:
    """One row per compressor found on this machine."""
    payload = "\n".join(texts).encode("utf-8")
    characters = sum(len(t) for t in texts)
    rows = []
    for name, command in COMPRESSORS.items():
        started = time.perf_counter()
        bits = compressed_bits(command, payload)
        if bits is None:
            print(
                f"{command[0]} is not installed; its row is left out", file=sys.stderr
            )
            continue
        rows.append(
            {
                "method": name,
                "kind": "compressor",
                "bits_per_character": bits / characters,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    return rows


def model_row(path: str, texts: list[str], batch_size: int) -> dict:
    """The row of a trained `CharLanguageModel` (a .keras file or a preset)."""
    import keras

    from recurrent_zoo.models import from_preset

    if Path(path).is_file():
        model = keras.saving.load_model(path, compile=False)
    else:
        model = from_preset(path, compile=False)
    started = time.perf_counter()
    bpc = model.bits_per_character(texts, batch_size=batch_size)
    return {
        "method": f"{model.cell} {list(model.units)} ({Path(path).name})",
        "kind": "language model",
        "bits_per_character": bpc,
        "seconds": round(time.perf_counter() - started, 1),
        "parameters": int(model.count_params()),
    }


def run_facts(model_path: Path, characters: int) -> dict:
    """What the model's run recorded (its `metrics.json`, beside the file):
    its test score, training seconds and the command. The score is the
    float32 model's on the same text only when the run scored all
    `characters` in float32; else it is the run's own, named as such."""
    metrics = model_path.parent / "metrics.json"
    if not metrics.is_file():
        return {}
    recorded = json.loads(metrics.read_text())
    test = recorded["test"]
    policy = recorded["arguments"].get("dtype_policy", "float32")
    if test["characters"] == characters and policy == "float32":
        score = {"float32_test_bits_per_character": test["bits_per_character"]}
    else:
        score = {"run_test": {**test, "dtype_policy": policy}}
    return {
        **score,
        "train_seconds": round(float(recorded["train_seconds"]), 1),
        "train_command": recorded["command"],
        "train_machine": recorded["machine"],
    }


def save_preset(model_path: Path, name: str) -> Path:
    """`model_path` stored compactly as the preset `name`; its path."""
    import keras

    from recurrent_zoo.models import save_compact
    from recurrent_zoo.models.registry import PRESET_DIR

    model = keras.saving.load_model(model_path, compile=False)
    path = PRESET_DIR / f"{name}.keras"
    save_compact(model, path)
    return path


def write_card(path: Path, row: dict, facts: dict, results: dict) -> None:
    """The preset's card: the shipped file's score and how it was made."""
    card = {
        "description": "character language model trained on IMDB's reviews",
        "test_bits_per_character": row["bits_per_character"],
        **facts,
        "test_characters": results["characters"],
        "parameters": row["parameters"],
        "storage": "float16 weights (recurrent_zoo.models.save_compact)",
        "command": results["command"],
        "date": results["date"],
        "size_bytes": path.stat().st_size,
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "char_lm.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Bits per character on IMDB's test reviews",
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}  ",
        f"Machine: {results['machine']['cpu']} ({cores_text(results['machine'])}); "
        f"TensorFlow {results['machine']['tensorflow']}",
        "",
        f"Text: {results['documents']:,} test reviews, "
        f"{results['characters']:,} characters (`<br />` replaced by a space). "
        "Compressors read them as one stream; a model reads each review "
        "from a fresh state. Lower is better.",
        "",
        "| method | kind | bits per character | seconds |",
        "|---|---|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['method']} | {row['kind']} | "
            f"{row['bits_per_character']:.3f} | {row['seconds']} |"
        )
    (out / "char_lm.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", help="holds aclImdb.tar.gz")
    parser.add_argument("--model", help="a trained .keras language model or preset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="200 reviews only")
    parser.add_argument(
        "--save-preset",
        metavar="NAME",
        help="ship --model (a .keras file) as this preset, scored as shipped",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.save_preset and not (args.model and Path(args.model).is_file()):
        parser.error("--save-preset needs --model, a trained .keras file")
    limit = 200 if args.quick else None
    texts = load_text_documents(args.data, "test", max_documents=limit).texts
    characters = sum(len(t) for t in texts)
    previous = args.results / "char_lm.json"
    rows = compressor_rows(texts)
    scored = args.model
    if args.save_preset:
        scored = str(save_preset(Path(args.model), args.save_preset))
    model = model_row(scored, texts, args.batch_size) if scored else None
    if model:
        rows.append(model)
    if previous.is_file() and not args.quick:
        # Models scored in earlier runs on the same text keep their rows.
        old = json.loads(previous.read_text())
        if old.get("characters") == characters:
            names = {row["method"] for row in rows}
            rows += [
                r
                for r in old["rows"]
                if r["kind"] != "compressor" and r["method"] not in names
            ]
    results = {
        **run_record(["benchmarks/char_lm.py", *(argv or sys.argv[1:])]),
        "documents": len(texts),
        "characters": characters,
        "rows": sorted(rows, key=lambda r: r["bits_per_character"]),
    }
    write(results, args.results)
    if args.save_preset:
        facts = run_facts(Path(args.model), results["characters"])
        write_card(Path(scored), model, facts, results)
    print((args.results / "char_lm.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
