"""TextClassifier: wiring, numbers, saving and the registry."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.feature_extraction.text import TfidfVectorizer
from tiny_models import TEXTS, TINY

from recurrent_zoo.data import load_imdb
from recurrent_zoo.layers import NaiveBayesNgrams
from recurrent_zoo.models import CELLS, TextClassifier, get, list_models
from recurrent_zoo.models.standardize import standardize_text


def tiny(class_names=("neg", "pos"), **kwargs):
    model = TextClassifier(class_names, **{**TINY, **kwargs})
    model.adapt(TEXTS)
    return model


@pytest.fixture(scope="module")
def reviews(shared_data):
    return load_imdb(shared_data, "train", max_per_class=40, seed=0)


@pytest.mark.parametrize(
    "kwargs, quoted",
    [
        ({"class_names": ["only"]}, "'only'"),
        ({"class_names": ["a", "a"]}, "'a', 'a'"),
        ({"units": ()}, "()"),
        ({"units": 16}, "16"),
        ({"units": (8, 0)}, "0"),
        ({"cell": "transformer"}, "'transformer'"),
        ({"dropout": 1.5}, "1.5"),
        ({"embedding_dim": -2}, "-2"),
        ({"bigram_buckets": -1}, "-1"),
        ({"bag_of_words": "yes"}, "'yes'"),
        ({"naive_bayes_buckets": -4}, "-4"),
        ({"naive_bayes_buckets": 2.5}, "2.5"),
        ({"naive_bayes_buckets": 64, "bag_of_words": True}, "choose one"),
        ({"wide_weight": 1.5}, "1.5"),
        ({"wide_weight": -0.1}, "-0.1"),
        ({"wide_weight": "0.5"}, "'0.5'"),
        ({"wide_weight": True}, "True"),
    ],
)
def test_rejects_bad_arguments(kwargs, quoted):
    args = {"class_names": ("neg", "pos"), **TINY, **kwargs}
    with pytest.raises(ValueError) as err:
        TextClassifier(**args)
    assert quoted in str(err.value)


def test_binary_probabilities_are_sigmoid_of_head():
    model = tiny()
    p = model.predict_proba(TEXTS)
    raw = model.predict(np.asarray(TEXTS, dtype=object), verbose=0)
    assert p.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(p[:, 1], raw[:, 0], atol=1e-7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert model.predict_labels(["great"])[0] in ("neg", "pos")


def test_multiclass_probabilities_sum_to_one():
    model = tiny(class_names=["a", "b", "c"], units=(4, 3))
    p = model.predict_proba(TEXTS)
    assert p.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert model.predict_proba([]).shape == (0, 3)


# Every cell with and without bigrams; by default each cell once, the two
# settings alternating (the rest under -m slow: each case builds a model).
@pytest.mark.parametrize(
    "cell, bigram_buckets",
    [
        pytest.param(cell, buckets, marks=[pytest.mark.slow] if (i + j) % 2 else [])
        for i, cell in enumerate(CELLS)
        for j, buckets in enumerate([0, 50])
    ],
)
def test_padding_never_changes_a_prediction(cell, bigram_buckets):
    # A text's probability must not depend on the batch it shares: batched
    # with a long text it is padded (then trimmed less), alone it is not.
    model = tiny(cell=cell, bigram_buckets=bigram_buckets)
    short, long = "great acting", " ".join(["a good film"] * 8)
    alone = model.predict_proba([short])
    batched = model.predict_proba([short, long])[:1]
    np.testing.assert_allclose(alone, batched, atol=1e-6)


def test_padding_never_changes_a_wide_and_deep_prediction():
    model = tiny(class_names=["a", "b", "c"], bag_of_words=True)
    rng = np.random.default_rng(0)
    model.get_layer("wide_logits").set_weights(
        [rng.normal(size=(300, 3)), rng.normal(size=3)]
    )
    short, long = "great acting", " ".join(["a good film"] * 8)
    np.testing.assert_allclose(
        model.predict_proba([short]), model.predict_proba([short, long])[:1], atol=1e-6
    )


@pytest.mark.parametrize("wide_weight", [0.8, 0.3])
def test_wide_and_deep_output_mixes_a_linear_tfidf_classifier(wide_weight):
    model = tiny(
        class_names=["a", "b", "c"], bag_of_words=True, wide_weight=wide_weight
    )
    # With the deep part's logits zeroed it says 1/3 for each class, and the
    # wide part is softmax(10 U tfidf + c): a linear model over scikit-learn's
    # TF-IDF of the standardized words.
    deep = model.get_layer("deep_logits")
    deep.set_weights([np.zeros_like(w) for w in deep.get_weights()])
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(size=(300, 3)), rng.normal(size=3)
    model.get_layer("wide_logits").set_weights([kernel, bias])
    words = [t.decode() for t in standardize_text(np.array(TEXTS)).numpy()]
    vocabulary = model.vectorizer.get_vocabulary()
    tfidf = TfidfVectorizer(
        vocabulary=vocabulary[2:], sublinear_tf=True, token_pattern=r"\S+"
    ).fit_transform(words)
    logits = 10.0 * (tfidf @ kernel[2 : len(vocabulary)]) + bias  # x10: see model
    wide = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = (1 - wide_weight) / 3 + wide_weight * wide
    np.testing.assert_allclose(model.predict_proba(TEXTS), expected, atol=1e-5)


@pytest.mark.parametrize("class_names", [("neg", "pos"), ("a", "b", "c")])
def test_nbsvm_part_is_fitted_by_adapt_and_mixed_into_the_output(class_names):
    model = TextClassifier(
        class_names, **TINY, naive_bayes_buckets=1024, wide_weight=0.3
    )
    with pytest.raises(ValueError, match="adapt\\(texts, labels=labels\\)"):
        model.adapt(TEXTS)
    labels = np.arange(len(TEXTS)) % len(class_names)
    model.adapt(TEXTS, labels=labels)
    # The layer on its own, fitted to the same texts, is the wide part.
    alone = NaiveBayesNgrams(1024, len(class_names))
    alone.adapt(TEXTS, labels)
    logits = alone(tf.constant(TEXTS)).numpy()
    deep = model.get_layer("deep_logits")
    deep.set_weights([np.zeros_like(w) for w in deep.get_weights()])
    if len(class_names) == 2:
        wide = 1 / (1 + np.exp(-logits[:, 0]))
        expected = np.stack([1 - wide, wide], axis=1)
    else:
        wide = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        expected = wide
    uniform = 1 / len(class_names)
    expected = 0.7 * uniform + 0.3 * expected
    np.testing.assert_allclose(model.predict_proba(TEXTS), expected, atol=1e-5)
    # Fitted, not trained: fit leaves it as adapt set it.
    before = model.get_layer("naive_bayes").kernel.numpy()
    model.compile()
    x = np.asarray(TEXTS, dtype=object)
    model.fit(x, labels, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(model.get_layer("naive_bayes").kernel, before)


@pytest.mark.parametrize("class_names", [("neg", "pos"), ("a", "b", "c")])
def test_wide_and_deep_trains_each_part_on_its_own_loss(class_names):
    model = tiny(class_names, bag_of_words=True, dropout=0.0, embedding_dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"])
    texts = np.array(TEXTS, dtype=object)
    labels = np.arange(len(TEXTS)) % len(class_names)
    # Oracle: each part as a model of its own, its own Keras loss, summed.
    binary = len(class_names) == 2
    loss = (
        keras.losses.BinaryCrossentropy()
        if binary
        else keras.losses.SparseCategoricalCrossentropy()
    )
    targets = labels[:, None].astype("float32") if binary else labels
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        total = sum(
            loss(
                targets,
                keras.Model(model.inputs[0], model.get_layer(name).output)(texts),
            )
            for name in ("deep_probabilities", "wide_probabilities")
        )
    gradients = [
        tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, variables)
    ]
    expected = [v.numpy() - 0.5 * g for v, g in zip(variables, gradients, strict=True)]
    before = model.predict_proba(texts)

    history = model.fit(texts, labels, batch_size=len(texts), shuffle=False, verbose=0)

    assert all(np.abs(g).max() > 0 for g in gradients)  # both parts learn
    # rtol: the oracle's tape runs the inference loop, which scales h U
    # after its matmul where training scales h before it (float32 rounding).
    for variable, value in zip(variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-6)
    # What `fit` reports is the output's loss and accuracy, as for validation.
    output_loss = -np.mean(np.log(before[np.arange(len(texts)), labels]))
    assert history.history["loss"][0] == pytest.approx(output_loss, rel=1e-5)
    accuracy = np.mean(before.argmax(axis=1) == labels)
    assert history.history["accuracy"][0] == pytest.approx(accuracy)


def test_adapt_keeps_a_given_vocabulary_and_sets_the_idf():
    model = TextClassifier(
        ("neg", "pos"), **TINY, vocabulary=["good", "bad"], bag_of_words=True
    )
    model.adapt(["good good film", "bad", "good"])
    assert model.vectorizer.get_vocabulary() == ["", "[UNK]", "good", "bad"]
    idf = model.get_layer("bag_of_words").idf.numpy()
    # Three texts: "good" is in two, "bad" in one (smooth IDF).
    np.testing.assert_allclose(idf[2:4], np.log(4 / np.array([3, 2])) + 1, rtol=1e-6)


def test_truncates_at_sequence_length():
    model = tiny(sequence_length=5)
    words = "good bad great dull film cast acting"
    # Only the first five words are read: changing the sixth changes nothing.
    np.testing.assert_allclose(
        model.predict_proba([words]),
        model.predict_proba([words.replace("cast", "terrible")]),
        atol=1e-7,
    )


def test_attention_weights_sum_to_one_over_words():
    model = tiny()
    (pairs,) = model.attention(["A good film, unknownword!"])
    assert [w for w, _ in pairs] == ["a", "good", "film", "[UNK]"]
    assert all(isinstance(w, str) for w, _ in pairs)
    np.testing.assert_allclose(sum(a for _, a in pairs), 1.0, atol=1e-5)


def test_config_round_trip_covers_every_argument():
    model = tiny(
        cell="simple_rnn",
        units=(3, 2),
        dropout=0.1,
        bigram_buckets=7,
        bag_of_words=True,
    )
    config = model.get_config()
    clone = TextClassifier.from_config(config)
    assert clone.get_config() == config
    init_args = set(inspect.signature(TextClassifier).parameters)
    # `vocabulary` is saved as an asset, not config.
    assert init_args - {"vocabulary", "kwargs"} <= set(config)


@pytest.mark.parametrize("wide", ["none", "bag_of_words", "naive_bayes"])
def test_keras_file_keeps_vocabulary_weights_and_optimizer(tmp_path, reviews, wide):
    bag_of_words = wide == "bag_of_words"
    buckets = 4096 if wide == "naive_bayes" else 0
    model = get(
        "sentiment", **TINY, bag_of_words=bag_of_words, naive_bayes_buckets=buckets
    )
    model.adapt(reviews.texts, labels=reviews.labels)
    model.compile()
    x = np.asarray(reviews.texts, dtype=object)
    model.fit(x, reviews.labels, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, TextClassifier)
    assert loaded.vectorizer.get_vocabulary() == model.vectorizer.get_vocabulary()
    np.testing.assert_allclose(
        loaded.predict_proba(reviews.texts[:20]),
        model.predict_proba(reviews.texts[:20]),
        atol=1e-6,
    )
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations)
    if bag_of_words:  # the IDF is a weight, adapted, not trained
        idf = loaded.get_layer("bag_of_words").idf.numpy()
        np.testing.assert_array_equal(idf, model.get_layer("bag_of_words").idf)
        assert len(set(idf[2:50].tolist())) > 1
    if buckets:  # fitted by adapt, saved as weights
        kernel = loaded.get_layer("naive_bayes").kernel.numpy()
        np.testing.assert_array_equal(kernel, model.get_layer("naive_bayes").kernel)
        assert np.count_nonzero(kernel) > 100
    loaded.fit(x, reviews.labels, epochs=1, batch_size=16, verbose=0)


def test_fit_learns_real_reviews(reviews):
    model = get("sentiment", **{**TINY, "units": (8,)})
    model.adapt(reviews.texts)
    model.compile(learning_rate=1e-2)
    x = np.asarray(reviews.texts, dtype=object)
    history = model.fit(x, reviews.labels, epochs=4, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] and np.isfinite(losses).all()


def test_vocabulary_argument_replaces_adapt():
    model = TextClassifier(("neg", "pos"), **TINY, vocabulary=["good", "bad"])
    assert model.vectorizer.get_vocabulary() == ["", "[UNK]", "good", "bad"]


def test_registry():
    assert list_models() == ["char_lm", "forecaster", "sentiment", "topic"]
    assert get("topic").num_classes == 20
    model = get("sentiment", units=(5, 6), cell="keras_gru")
    assert model.units == (5, 6) and model.cell == "keras_gru"
    with pytest.raises(ValueError, match="'nope'"):
        get("nope")


@pytest.mark.slow  # a subprocess with two logical CPUs
def test_wide_and_deep_step_is_the_same_on_two_replicas(tmp_path):
    # Its own process: logical devices must be set before TensorFlow starts.
    script = Path(__file__).with_name("wide_and_deep_replicas.py")
    result = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(script), str(result)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(result.read_text())
    mirrored, single = found["mirrored"], found["single"]
    assert (mirrored["replicas"], single["replicas"]) == (2, 1)
    for a, b in zip(mirrored["start"], single["start"], strict=True):
        np.testing.assert_array_equal(a, b)
    # Each replica's loss is a part of the global batch's mean: summed, the
    # step and what it reports are the one-device ones.
    for a, b in zip(mirrored["end"], single["end"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert mirrored["accuracy"] == pytest.approx(single["accuracy"])
    moved = max(
        np.abs(np.subtract(a, b)).max()
        for a, b in zip(single["start"], single["end"], strict=True)
    )
    assert moved > 0.1  # a real step, not a no-op on both sides
