"""The language-model task: its windows, loss, data and runs through `train`."""

import json
import math
import warnings

import keras
import numpy as np
import pytest

from recurrent_zoo.data import TextDocuments, load_text_documents
from recurrent_zoo.models import CharLanguageModel
from recurrent_zoo.training import fitting, train
from recurrent_zoo.training.language_modeling import (
    LanguageModelTask,
    read_characters,
    window_dataset,
    windows,
    written_characters,
)
from recurrent_zoo.training.run import Run
from recurrent_zoo.training.tasks import task_for

SENTENCES = [
    "The cat sat on the mat.",
    "A dog ran after the ball,\nand the ball rolled away.",
    "Rain fell on the old town; nobody minded.",
    "She wrote a letter to her friend in Zürich.",
    "\\ marks a path on some systems.",
]
# `vocabulary_size` is the char LM's `max_characters` (train's option name).
TINY = {"units": [16], "embedding_dim": 8, "sequence_length": 16, "vocabulary_size": 40}


def _corpus(folder, paragraphs=40):
    """A text file of `paragraphs` paragraphs (blank lines between them)."""
    rng = np.random.default_rng(0)
    text = "\n\n".join(" ".join(rng.choice(SENTENCES, 2)) for _ in range(paragraphs))
    path = folder / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_windows_cut_documents_as_computed_by_hand():
    streams = [np.array([2, 5, 6, 7, 8, 9, 10]), np.array([2]), np.array([2, 11])]
    flat, starts, first = windows(streams, length=4, warmup=1)
    assert starts.tolist() == [0, 3, 8] and first.tolist() == [True, False, True]
    ds, steps = window_dataset(streams, 4, batch_size=8, shuffle=False, seed=None)
    (inputs, targets), *rest = list(ds.as_numpy_iterator())
    assert steps == 1 and not rest
    # warmup = int(4 * 0.25) = 1: the second window re-reads 7 unscored.
    assert inputs.tolist() == [[2, 5, 6, 7], [7, 8, 9, 10], [2, 11, 0, 0]]
    assert targets.tolist() == [[5, 6, 7, 8], [0, 9, 10, 0], [11, 0, 0, 0]]


