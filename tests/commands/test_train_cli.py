"""`recurrent-zoo train` and `evaluate` end to end on a slice of real IMDB."""

import contextlib
import importlib.util
import io
import json
import shlex

import numpy as np
import pytest
from cli_support import run_cli

from recurrent_zoo.cli import build_parser
from recurrent_zoo.commands.evaluate import format_confusion
from recurrent_zoo.commands.train import command_line, removed_parts

TINY = [
    "--epochs", "2",
    "--max-per-class", "30",
    "--test-max-per-class", "20",
    "--batch-size", "16",
    "--units", "4",
    "--embedding-dim", "8",
    "--vocabulary-size", "500",
    "--sequence-length", "40",
]  # fmt: skip
RUN_FILES = (
    "run.json",
    "vocabulary.txt",
    "history.csv",
    "best.keras",
    "model.keras",
    "metrics.json",
    "curves.png",
    "confusion.png",
)


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    """One tiny training run shared by the tests of this module."""
    out = tmp_path_factory.mktemp("train") / "sentiment"
    argv = ["train", "sentiment", "--data", str(shared_data), "--out", str(out)]
    # A wide & deep model, so that its own training step runs end to end.
    argv += [*TINY, "--bag-of-words", "--wide-weight", "0.6", "--quiet"]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    return {"argv": argv, "out": out, "stdout": stdout, "data": shared_data}


def test_train_writes_every_file_and_a_summary(run):
    out = run["out"]
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()  # only needed until the run finishes
    # TensorBoard logs need the tensorboard package; training runs without.
    events = list((out / "logs").rglob("events.out.tfevents.*"))
    assert bool(events) == (importlib.util.find_spec("tensorboard") is not None)
    metrics = json.loads((out / "metrics.json").read_text())
    summary = run["stdout"]
    assert f"test accuracy {metrics['test']['accuracy']:.3f}" in summary
    assert f"macro-F1 {metrics['test']['macro_f1']:.3f}" in summary
    assert str(out / "model.keras") in summary


