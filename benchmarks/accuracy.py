"""Test accuracy of the prebuilt classifiers against a TF-IDF + linear SVM.

    pip install -e ".[dev]"
    python benchmarks/accuracy.py --data ../shared/data             # all three
    python benchmarks/accuracy.py --only imdb --save-presets         # one, ship it
    python benchmarks/accuracy.py --quick                            # smoke run

For each benchmark the script trains, on the full official training split,
(1) the prebuilt recurrent model with `recurrent_zoo.training.train` (the
same code as `recurrent-zoo train`: validation carved from train, early
stopping on it, the test split read once at the end), following the
benchmark's `Recipe` (epochs, learning rate, language-model pretraining on
the training part plus, for IMDB, `train/unsup`, and for `imdb` and 20
Newsgroups a refit on all training texts for the epochs validation chose,
as the baseline is refit), and (2) the baseline:
scikit-learn `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
min_df=2)` + `LinearSVC`, its C chosen on the same validation split, then
refit on all training texts. Both are scored on the full test split. Training
wall time (pretraining included), the machine and the command are recorded.

Benchmarks: `imdb` (sentiment), `imdb_layer_norm_gru` and `imdb_min_gru`
(the same recipe with the layer-normalized GRU, with minGRU),
`imdb_min_gru_scratch` (minGRU's best on validation: no pretraining),
`imdb_min_gru_tanh` and `imdb_min_gru_tanh_scratch` (minGRU with a tanh
candidate, with and without pretraining),
`imdb_layer_norm_lstm_scratch` (the LSTM without pretraining),
`20newsgroups` (topic, headers kept, as the reference figures),
`20newsgroups_clean` (headers, signatures and quotes
removed, as scikit-learn's `remove=`). Each finished benchmark is merged into
`benchmarks/results/accuracy.{json,md}` at once, so an interrupted run keeps
what it finished. Runs (checkpoints, curves, models) go to
`benchmarks/runs/` (not committed); rerunning resumes an interrupted model,
and `--resume` keeps the seeds a row already holds from the same recipe
(each run records its `Recipe`), so a cut-off `--seeds 0,1,2` run finishes
with only its missing seeds trained.
`--save-presets` copies the trained models into `recurrent_zoo/presets/`,
their weights stored as float16 and the vocabulary-sized matrices rounded to
a grid of at most a quarter of their rms (`save_compact`, a sixth of the
float32 size), with a card next to each: the shipped file's own test scores,
the grid steps, and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from recurrent_zoo.data import load_corpus  # noqa: E402
from recurrent_zoo.environment import cores_text, run_record  # noqa: E402
from recurrent_zoo.models import save_compact  # noqa: E402
from recurrent_zoo.models.compact import grid_step  # noqa: E402
from recurrent_zoo.models.registry import PRESET_DIR  # noqa: E402
from recurrent_zoo.training import evaluate, train  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
# Most of a preset's bytes: word (and bigram) embeddings and the wide kernel.
VOCABULARY_SIZED = (
    "embedding/embeddings",
    "bigram_embedding/embeddings",
    "wide_logits/kernel",
)
# Chosen on validation, with the models that never saw it (each run's
# best.keras; benchmarks/preset_storage.py): the coarsest step as close to
# the float32 models' validation accuracy as float16 alone.
RELATIVE_STEP = 0.25
CLEAN = ("headers", "footers", "quotes")


@dataclass(frozen=True)
class Recipe:
    """How one benchmark's recurrent model is trained (`train`'s arguments)."""

    task: str
    corpus: str
    remove: tuple[str, ...] = ()
    epochs: int = 6
    learning_rate: float | None = None  # None: the architecture's
    pretrain_epochs: int = 0
    refit: bool = False  # train again on all training texts at the end
    preset: str | None = None  # shipped under this name by --save-presets
    cell: str | None = None  # None: the architecture's (recurrent_zoo.cells)
    # Other `get` arguments, as (name, value) pairs.
    overrides: tuple[tuple[str, Any], ...] = ()


# No unlabeled posts here: the LM reads the training part only. Refit on
# all training texts at the end, as the baseline is.
_NEWSGROUPS = Recipe(
    "topic",
    "20newsgroups",
    epochs=8,
    learning_rate=2e-3,
    pretrain_epochs=5,
    refit=True,
    preset="newsgroups_topic",
)
# The recurrent classifier alone: LM pretraining on train + train/unsup,
# then fine-tuning at a third of the from-scratch rate (the preset until
# NBSVM joined it).
_IMDB = Recipe("sentiment", "imdb", epochs=3, learning_rate=1e-3, pretrain_epochs=4)
# From scratch at the architecture's rate.
_IMDB_SCRATCH = Recipe("sentiment", "imdb", epochs=3, learning_rate=3e-3)
BENCHMARKS = {
    # The above, averaged with NBSVM over the whole text's hashed unigrams
    # and bigrams, then both parts refit on all training texts: see the
    # README ("Accuracy").
    "imdb": replace(
        _IMDB,
        refit=True,
        preset="imdb_sentiment",
        overrides=(("naive_bayes_buckets", 2**22), ("wide_weight", 0.5)),
    ),
    "imdb_recurrent_only": _IMDB,
    # The same recipe with the layer-normalized GRU in place of the LSTM.
    "imdb_layer_norm_gru": replace(_IMDB, cell="layer_norm_gru"),
    # minGRU (parallel in time, gates of x_t only) under the same recipe.
    "imdb_min_gru": replace(_IMDB, cell="min_gru"),
    # minGRU's own best on validation (README, "minGRU and minLSTM"): the
    # LM pretraining lowered its validation accuracy, so from scratch, two
    # stacked layers.
    "imdb_min_gru_scratch": replace(
        _IMDB_SCRATCH, cell="min_gru", overrides=(("units", (128, 128)),)
    ),
    # minGRU with a bounded candidate (tanh for the paper's g), under the
    # LSTM's recipe and from scratch.
    "imdb_min_gru_tanh": replace(_IMDB, cell="min_gru_tanh"),
    "imdb_min_gru_tanh_scratch": replace(_IMDB_SCRATCH, cell="min_gru_tanh"),
    # What the LM pretraining adds to the layer-normalized LSTM.
    "imdb_layer_norm_lstm_scratch": _IMDB_SCRATCH,
    "20newsgroups": _NEWSGROUPS,
    "20newsgroups_clean": replace(_NEWSGROUPS, remove=CLEAN, preset=None),
}
# Reference figures given with the task, measured on these exact files.
REFERENCE = {"imdb": 0.907, "20newsgroups": 0.862}


def linear_baseline(train, test, seed: int) -> dict:
    """TF-IDF word 1-2-grams + LinearSVC, C chosen on a validation split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    def fit(data, c):
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        features = vectorizer.fit_transform(data.texts)
        return vectorizer, LinearSVC(C=c).fit(features, data.labels)

    def score(model, data):
        vectorizer, classifier = model
        predicted = classifier.predict(vectorizer.transform(data.texts))
        return float(np.mean(predicted == data.labels))

    started = time.perf_counter()
    part, validation = train.split(0.1, seed)
    scores = {c: score(fit(part, c), validation) for c in (0.1, 0.3, 1.0, 3.0)}
    best_c = max(scores, key=scores.get)
    model = fit(train, best_c)
    seconds = time.perf_counter() - started
    return {
        "test_accuracy": score(model, test),
        "C": best_c,
        "validation_accuracy_by_C": {str(c): s for c, s in scores.items()},
        "train_seconds": seconds,
    }


