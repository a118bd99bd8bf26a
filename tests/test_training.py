"""`recurrent_zoo.training`: resuming a killed run for real, and its parts."""

import contextlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import keras
import numpy as np
import pytest
from tiny_models import TINY_TOPIC

from recurrent_zoo.cli import main
from recurrent_zoo.models.registry import NEWSGROUPS
from recurrent_zoo.training import infer_corpus, train
from recurrent_zoo.training.callbacks import (
    ResumableEarlyStopping as _ResumableEarlyStopping,
)
from recurrent_zoo.training.callbacks import stops_early as _stops_early
from recurrent_zoo.training.history import first_best as _first_best
from recurrent_zoo.training.history import read_history as _read_history
from recurrent_zoo.training.history import trim_history as _trim_history

EPOCHS = 4
PEAK = 3e-3  # the sentiment architecture's learning rate
WAIT_S = 300  # for the first epoch of a process started from scratch

REPO_ROOT = Path(__file__).resolve().parent.parent


def _history_epochs(out):
    lines = (out / "history.csv").read_text().splitlines()
    return lines[1:], [int(line.split(",")[0]) for line in lines[1:]]


def _backed_up(meta):
    try:
        return json.loads(meta.read_text())["epoch"]
    except (OSError, ValueError, KeyError):  # absent, or caught mid-write
        return 0


