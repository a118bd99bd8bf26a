"""`recurrent_zoo.training.refit`: training again on all training texts."""

import json

import keras
import numpy as np
import pytest
from tiny_models import TINY_TOPIC

from recurrent_zoo import training
from recurrent_zoo.data import TextClassificationData
from recurrent_zoo.data.batching import counted_bucketed_dataset
from recurrent_zoo.distribute import Distribution
from recurrent_zoo.models import TextClassifier
from recurrent_zoo.training import callbacks, tasks, train
from recurrent_zoo.training import refit as refit_module
from recurrent_zoo.training.refit import refit_on_all_texts

WORDS = ["good", "bad", "film", "plot", "great", "awful", "actor", "scene"]


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(n)]
    labels = np.array([int("good" in t or "great" in t) for t in texts])
    return TextClassificationData(texts, labels, ("neg", "pos"))


def _build():
    return TextClassifier(
        class_names=("neg", "pos"),
        vocabulary=WORDS,
        units=(2,),
        embedding_dim=4,
        attention_units=2,
        sequence_length=12,
        bag_of_words=True,
    )


def _refit(out, epochs=2, learning_rate=1e-2, start=None, decay_epochs=None):
    return refit_on_all_texts(
        _build,
        _data(),
        out,
        task=tasks.ClassificationTask("sentiment"),
        epochs=epochs,
        batch_size=8,
        learning_rate=learning_rate,
        decay_epochs=decay_epochs,
        start=start,
        dist=Distribution.create("default", 60.0),
        seed=3,
        verbose=0,
    )


def _weights(model):
    return {v.path: v.numpy() for v in model.weights}


def test_refit_starts_from_the_given_weights_or_the_seeded_initialization(tmp_path):
    # At a vanishing rate the result is the starting point itself.
    keras.utils.set_random_seed(3)
    seeded = _build()
    seeded.adapt(_data().texts)
    path, _ = _refit(tmp_path / "a", epochs=1, learning_rate=1e-12)
    result = keras.saving.load_model(path, compile=False)
    for name, value in _weights(seeded).items():
        np.testing.assert_allclose(_weights(result)[name], value, atol=1e-6)

    other = _build()
    other.adapt(["film plot"])  # another IDF, which refit must replace
    for variable in other.trainable_weights:
        variable.assign(np.full(variable.shape, 0.25, variable.dtype))
    other.save_weights(tmp_path / "start.weights.h5")
    path, _ = _refit(
        tmp_path / "b",
        epochs=1,
        learning_rate=1e-12,
        start=tmp_path / "start.weights.h5",
    )
    result = keras.saving.load_model(path, compile=False)
    for variable in result.trainable_weights:
        np.testing.assert_allclose(variable.numpy(), 0.25, atol=1e-6)
    # The IDF is adapted on the refit's own texts, after the weights are read.
    np.testing.assert_allclose(
        result.get_layer("bag_of_words").idf.numpy(),
        seeded.get_layer("bag_of_words").idf.numpy(),
        rtol=1e-6,
    )