def run_one(name: str, args: argparse.Namespace) -> dict:
    recipe = BENCHMARKS[name]
    task, corpus, remove = recipe.task, recipe.corpus, recipe.remove
    epochs = args.epochs or recipe.epochs
    pretrain_epochs = recipe.pretrain_epochs
    if args.pretrain_epochs is not None:
        pretrain_epochs = args.pretrain_epochs
    elif args.quick:
        pretrain_epochs = min(pretrain_epochs, 1)
    per_class = 20 if args.quick else None
    kwargs = {"remove": remove} if remove else {}
    train_data = load_corpus(
        corpus, args.data, "train", max_per_class=per_class, seed=args.seed, **kwargs
    )
    test_data = load_corpus(
        corpus, args.data, "test", max_per_class=per_class, seed=args.seed, **kwargs
    )
    print(f"[{name}] baseline on {len(train_data)} / {len(test_data)}", flush=True)
    baseline = linear_baseline(train_data, test_data, args.seed)
    print(f"[{name}] baseline test accuracy {baseline['test_accuracy']:.4f}")

    out = ROOT / "runs" / (f"quick_{name}" if args.quick else name)
    if args.seed:  # seed 0 keeps the folder runs made before seeds existed
        out = out.with_name(f"{out.name}_seed{args.seed}")
    metrics = train(
        task,
        args.data,
        out,
        corpus=corpus,
        epochs=1 if args.quick else epochs,
        learning_rate=recipe.learning_rate,
        pretrain_epochs=pretrain_epochs,
        refit=recipe.refit,
        max_per_class=per_class,
        test_max_per_class=per_class,
        remove=remove,
        seed=args.seed,
        overrides=recipe_overrides(recipe, args.quick),
        command=run_record()["command"],
        verbose=2,
    )
    model = keras.saving.load_model(out / "model.keras", compile=False)
    parts = part_accuracies(model, test_data)
    result = {
        "task": task,
        "corpus": corpus,
        "remove": list(remove),
        "examples": metrics["examples"],
        "model": model_record(metrics, model, parts),
        "baseline": baseline,
        "reference_baseline_accuracy": REFERENCE.get(name),
        "seed": args.seed,
        "recipe": recipe_record(recipe),
        **run_record(),
    }
    # Only the first seed's model ships (`over_seeds` keeps its row).
    first_seed = args.seed == getattr(args, "seeds", [args.seed])[0]
    if args.save_presets and recipe.preset and not args.quick and first_seed:
        save_preset(model, recipe, result, args)
    return result