# Two cold starts of TensorFlow and the model (about 35 s alone, over a
# minute on a busy machine); `pytest -m slow tests/test_training.py`.
@pytest.mark.slow
@pytest.mark.alone
def test_killed_run_resumes_after_its_last_finished_epoch(shared_data, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "sentiment", "--data", str(shared_data), "--out", str(out)]
    argv += ["--epochs", str(EPOCHS), "--patience", "10"]  # no early stop
    argv += ["--max-per-class", "60", "--test-max-per-class", "10"]
    argv += ["--batch-size", "8", "--units", "4", "--embedding-dim", "8"]
    argv += ["--vocabulary-size", "500", "--sequence-length", "40"]
    log_path = tmp_path / "first.log"
    meta = out / "backup" / "training_metadata.json"
    with log_path.open("w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "recurrent_zoo.cli", *argv],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        try:
            deadline = time.monotonic() + WAIT_S
            while _backed_up(meta) < 1:
                if first.poll() is not None:
                    pytest.fail(f"training exited early:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no epoch finished in {WAIT_S} s")
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    done = _backed_up(meta)
    assert 1 <= done < EPOCHS, f"the kill came too late: {done} epochs done"
    assert not (out / "metrics.json").exists()
    rows_before, epochs_before = _history_epochs(out)
    # A kill between logging epoch `done` and backing it up would leave its
    # row too (the resume drops it and runs that epoch again).
    assert epochs_before in (list(range(done)), list(range(done + 1)))
    vocabulary = (out / "vocabulary.txt").read_text(encoding="utf-8")

    # An unfinished run is not resumed with other arguments.
    changed = list(argv)
    changed[changed.index("--epochs") + 1] = "5"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(changed) == 2
    assert "unfinished run with other arguments (epochs: 4 -> 5)" in stderr.getvalue()

    # The same command again (here in this process: the state is on disk).
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    assert f"Resuming {out}: {done} of {EPOCHS} epochs done." in stdout.getvalue()

    rows, epochs = _history_epochs(out)
    assert epochs == list(range(EPOCHS))  # nothing repeated, nothing lost
    assert rows[:done] == rows_before[:done]  # finished epochs untouched
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == EPOCHS and not metrics["stopped_early"]
    assert metrics["history"]["epoch"] == [1, 2, 3, 4]
    # Each epoch starts where one uninterrupted cosine decay puts it: the
    # resumed epochs continued the optimizer's step count, not restarted it.
    expected = [PEAK * 0.5 * (1 + math.cos(math.pi * e / EPOCHS)) for e in range(4)]
    assert metrics["history"]["learning_rate"] == pytest.approx(expected, rel=1e-4)
    # The vocabulary was read back, not adapted again.
    assert (out / "vocabulary.txt").read_text(encoding="utf-8") == vocabulary
    model = keras.saving.load_model(out / "model.keras", compile=False)
    assert model.vectorizer.get_vocabulary(False) == vocabulary.split("\n")
    assert not (out / "backup").exists()


def _stop_epoch(callback, values, start=0):
    """Feeds `values` as epochs `start, start + 1, ...`; the stopping epoch."""
    for epoch, value in enumerate(values, start):
        callback.on_epoch_end(epoch, {"val_loss": value})
        if callback.model.stop_training:
            return epoch
    return None


def test_early_stopping_carries_on_as_if_never_interrupted():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        n = int(rng.integers(1, 10))
        # Coarse values make ties (not an improvement) common; NaN too.
        values = list(np.round(rng.random(n), 1))
        if rng.random() < 0.2:
            values[int(rng.integers(n))] = math.nan
        patience = int(rng.integers(0, 4))
        options = dict(monitor="val_loss", mode="min", patience=patience)

        whole = keras.callbacks.EarlyStopping(**options)
        whole.set_model(types.SimpleNamespace(stop_training=False))
        whole.on_train_begin()
        stop = _stop_epoch(whole, values)
        # A run is only ever interrupted before it stops.
        last = len(values) if stop is None else stop + 1
        for cut in range(last + 1):
            resumed = _ResumableEarlyStopping(values[:cut], **options)
            resumed.set_model(types.SimpleNamespace(stop_training=False))
            resumed.on_train_begin()
            if resumed.model.stop_training:
                assert cut == last and stop == cut - 1
            else:
                assert _stop_epoch(resumed, values[cut:], cut) == stop
                assert resumed.best_epoch == whole.best_epoch
            checked += 1
    assert checked > 200


def test_resume_drops_rows_of_epochs_that_will_run_again(tmp_path):
    path = tmp_path / "history.csv"
    header = b"epoch,loss,val_loss\r\n"
    rows = [b"0,0.9,0.8\r\n", b"1,0.7,0.75\r\n", b"2,0.6,0.7\r\n"]
    # The backup holds 2 epochs; epoch 2 was logged, not backed up, and a
    # kill cut the next write short.
    path.write_bytes(header + b"".join(rows) + b"3,0.5")
    _trim_history(path, done=2)
    assert path.read_bytes() == header + rows[0] + rows[1]
    history = _read_history(tmp_path)
    assert [row["epoch"] for row in history] == [0, 1]
    assert history[1] == {"epoch": 1, "loss": 0.7, "val_loss": 0.75}
    _trim_history(path, done=2)  # nothing more to drop
    assert path.read_bytes() == header + rows[0] + rows[1]
    path.write_bytes(b"epoch,lo")  # killed while writing the header
    _trim_history(path, done=0)
    assert not path.exists() and _read_history(tmp_path) == []


def test_corpus_is_inferred_from_class_names():
    assert infer_corpus(("neg", "pos")) == "imdb"
    assert infer_corpus(NEWSGROUPS) == "20newsgroups"
    with pytest.raises(ValueError, match="corpus"):
        infer_corpus(("pos", "neg"))


@pytest.mark.parametrize(
    "unlabeled, max_per_class, cap",
    [(None, None, None), (0, None, 0), (500, None, 500), (None, 6, 10), (7, 6, 7)],
)
def test_pretraining_reads_the_unlabeled_texts_its_arguments_allow(
    unlabeled, max_per_class, cap
):
    from recurrent_zoo.training.arguments import run_arguments
    from recurrent_zoo.training.pretraining import _unlabeled_cap
    from recurrent_zoo.training.tasks import task_for

    kw = dict(corpus=None, epochs=1, batch_size=8, learning_rate=None)
    kw.update(validation_fraction=0.1, patience=2, monitor="val_loss", seed=0)
    kw.update(max_per_class=max_per_class, test_max_per_class=None, remove=())
    kw.update(overrides=None, pretrain_epochs=1, pretrain_learning_rate=2e-3)
    kw.update(pretrain_unlabeled=unlabeled, refit=False)
    arguments = run_arguments(task_for("sentiment"), None, **kw)
    # Recorded only when set, so runs from before the option still resume.
    assert arguments.get("pretrain_unlabeled", "absent") == (
        "absent" if unlabeled is None else unlabeled
    )
    # A sliced run's 10 training texts cap the unlabeled ones at as many.
    assert _unlabeled_cap(arguments, ["a text"] * 10) == cap


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="poetry"), "unknown task"),
        (dict(remove=("headers",)), "only applies to 20newsgroups"),
        (dict(corpus="20newsgroups", remove=("signatures",)), "remove takes"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(epochs=0), "epochs"),
        (dict(overrides={"class_names": ("a", "b")}), "come from the data"),
        (dict(pretrain_epochs=-1), "pretrain_epochs must be >= 0, got -1"),
        (dict(monitor="accuracy"), "monitor must be one of .*'accuracy'"),
        (dict(dtype_policy="float64"), "dtype_policy must be one of .*'float64'"),
        (
            dict(pretrain_epochs=1, pretrain_learning_rate=0.0),
            "pretrain_learning_rate must be positive, got 0.0",
        ),
        (dict(pretrain_unlabeled=100), "pretrain_unlabeled=100 needs pretrain_epochs"),
        (
            dict(pretrain_epochs=1, pretrain_unlabeled=-1),
            "pretrain_unlabeled must be >= 0, got -1",
        ),
    ],
)
def test_bad_arguments_fail_before_anything_is_written(tmp_path, kwargs, message):
    task = kwargs.pop("task", "sentiment")
    with pytest.raises(ValueError, match=message):
        train(task, tmp_path / "no-data", tmp_path / "out", verbose=0, **kwargs)
    assert not (tmp_path / "out").exists()