def test_metrics_match_the_saved_models_own_predictions(run):
    import keras

    from recurrent_zoo.data import load_corpus
    from recurrent_zoo.metrics import classification_report

    out = run["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    model = keras.saving.load_model(out / "model.keras")
    test = load_corpus("imdb", run["data"], "test", max_per_class=20)
    predicted = model.predict_proba(test.texts).argmax(axis=1)
    ours = classification_report(test.labels, predicted, model.class_names)
    recorded = metrics["test"]
    assert recorded["confusion_matrix"] == ours["confusion_matrix"]
    assert recorded["accuracy"] == pytest.approx(ours["accuracy"])
    assert recorded["macro_f1"] == pytest.approx(ours["macro_f1"])
    assert recorded["class_names"] == ["neg", "pos"]
    assert (model.bag_of_words, model.wide_weight) == (True, 0.6)

    # model.keras is the best epoch's model, with the adapted vocabulary.
    best = keras.saving.load_model(out / "best.keras")
    for a, b in zip(model.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    vocabulary = (out / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    assert model.vectorizer.get_vocabulary(False) == vocabulary
    assert 100 < len(vocabulary) <= 500 - 2

    history = metrics["history"]
    val_loss = history["val_loss"]
    assert history["epoch"] == [1, 2] and metrics["epochs_run"] == 2
    assert metrics["best_epoch"] == 1 + int(np.argmin(val_loss))
    # Cosine decay over both epochs: the second starts at half the peak.
    assert history["learning_rate"] == pytest.approx([3e-3, 1.5e-3], rel=1e-4)
    assert metrics["examples"] == {"train": 54, "validation": 6, "test": 40}
    assert metrics["train_seconds"] == pytest.approx(sum(history["seconds"]))
    assert metrics["machine"]["cpu_count"] >= 1
    assert metrics["machine"]["keras"] == keras.__version__
    assert metrics["arguments"]["overrides"] == {
        "units": [4],
        "embedding_dim": 8,
        "vocabulary_size": 500,
        "sequence_length": 40,
        "bag_of_words": True,
        "wide_weight": 0.6,
    }
    # The recorded command repeats the run: it parses to the same arguments.
    words = shlex.split(metrics["command"])
    assert words[:3] == ["recurrent-zoo", "train", "sentiment"]
    again = build_parser().parse_args(words[1:])
    first = build_parser().parse_args(run["argv"])
    assert {**vars(again), "handler": None} == {**vars(first), "handler": None}


def test_rerunning_a_finished_run_does_not_retrain(run):
    metrics = run["out"] / "metrics.json"
    before = metrics.read_bytes(), metrics.stat().st_mtime_ns
    code, stdout, _ = run_cli(run["argv"])
    assert code == 0
    assert "already finished" in stdout
    assert (metrics.read_bytes(), metrics.stat().st_mtime_ns) == before


def test_a_changed_argument_is_refused(run):
    argv = list(run["argv"])
    argv[argv.index("--epochs") + 1] = "3"
    metrics = run["out"] / "metrics.json"
    before = metrics.read_bytes()
    code, _, stderr = run_cli(argv)
    assert code == 2
    assert "epochs: 2 -> 3" in stderr and "--overwrite" in stderr
    assert metrics.read_bytes() == before


def test_evaluate_cli_reproduces_the_test_metrics(run):
    model = str(run["out"] / "model.keras")
    data = ["--data", str(run["data"]), "--max-per-class", "20"]
    recorded = json.loads((run["out"] / "metrics.json").read_text())["test"]

    code, stdout, _ = run_cli(["evaluate", model, *data, "--json"])
    assert code == 0
    report = json.loads(stdout)
    assert report["corpus"] == "imdb" and report["split"] == "test"
    assert report["confusion_matrix"] == recorded["confusion_matrix"]
    assert report["accuracy"] == pytest.approx(recorded["accuracy"])
    assert report["macro_f1"] == pytest.approx(recorded["macro_f1"])


def test_confusion_matrix_text_lines_up():
    text = format_confusion([[12, 3], [1, 1000]], ["neg", "positive"])
    header, *rows = text.splitlines()
    assert header.split() == ["0", "1"]
    assert rows[0].split() == ["0", "neg", "12", "3"]
    assert rows[1].split() == ["1", "positive", "1", "1000"]
    # Right-aligned columns: every line ends at the same width.
    assert len({len(line) for line in (header, *rows)}) == 1


def test_evaluate_refuses_a_corpus_with_other_classes(run):
    model = str(run["out"] / "model.keras")
    data = ["--data", str(run["data"]), "--max-per-class", "1"]
    code, _, stderr = run_cli(["evaluate", model, *data, "--corpus", "20newsgroups"])
    assert code == 2
    assert "classes" in stderr and "'neg', 'pos'" in stderr


def test_remove_options_and_command_line_round_trip():
    parser = build_parser()
    argv = ["train", "topic", "--remove", "quotes,headers", "--remove-footers"]
    args = parser.parse_args([*argv, "--units", "64,32", "--out", "x"])
    assert removed_parts(args) == ("footers", "headers", "quotes")
    assert args.units == (64, 32)
    words = shlex.split(command_line(args))
    assert words[words.index("--remove") + 1] == "footers,headers,quotes"
    again = parser.parse_args(words[1:])
    assert removed_parts(again) == removed_parts(args)
    assert again.units == args.units and again.out == "x"
    for bad in (["--remove", "signatures"], ["--units", "64,x"]):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(["train", "topic", *bad])


def test_pretraining_options_round_trip_through_the_recorded_command():
    argv = ["train", "sentiment", "--pretrain-epochs", "4"]
    argv += ["--pretrain-learning-rate", "0.001", "--pretrain-unlabeled", "0"]
    args = build_parser().parse_args(argv)
    assert (args.pretrain_epochs, args.pretrain_learning_rate) == (4, 1e-3)
    assert args.pretrain_unlabeled == 0
    words = shlex.split(command_line(args))
    assert words[words.index("--pretrain-epochs") + 1] == "4"
    again = build_parser().parse_args(words[1:])
    assert (again.pretrain_epochs, again.pretrain_learning_rate) == (4, 1e-3)
    assert again.pretrain_unlabeled == 0
    # Not asked for: not in the command (it defaults to no pretraining).
    plain = command_line(build_parser().parse_args(["train", "sentiment"]))
    assert "--pretrain" not in plain


@pytest.mark.parametrize(
    "flag, value", [("--bag-of-words", True), ("--no-bag-of-words", False)]
)
def test_bag_of_words_switch_round_trips_through_the_recorded_command(flag, value):
    args = build_parser().parse_args(["train", "topic", flag])
    assert args.bag_of_words is value
    words = shlex.split(command_line(args))
    assert flag in words
    assert build_parser().parse_args(words[1:]).bag_of_words is value
    # Unset: the architecture's default, and nothing in the command.
    plain = build_parser().parse_args(["train", "topic"])
    assert plain.bag_of_words is None and "bag-of-words" not in command_line(plain)


def test_refit_flag_round_trips_through_the_recorded_command():
    args = build_parser().parse_args(["train", "topic", "--refit"])
    assert args.refit is True
    words = shlex.split(command_line(args))
    assert "--refit" in words
    assert build_parser().parse_args(words[1:]).refit is True
    plain = build_parser().parse_args(["train", "topic"])
    assert plain.refit is False and "--refit" not in command_line(plain)


def test_naive_bayes_buckets_train_an_nbsvm_part_on_the_training_labels(
    shared_data, tmp_path
):
    import keras

    out = tmp_path / "nb"
    argv = ["train", "sentiment", "--data", str(shared_data), "--out", str(out)]
    argv += [*TINY, "--naive-bayes-buckets", "4096", "--wide-weight", "0.5"]
    code, _, stderr = run_cli([*argv, "--quiet", "--epochs", "1"])
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arguments"]["overrides"]["naive_bayes_buckets"] == 4096
    words = shlex.split(metrics["command"])
    assert build_parser().parse_args(words[1:]).naive_bayes_buckets == 4096
    model = keras.saving.load_model(out / "model.keras")
    assert (model.naive_bayes_buckets, model.wide_weight) == (4096, 0.5)
    # Fitted on the run's training part (its labels), not left at zero.
    layer = model.get_layer("naive_bayes")
    assert np.count_nonzero(layer.kernel.numpy()) > 100


def test_the_readmes_main_job_is_a_valid_train_command():
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    block = readme.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    install, job = block.splitlines()[0].split(" && ")
    assert install == 'pip install -e ".[dev]"'
    words = shlex.split(job)
    assert words[0] == "recurrent-zoo"
    args = build_parser().parse_args(words[1:])
    # What the README's paragraph under the commands describes.
    assert (args.task, args.epochs, args.naive_bayes_buckets) == (
        "sentiment", 2, 4194304,
    )  # fmt: skip
    assert args.wide_weight == 0.5 and not args.pretrain_epochs