def recipe_overrides(recipe: Recipe, quick: bool) -> dict:
    """The model arguments a recipe sets (its cell among them)."""
    overrides = dict(recipe.overrides)
    if recipe.cell is not None:
        overrides["cell"] = recipe.cell
    if quick:  # a smoke run: tiny parts, not the recipe's 2^22-bucket table
        overrides.update(units=(4,), embedding_dim=8)
        if overrides.get("naive_bayes_buckets"):
            overrides["naive_bayes_buckets"] = 2**12
    return overrides


def model_record(metrics: dict, model: keras.Model, parts: dict | None) -> dict:
    """A run's model as its results row stores it."""
    pretrain_seconds = (metrics.get("pretraining") or {}).get("seconds", 0.0)
    refit_seconds = (metrics.get("refit") or {}).get("train_seconds", 0.0)
    return {
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        # Pretraining, fine-tuning and refitting: the model's whole cost.
        "train_seconds": metrics["train_seconds"] + pretrain_seconds + refit_seconds,
        "pretrain_seconds": pretrain_seconds,
        "pretraining": metrics.get("pretraining"),
        "refit": metrics.get("refit"),
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "val_accuracy": metrics["history"].get("val_accuracy"),
        "config": model.get_config(),
        "parameters": model.count_params(),
        # A wide & deep model's parts on the same test texts.
        "part_test_accuracy": parts,
    }


def recipe_record(recipe: Recipe) -> dict:
    """The recipe as stored with each run (JSON types, so it compares equal
    to what a results file reads back)."""
    return json.loads(json.dumps(asdict(recipe)))


def recorded_runs(row: dict | None, name: str, seeds: list[int]) -> dict[int, dict]:
    """The runs of `seeds` already in a benchmark's row made by its current
    recipe, by seed: what `--resume` keeps instead of training again."""
    if not row:
        return {}
    current = recipe_record(BENCHMARKS[name])
    return {
        run["seed"]: run
        for run in row.get("seeds", [row])
        if run["seed"] in seeds and run.get("recipe") == current
    }


