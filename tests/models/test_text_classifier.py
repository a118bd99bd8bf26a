"""TextClassifier: wiring, numbers, saving and the registry."""

import inspect

import keras
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from recurrent_zoo.data import load_imdb
from recurrent_zoo.models import CELLS, TextClassifier, get, list_models
from recurrent_zoo.models.standardize import standardize_text

TINY = dict(
    vocabulary_size=300,
    sequence_length=30,
    embedding_dim=8,
    units=(4,),
    attention_units=4,
)
TEXTS = [
    "a good film with a great cast",
    "a bad film, terrible and dull",
    "great acting",
    "dull dull dull",
    "",
]


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
        ({"cell": "gru"}, "'gru'"),
        ({"dropout": 1.5}, "1.5"),
        ({"embedding_dim": -2}, "-2"),
        ({"bigram_buckets": -1}, "-1"),
        ({"bag_of_words": "yes"}, "'yes'"),
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


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bigram_buckets", [0, 50])
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
    model.get_layer("wide_logits").set_weights(
        [np.random.default_rng(0).normal(size=(300, 3))]
    )
    short, long = "great acting", " ".join(["a good film"] * 8)
    np.testing.assert_allclose(
        model.predict_proba([short]), model.predict_proba([short, long])[:1], atol=1e-6
    )


def test_bag_of_words_adds_a_linear_tfidf_model_to_the_logits():
    model = tiny(class_names=["a", "b", "c"], bag_of_words=True)
    # With the deep part's logits zeroed, what is left is softmax(U tfidf):
    # the linear model over scikit-learn's TF-IDF of the standardized words.
    deep = model.get_layer("deep_logits")
    deep.set_weights([np.zeros_like(w) for w in deep.get_weights()])
    wide = np.random.default_rng(1).normal(size=(300, 3))
    model.get_layer("wide_logits").set_weights([wide])
    words = [t.decode() for t in standardize_text(np.array(TEXTS)).numpy()]
    vocabulary = model.vectorizer.get_vocabulary()
    tfidf = TfidfVectorizer(
        vocabulary=vocabulary[2:], sublinear_tf=True, token_pattern=r"\S+"
    ).fit_transform(words)
    logits = 10.0 * (tfidf @ wide[2 : len(vocabulary)])  # the wide input's scale
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(TEXTS), expected, atol=1e-5)


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


@pytest.mark.parametrize("bag_of_words", [False, True])
def test_keras_file_keeps_vocabulary_weights_and_optimizer(
    tmp_path, reviews, bag_of_words
):
    model = get("sentiment", **TINY, bag_of_words=bag_of_words)
    model.adapt(reviews.texts)
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
    assert list_models() == ["sentiment", "topic"]
    assert get("topic").num_classes == 20
    model = get("sentiment", units=(5, 6), cell="keras_gru")
    assert model.units == (5, 6) and model.cell == "keras_gru"
    with pytest.raises(ValueError, match="'nope'"):
        get("nope")