def test_overwrite_deletes_the_previous_run_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "latest.weights.h5").write_bytes(b"old")
    (out / "logs").mkdir()
    ours = ["run.json", "metrics.json", "history.csv", "best.keras", "model.keras"]
    for name in ours:
        (out / name).write_text("{}")
    (out / "notes.txt").write_text("mine")
    # Cleared before the data is read, so a missing corpus still shows it.
    with pytest.raises(FileNotFoundError):
        train("sentiment", tmp_path / "no-data", out, overwrite=True, verbose=0)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.slow  # two training runs, the second a restart
def test_a_restart_with_the_vocabulary_read_back_still_adapts_the_idf(
    shared_data, tmp_path
):
    # A run killed in its first epoch leaves run.json and vocabulary.txt but
    # no weights: the restart reads the vocabulary back and must still set
    # the bag of words' IDF from the training texts, not train with IDF 1.
    out = tmp_path / "run"
    kwargs = dict(
        corpus="20newsgroups",
        epochs=1,
        max_per_class=3,
        test_max_per_class=1,
        overrides=TINY_TOPIC,
        verbose=0,
    )
    train("topic", shared_data, out, **kwargs)
    first = keras.saving.load_model(out / "model.keras", compile=False)
    for path in out.iterdir():
        if path.name not in ("run.json", "vocabulary.txt"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    train("topic", shared_data, out, **kwargs)
    again = keras.saving.load_model(out / "model.keras", compile=False)
    idf = again.get_layer("bag_of_words").idf.numpy()
    assert len(set(idf[2:].tolist())) > 1
    np.testing.assert_array_equal(idf, first.get_layer("bag_of_words").idf.numpy())


def test_the_best_epoch_is_the_first_best_of_the_monitored_value():
    values = [0.5, math.nan, 0.3, 0.3, 0.7]
    assert _first_best(values, "val_loss") == 2  # the first of the tie
    assert _first_best(values, "val_accuracy") == 4
    assert _first_best([math.nan], "val_accuracy") is None


def test_stopped_early_says_what_keras_printed():
    # Patience 1 runs out at the last of 3 epochs: Keras prints "Epoch 3:
    # early stopping", so the record must say it stopped early too.
    rows = [{"val_loss": v, "val_accuracy": a} for v, a in
            [(0.30, 0.80), (0.31, 0.85), (0.32, 0.86)]]  # fmt: skip
    assert _stops_early(rows, patience=1, monitor="val_loss")
    # By accuracy the same epochs keep improving: no stop.
    assert not _stops_early(rows, patience=1, monitor="val_accuracy")


@pytest.mark.slow  # a short training run
def test_monitoring_validation_accuracy_picks_its_best_epoch(shared_data, tmp_path):
    out = tmp_path / "run"
    metrics = train(
        "sentiment",
        shared_data,
        out,
        epochs=3,
        patience=3,
        monitor="val_accuracy",
        max_per_class=40,
        test_max_per_class=5,
        overrides={"units": (4,), "embedding_dim": 8, "vocabulary_size": 300},
        verbose=0,
    )
    accuracy = metrics["history"]["val_accuracy"]
    assert metrics["monitor"] == "val_accuracy"
    assert metrics["best_epoch"] == 1 + _first_best(accuracy, "val_accuracy")
    assert json.loads((out / "run.json").read_text())["monitor"] == "val_accuracy"