@pytest.mark.parametrize("length", [3, 8, 20])
def test_every_character_is_scored_exactly_once(length):
    rng = np.random.default_rng(length)
    streams = [np.array([2, *rng.integers(3, 50, n)]) for n in (0, 1, 7, 30, 61)]
    ds, steps = window_dataset(streams, length, batch_size=5, shuffle=True, seed=1)
    scored = np.concatenate([t[t > 0] for _, t in ds.as_numpy_iterator()])
    expected = np.concatenate([s[1:] for s in streams])
    assert sorted(scored.tolist()) == sorted(expected.tolist())
    assert steps == math.ceil(len(windows(streams, length, length // 4)[1]) / 5)


def test_the_loss_is_the_mean_over_real_characters_only():
    model = CharLanguageModel(cell="gru", units=(6,), embedding_dim=4)
    model.adapt(SENTENCES)
    task = LanguageModelTask("char_lm")
    task.compile(model, 1e-3)
    streams = [model.stream(text) for text in SENTENCES]
    ds, _ = window_dataset(streams, 32, batch_size=64, shuffle=False, seed=None)
    inputs, targets = next(ds.as_numpy_iterator())
    logits = keras.ops.convert_to_numpy(model(inputs)).astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    expected = -picked[targets > 0].mean()
    assert model.evaluate(ds, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_vocabulary_file_round_trips_newlines_and_backslashes(tmp_path):
    characters = ["\n", "\\", "n", "\r", "r", " ", "\u2028", "é"]
    run = Run(tmp_path)
    run.write_vocabulary(written_characters(characters))
    assert read_characters(run.read_vocabulary()) == characters
    run.write_vocabulary(written_characters([]))
    assert read_characters(run.read_vocabulary()) == []


def test_documents_split_apart_by_document():
    docs = TextDocuments([f"doc {i}" for i in range(10)])
    rest, held = docs.split(0.3, seed=4)
    assert len(held) == 3 and len(rest) == 7
    assert sorted(rest.texts + held.texts) == sorted(docs.texts)
    assert docs.split(0.3, seed=4)[1].texts == held.texts
    with pytest.raises(ValueError, match="1 document"):
        TextDocuments(["only"]).split(0.5, seed=0)


def test_text_sources_give_paragraphs_and_disjoint_splits(tmp_path):
    path = tmp_path / "book.txt"
    paragraphs = [f"Paragraph {i}.\nIts second line." for i in range(20)]
    path.write_bytes("\r\n\r\n".join(paragraphs).encode("utf-8"))
    train_part = load_text_documents(path, "train")
    test = load_text_documents(path, "test")
    assert test.texts == paragraphs[-2:] and train_part.texts == paragraphs[:-2]
    assert load_text_documents(path, "all").texts == paragraphs
    assert load_text_documents(path, "train", max_documents=3).texts == paragraphs[:3]
    split = tmp_path / "split"
    (split / "train" / "a").mkdir(parents=True)
    (split / "test").mkdir()
    (split / "train" / "a" / "x.txt").write_text("one\n\ntwo")
    (split / "test" / "y.txt").write_bytes(b"caf\xe9")  # latin-1, not UTF-8
    assert load_text_documents(split, "train").texts == ["one", "two"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_text_documents(split, "test").texts == ["café"]
    assert "not valid UTF-8" in str(caught[0].message)
    with pytest.raises(ValueError, match="1 document"):
        (tmp_path / "one.txt").write_text("a single paragraph")
        load_text_documents(tmp_path / "one.txt", "test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .txt files"):
        load_text_documents(tmp_path / "empty", "all")
    with pytest.raises(FileNotFoundError):
        load_text_documents(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="'valid'"):
        load_text_documents(path, "valid")


def test_labeled_corpora_give_their_texts_as_documents(tmp_path):
    for name, text in {"pos/a.txt": "good film", "neg/b.txt": "bad film"}.items():
        (tmp_path / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / name).write_text(text)
    task = task_for("char_lm")
    docs = task.load_split("folder", tmp_path, "train", max_per_class=None, seed=0)
    assert sorted(docs.texts) == ["bad film", "good film"] and not docs.class_names
    one = task.load_split("folder", tmp_path, "train", max_per_class=1, seed=0)
    assert len(one) == 1 and one.texts[0] in docs.texts


def test_run_arguments_reject_what_a_language_model_lacks(tmp_path):
    data = _corpus(tmp_path)
    with pytest.raises(ValueError, match="val_accuracy"):
        train("char_lm", data, tmp_path / "a", monitor="val_accuracy", verbose=0)
    with pytest.raises(ValueError, match="pretrain_epochs=1"):
        train("char_lm", data, tmp_path / "b", pretrain_epochs=1, verbose=0)
    with pytest.raises(ValueError, match="bag_of_words"):
        train("char_lm", data, tmp_path / "c", overrides={"bag_of_words": True})
    assert task_for("char_lm").monitors == ("val_loss",)


class _Killed(Exception):
    pass


class _KillAtSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise _Killed


def test_train_scores_resumes_and_finishes_a_char_lm(tmp_path, monkeypatch):
    data = _corpus(tmp_path)
    out = tmp_path / "run"
    options = dict(epochs=2, batch_size=8, overrides=TINY, verbose=0, patience=5)
    options["learning_rate"] = 0.02
    # Killed as the second epoch begins: the first one's backup is on disk.
    with monkeypatch.context() as patch:
        patch.setattr(fitting, "tensorboard", lambda *_: [_KillAtSecondEpoch()])
        with pytest.raises(_Killed):
            train("char_lm", data, out, **options)
    vocabulary = (out / "vocabulary.txt").read_text(encoding="utf-8")
    assert "\\n" in vocabulary.split("\n")  # the newline inside paragraphs
    metrics = train("char_lm", data, out, **options)
    assert metrics["epochs_run"] == 2 and metrics["history"]["epoch"] == [1, 2]
    assert (out / "vocabulary.txt").read_text(encoding="utf-8") == vocabulary
    test = load_text_documents(data, "test")
    model = keras.saving.load_model(out / "model.keras")
    assert "\n" in model.vocabulary.characters and model.max_characters == 40
    bits = model.bits_per_character(test.texts)
    assert metrics["test"]["bits_per_character"] == pytest.approx(bits, abs=1e-6)
    assert metrics["test"]["characters"] == sum(len(t) for t in test.texts)
    # Learned something: below a uniform guess over the characters seen.
    assert bits < math.log2(len(model.vocabulary.characters))
    assert json.loads((out / "metrics.json").read_text())["test"] == metrics["test"]
    assert train("char_lm", data, out, **options) == metrics  # finished: read back


def test_a_bfloat16_run_trains_and_saves_a_float32_model(tmp_path):
    data = _corpus(tmp_path)
    out = tmp_path / "run"
    options = dict(epochs=2, batch_size=8, overrides=TINY, verbose=0, patience=5)
    metrics = train(
        "char_lm", data, out, learning_rate=0.02, dtype_policy="mixed_bfloat16",
        **options,
    )  # fmt: skip
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored
    assert json.loads((out / "run.json").read_text())["dtype_policy"] == (
        "mixed_bfloat16"
    )
    model = keras.saving.load_model(out / "model.keras")
    layers = [model, model.embedding, *model.recurrent, model.head]
    assert {layer.dtype_policy.name for layer in layers} == {"float32"}
    bits = model.bits_per_character(load_text_documents(data, "test").texts)
    assert bits < math.log2(len(model.vocabulary.characters))
    # Scored in bfloat16 by the run and in float32 here: close, not equal.
    assert metrics["test"]["bits_per_character"] == pytest.approx(bits, abs=0.05)


def test_imdb_reviews_as_plain_text(shared_data):
    from recurrent_zoo.data import load_imdb, load_imdb_unlabeled

    train_part = load_text_documents(shared_data, "train", max_documents=6)
    assert train_part.texts == load_imdb_unlabeled(shared_data, max_texts=6)
    test = load_text_documents(shared_data, "test", max_documents=5, seed=3)
    labeled = load_imdb(shared_data, "test", max_per_class=3, seed=3).texts
    assert test.texts == labeled[:5]
    assert not any("<br" in text for text in train_part.texts + test.texts)
    task = task_for("char_lm")
    assert task.corpus == "text"
    via_imdb = task.load_split("imdb", shared_data, "test", max_per_class=5, seed=3)
    assert via_imdb.texts == test.texts


@pytest.mark.slow
def test_imdb_train_split_is_unsup_then_labeled_reviews(shared_data):
    from recurrent_zoo.data import load_imdb

    train_part = load_text_documents(shared_data, "train", max_documents=50_004)
    assert len(train_part) == 50_004
    labeled = load_imdb(shared_data, "train", max_per_class=2).texts
    assert train_part.texts[50_000:] == labeled