def part_accuracies(model: keras.Model, test) -> dict | None:
    """Test accuracy of a wide & deep model's recurrent part, its linear
    part and their mix (what it outputs); None for a model of one part."""
    parts = getattr(model, "_parts", None)
    if parts is None:
        return None
    texts = np.asarray(test.texts, dtype=object)
    outputs = parts.predict(texts, batch_size=256, verbose=0)
    labels = np.asarray(test.labels)
    scores = {}
    for name, p in zip(("recurrent", "linear", "mixed"), outputs, strict=True):
        guess = (p[:, 0] > 0.5).astype(int) if p.shape[1] == 1 else p.argmax(axis=1)
        scores[name] = float(np.mean(guess == labels))
    return scores


def vocabulary_sized(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's `VOCABULARY_SIZED` weights by path, in that order."""
    variables = {v.path: v for v in model.weights}
    return {
        name: keras.ops.convert_to_numpy(variables[name])
        for name in VOCABULARY_SIZED
        if name in variables
    }


def save_preset(
    model: keras.Model, recipe: Recipe, result: dict, args: argparse.Namespace
) -> None:
    """Ships weights and vocabulary without optimizer state, stored as float16.

    The vocabulary-sized matrices, most of the file, are rounded to a grid
    (`save_compact(rounded=...)`) as well. The file shipped is scored again
    on the full test split: its card gives that file's accuracy, next to
    the float32 model's.
    """
    PRESET_DIR.mkdir(exist_ok=True)
    path = PRESET_DIR / f"{recipe.preset}.keras"
    weights = vocabulary_sized(model)
    save_compact(model, path, rounded=list(weights), relative_step=RELATIVE_STEP)
    shipped = evaluate(
        path, args.data, corpus=recipe.corpus, remove=recipe.remove, seed=args.seed
    )
    card = {
        "description": f"{result['task']} model trained on {result['corpus']}",
        "test_accuracy": shipped["accuracy"],
        "test_macro_f1": shipped["macro_f1"],
        "float32_test_accuracy": result["model"]["test_accuracy"],
        "storage": "float16 weights (recurrent_zoo.models.save_compact)",
        "rounded": {name: grid_step(w, RELATIVE_STEP) for name, w in weights.items()},
        "class_names": list(model.class_names),
        "command": result["command"],
        "date": result["date"],
        "size_bytes": path.stat().st_size,
    }
    (PRESET_DIR / f"{recipe.preset}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"preset written: {path} ({card['size_bytes'] / 1e6:.1f} MB)")


def over_seeds(runs: list[dict]) -> dict:
    """One benchmark's row from its runs (one per seed), seed order kept.

    The row is the first seed's result (its model is the one a preset is
    saved from), plus "seeds": every run, and "spread": mean and sample
    standard deviation over the seeds of the model's and the baseline's
    test accuracy (the deviation is None for one seed).
    """

    def spread(values: list[float]) -> dict:
        return {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "values": values,
        }

    return {
        **runs[0],
        "seeds": runs,
        "spread": {
            "seeds": [run["seed"] for run in runs],
            "model_test_accuracy": spread(
                [run["model"]["test_accuracy"] for run in runs]
            ),
            "baseline_test_accuracy": spread(
                [run["baseline"]["test_accuracy"] for run in runs]
            ),
        },
    }


def _mean_std(result: dict, part: str) -> str:
    """ "0.9107 ± 0.0012 (3 seeds)", or the one figure of a one-seed row."""
    spread = result.get("spread", {}).get(f"{part}_test_accuracy")
    if spread is None or spread["std"] is None:
        return f"{result[part]['test_accuracy']:.4f}"
    seeds = len(spread["values"])
    return f"{spread['mean']:.4f} ± {spread['std']:.4f} ({seeds} seeds)"


def write(results: dict, quick: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / ("accuracy_quick" if quick else "accuracy")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Test accuracy: prebuilt recurrent models vs TF-IDF + LinearSVC",
        "",
        "Full official train/test splits; validation (10%) carved from train.",
        "`+ refit N`: then N epochs on all training texts (validation included),",
        "the model scored and shipped; train time includes it.",
        "Written by `benchmarks/accuracy.py`; each row records its own command.",
        "With several seeds (`--seeds`): mean ± sample standard deviation of",
        "the test accuracy, the model's and the baseline's (whose validation",
        "split, and so its C, follows the seed); the other columns are the",
        "first seed's run.",
        "",
        "| benchmark | recurrent model | macro-F1 | epochs (best) | train time "
        "| of which LM pretraining | TF-IDF+SVM | its time | reference | date |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        m, b = r["model"], r["baseline"]
        ref = r["reference_baseline_accuracy"]
        refit = f" + refit {m['refit']['epochs']}" if m.get("refit") else ""
        lines.append(
            f"| {name} | {_mean_std(r, 'model')} | {m['test_macro_f1']:.4f} "
            f"| {m['epochs_run']} ({m['best_epoch']}){refit} "
            f"| {m['train_seconds'] / 60:.1f} min "
            f"| {m.get('pretrain_seconds', 0) / 60:.1f} min "
            f"| {_mean_std(r, 'baseline')} (C={b['C']}) "
            f"| {b['train_seconds']:.0f} s "
            f"| {'' if ref is None else f'{ref:.3f}'} | {r['date'][:10]} |"
        )
    lines += ["", "Commands and machines:", ""]
    for name, r in results.items():
        machine = r["machine"]
        lines.append(
            f"- {name}: `{r['command']}` on {machine['cpu']} "
            f"({cores_text(machine)}, GPUs: {machine['gpus'] or 'none'}), "
            f"TF {machine['tensorflow']}, Keras {machine['keras']}"
            + (f". {r['note']}" if r.get("note") else "")
        )
        for run in r.get("seeds", [r]):
            parts = run["model"].get("part_test_accuracy")
            if parts:
                lines.append(
                    f"  - seed {run['seed']}: recurrent part alone "
                    f"{parts['recurrent']:.4f}, linear part alone "
                    f"{parts['linear']:.4f}, mixed {parts['mixed']:.4f} (test); "
                    f"{run['model']['train_seconds'] / 60:.1f} min on "
                    f"{run['machine']['cpu']}"
                )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def corpus_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every script over these benchmarks takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--data", default=os.environ.get("RECURRENT_ZOO_DATA", "../shared/data")
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=None, help="override per benchmark"
    )
    parser.add_argument(
        "--pretrain-epochs", type=int, default=None, help="override per benchmark"
    )
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[0],
        help="comma-separated seeds, one full run each (e.g. 0,1,2); the row "
        "reports mean and standard deviation (default: 0)",
    )
    parser.add_argument("--save-presets", action="store_true")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs of these seeds already in the results made by the "
        "same recipe, run only the others (finishes an interrupted --seeds run)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny slices, writes accuracy_quick.*"
    )
    args = parser.parse_args(argv)
    names = args.only.split(",")
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; have {list(BENCHMARKS)}")
    stem = RESULTS / ("accuracy_quick.json" if args.quick else "accuracy.json")
    results = json.loads(stem.read_text()) if stem.is_file() else {}
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    for name in names:
        kept = recorded_runs(results.get(name), name, args.seeds) if args.resume else {}
        runs = []
        for seed in args.seeds:
            if seed in kept:
                print(f"[{name}] seed {seed}: kept from the results file", flush=True)
                runs.append(kept[seed])
            else:
                namespace = argparse.Namespace(**{**vars(args), "seed": seed})
                runs.append(run_one(name, namespace))
            results[name] = over_seeds(runs)
            write(results, args.quick)  # what finished so far, at once
    return 0


if __name__ == "__main__":
    sys.exit(main())
