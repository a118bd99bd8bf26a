"""`EncoderLanguageModel` / `pretrain_encoder`: exact losses, what it trains."""

import json

import keras
import numpy as np
import pytest

from recurrent_zoo.models import EncoderLanguageModel, TextClassifier, pretrain_encoder
from recurrent_zoo.training import train

WORDS = ["the", "film", "was", "good", "bad", "very", "plot", "acting"]


def _classifier(**overrides):
    config = dict(
        class_names=("neg", "pos"),
        vocabulary_size=len(WORDS) + 2,
        sequence_length=12,
        embedding_dim=6,
        units=(5,),
        attention_units=4,
        vocabulary=WORDS,
    )
    return TextClassifier(**{**config, **overrides})


def _softmax_ce(hidden, targets, kernel, bias):
    logits = hidden @ kernel.T + bias
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(targets)), targets]


@pytest.mark.parametrize("cell", ["layer_norm_lstm", "lstm", "keras_gru"])
def test_exact_loss_equals_per_text_reference(cell):
    model = _classifier(cell=cell)
    lm = EncoderLanguageModel(model, num_sampled=3)
    texts = ["the film was very good", "bad plot", "acting"]
    kernel = np.random.default_rng(0).normal(size=(len(WORDS) + 2, 5))
    bias = np.random.default_rng(1).normal(size=len(WORDS) + 2)
    lm.softmax_kernel.assign(kernel.astype("float32"))
    lm.softmax_bias.assign(bias.astype("float32"))
    table = model.get_layer("embedding").embeddings.numpy()
    encoder = model.get_layer("bidirectional_0")

    # Reference: each text alone, unpadded, every (state, next word) pair in
    # both directions; "acting" alone has none.
    losses = []
    for text in texts:
        ids = np.array([WORDS.index(w) + 2 for w in text.split()])
        for layer, order in (
            (encoder.forward_layer, ids),
            (encoder.backward_layer, ids[::-1]),
        ):
            hidden = np.asarray(layer(table[order][None]))[0]
            losses.extend(_softmax_ce(hidden[:-1], order[1:], kernel, bias))
    expected = np.mean(losses)
    assert len(losses) == 2 * (4 + 1)
    got = float(lm(np.array(texts, dtype=object)))
    assert got == pytest.approx(expected, rel=1e-5)
    # Validation reports the same exact loss, weighted per word.
    lm.compile(optimizer="adam")
    assert lm.evaluate(np.array(texts, dtype=object), verbose=0) == pytest.approx(
        expected, rel=1e-5
    )


def test_pretraining_learns_word_order_and_touches_only_the_encoder():
    # A language with one fixed order: next and previous words are certain,
    # so a working model must get far below the uniform ln(V) loss.
    model = _classifier(units=(5, 3), bigram_buckets=16)
    texts = ["the film was very good bad plot acting"] * 64
    before = {w.path: w.numpy() for w in model.weights}
    lm = EncoderLanguageModel(model)
    start = float(lm(np.array(texts[:1], dtype=object)))
    history = pretrain_encoder(
        model,
        texts,
        epochs=40,
        batch_size=16,
        learning_rate=2e-2,
        num_sampled=4,
        validation_texts=texts[:2],
        verbose=0,
    ).history
    assert start > 0.8 * np.log(len(WORDS) + 2)
    assert history["val_loss"][-1] < 0.2 * start
    changed = {p for p, v in before.items() if not np.array_equal(v, _now(model, p))}
    # The classifier's own layers were trained in place, and only these:
    assert any(p.startswith("embedding/") for p in changed)
    assert any("forward_layer_norm_lstm_0" in p for p in changed)
    assert any("backward_layer_norm_lstm_0" in p for p in changed)
    untouched = ("bigram_embedding", "bidirectional_1", "attention", "probabilities")
    assert not [p for p in changed if any(name in p for name in untouched)]


def _now(model, path):
    return next(w.numpy() for w in model.weights if w.path == path)


def test_arguments_are_checked():
    model = _classifier()
    with pytest.raises(ValueError, match="classifier must be a TextClassifier"):
        EncoderLanguageModel(keras.Sequential())
    with pytest.raises(ValueError, match="num_sampled"):
        EncoderLanguageModel(model, num_sampled=0)
    with pytest.raises(ValueError, match="at least one text"):
        pretrain_encoder(model, [])
    with pytest.raises(ValueError, match="epochs"):
        pretrain_encoder(model, ["the film"], epochs=0)
    blank = TextClassifier(("neg", "pos"), vocabulary_size=10, units=(2,))
    with pytest.raises(ValueError, match="adapt the classifier's vocabulary"):
        pretrain_encoder(blank, ["the film"])


@pytest.mark.slow  # two training runs with pretraining
def test_train_pretrains_once_and_a_resume_reuses_it(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    kwargs = dict(
        epochs=1,
        batch_size=8,
        max_per_class=12,
        test_max_per_class=4,
        pretrain_epochs=1,
        overrides={
            "units": (3,),
            "embedding_dim": 4,
            "vocabulary_size": 300,
            "sequence_length": 30,
            "attention_units": 3,
        },
        verbose=1,
    )
    metrics = train("sentiment", shared_data, out, **kwargs)
    record = json.loads((out / "pretraining.json").read_text())
    assert metrics["pretraining"] == record
    train_texts = metrics["examples"]["train"]
    # The training part plus as many `train/unsup` reviews (a sliced run).
    assert record["unlabeled_texts"] == train_texts
    assert record["texts"] == 2 * train_texts
    assert len(record["loss"]) == len(record["val_loss"]) == 1
    assert (out / "pretrained.weights.h5").is_file()
    assert "Pretraining the encoder" in capsys.readouterr().out

    # Interrupted after pretraining, before any epoch: the stage is reused.
    for name in ("metrics.json", "history.csv", "best.keras", "model.keras"):
        (out / name).unlink()
    again = train("sentiment", shared_data, out, **kwargs)
    said = capsys.readouterr().out
    assert "Pretrained encoder read from" in said and "Pretraining" not in said
    assert again["pretraining"] == record
    assert json.loads((out / "run.json").read_text())["pretrain_epochs"] == 1