@pytest.mark.slow  # a killed refit and two resumes
@pytest.mark.alone
def test_a_killed_refit_resumes_on_the_first_stage_schedule_then_stays_finished(
    tmp_path, monkeypatch
):
    out = tmp_path / "refit"
    original = callbacks.EpochHistory.on_epoch_end
    begun = []

    def dies_after_the_second_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            # The row is written, the backup of this epoch is not: a kill
            # between the two, so epoch 1 must run again.
            raise KeyboardInterrupt

    monkeypatch.setattr(
        callbacks.EpochHistory, "on_epoch_end", dies_after_the_second_epoch
    )
    with pytest.raises(KeyboardInterrupt):
        _refit(out, epochs=3, decay_epochs=6)
    assert not (out / "refit.json").exists()
    assert (
        json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"]
        == 1
    )
    monkeypatch.setattr(callbacks.EpochHistory, "on_epoch_end", original)
    begin = callbacks.EpochHistory.on_epoch_begin

    def counted(self, epoch, logs=None):
        begun.append(epoch)
        begin(self, epoch, logs)

    monkeypatch.setattr(callbacks.EpochHistory, "on_epoch_begin", counted)
    path, record = _refit(out, epochs=3, decay_epochs=6)
    _, steps = counted_bucketed_dataset(_data().texts, _data().labels, 8, max_length=12)
    model = keras.saving.load_model(path)
    # The backed-up epoch is not repeated; the lost one is, once.
    assert begun == [1, 2]
    assert int(model.optimizer.iterations.numpy()) == 3 * steps
    assert record["epochs"] == 3 and len(record["loss"]) == 3
    # 3 epochs chosen from a 6-epoch budget: the refit stops half-way down
    # the cosine, and the resumed epochs carry on along it. Rates at each
    # epoch's first step, by hand: 1e-2 * (1 + cos(pi * epoch / 6)) / 2.
    np.testing.assert_allclose(
        record["learning_rate"], [1e-2, 9.330127e-3, 7.5e-3], rtol=1e-5
    )
    assert all(np.isfinite(record["loss"]))
    assert not (out / "backup").exists()
    stamp = path.stat().st_mtime_ns
    assert _refit(out, epochs=3, decay_epochs=6)[1] == record
    assert path.stat().st_mtime_ns == stamp


def _idf(ids, vocabulary_size):
    """scikit-learn's smooth IDF, counted by hand from word ids."""
    document_frequency = np.zeros(vocabulary_size)
    for row in ids:
        document_frequency[np.unique(row[row > 1])] += 1
    # Padding (0) and unknown words (1) are never counted: compare words only.
    return (np.log((1 + len(ids)) / (1 + document_frequency)) + 1)[2:]


@pytest.mark.slow  # a whole run: pretraining, fine-tuning, refit
def test_train_with_refit_ships_a_model_trained_on_every_training_text(
    shared_data, tmp_path, monkeypatch
):
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return refit_on_all_texts(*args, **kwargs)

    monkeypatch.setattr(refit_module, "refit_on_all_texts", spy)
    out = tmp_path / "run"
    kwargs = dict(
        corpus="20newsgroups",
        epochs=2,
        patience=5,
        max_per_class=4,
        test_max_per_class=1,
        pretrain_epochs=1,
        refit=True,
        overrides=TINY_TOPIC,
        verbose=0,
    )
    metrics = train("topic", shared_data, out, **kwargs)
    examples = metrics["examples"]
    refitted = metrics["refit"]
    assert refitted["examples"] == examples["train"] + examples["validation"] == 80
    assert refitted["epochs"] == metrics["best_epoch"] == calls[0]["epochs"]
    assert calls[0]["start"] == out / "pretrained.weights.h5"
    assert calls[0]["decay_epochs"] == kwargs["epochs"]  # the first stage's budget
    assert json.loads((out / "run.json").read_text())["refit"] is True

    shipped = keras.saving.load_model(out / "model.keras")
    chosen = keras.saving.load_model(out / "best.keras")
    full = tasks.load_split("20newsgroups", shared_data, "train", 4, 0, ())
    ids = shipped.vectorizer(full.texts).numpy()[:, :20]
    np.testing.assert_allclose(
        shipped.get_layer("bag_of_words").idf.numpy()[2:], _idf(ids, 300), rtol=1e-5
    )
    # The first stage's model saw only the training part.
    assert not np.allclose(
        chosen.get_layer("bag_of_words").idf.numpy()[2:], _idf(ids, 300), rtol=1e-5
    )
    _, steps = counted_bucketed_dataset(full.texts, full.labels, 64, max_length=20)
    assert int(shipped.optimizer.iterations.numpy()) == refitted["epochs"] * steps
    # The test score is the shipped model's, and a rerun only returns it.
    scored = training.evaluate(
        out / "model.keras", shared_data, corpus="20newsgroups", max_per_class=1
    )
    assert scored["accuracy"] == metrics["test"]["accuracy"]
    assert train("topic", shared_data, out, **kwargs) == metrics
