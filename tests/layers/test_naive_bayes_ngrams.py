"""NaiveBayesNgrams against an n-gram list built in Python and an NBSVM fitted
here with NumPy and scikit-learn."""

import keras
import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf
from layer_checks import check_config_round_trip, check_export_without_package
from sklearn.linear_model import LogisticRegression

from recurrent_zoo.layers import NaiveBayesNgrams
from recurrent_zoo.layers.naive_bayes_ngrams import C_GRID

BUCKETS = 4096
TEXTS = [
    "A great, great film!",
    "dull plot<br />and a dull cast",
    "",
    "great cast",
    "Plot? What plot...",
]
POSITIVE = ["a great film", "great cast and a moving plot", "moving and great"]
NEGATIVE = ["a dull film", "dull cast and a tired plot", "tired and dull"]


def _python_features(texts, buckets=BUCKETS):
    """Binary rows from tokens split and paired here, hashed one gram at a time."""
    rows = []
    for text in texts:
        words = text.lower().replace("<br />", " ")
        words = "".join(c if c.isalnum() or c.isspace() else " " for c in words)
        tokens = words.split()
        grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
        hashed = tf.strings.to_hash_bucket_fast(grams, buckets).numpy() if grams else []
        row = np.zeros(buckets, np.float32)
        row[np.asarray(hashed, dtype=np.int64)] = 1.0
        rows.append(row)
    return np.stack(rows)


def _nbsvm(x, positive, c, alpha=1.0, min_count=2):
    """NB log-count ratios and a logistic regression on the scaled features;
    buckets in fewer than `min_count` texts scaled to zero."""
    p = alpha + x[positive].sum(axis=0)
    q = alpha + x[~positive].sum(axis=0)
    ratio = np.log(p / p.sum()) - np.log(q / q.sum())
    ratio[(x > 0).sum(axis=0) < min_count] = 0.0
    regression = LogisticRegression(
        C=c, solver="liblinear", dual=True, max_iter=2000, random_state=0
    ).fit(scipy.sparse.csr_matrix(x * ratio), positive)
    return ratio * regression.coef_[0], regression.intercept_[0]


def test_grams_are_the_words_and_word_pairs_each_counted_once():
    layer = NaiveBayesNgrams(BUCKETS)
    got = layer.features(TEXTS).toarray()
    np.testing.assert_array_equal(got, _python_features(TEXTS))
    assert got[2].sum() == 0  # the empty text has no gram
    # a, great, film, "a great", "great great", "great film": "great" is
    # there twice but counts once.
    assert got[0].sum() == 6


def test_logits_are_the_kernel_summed_over_present_grams():
    layer = NaiveBayesNgrams(BUCKETS, classes=3)
    layer.build()
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(BUCKETS, 3)).astype("float32")
    layer.kernel.assign(kernel)
    layer.bias.assign([0.5, -1.0, 2.0])
    expected = _python_features(TEXTS) @ kernel + [0.5, -1.0, 2.0]
    np.testing.assert_allclose(layer(tf.constant(TEXTS)).numpy(), expected, atol=1e-4)


def test_two_class_adapt_is_nbsvm():
    texts, labels = POSITIVE + NEGATIVE, np.array([1, 1, 1, 0, 0, 0])
    layer = NaiveBayesNgrams(BUCKETS)
    layer.adapt(texts, labels)
    # Too few texts to hold a tenth out: the middle of the grid.
    assert layer.chosen_c == C_GRID[len(C_GRID) // 2]
    x = _python_features(texts)
    kernel, bias = _nbsvm(x, labels == 1, layer.chosen_c)
    np.testing.assert_allclose(layer.kernel.numpy()[:, 0], kernel, atol=1e-5)
    np.testing.assert_allclose(layer.bias.numpy(), [bias], atol=1e-5)
    # "moving plot" is in one text: no weight; "moving" is in two.
    seen_once = tf.strings.to_hash_bucket_fast(["moving plot"], BUCKETS).numpy()[0]
    seen_twice = tf.strings.to_hash_bucket_fast(["moving"], BUCKETS).numpy()[0]
    assert x[:, seen_once].sum() == 1 and x[:, seen_twice].sum() == 2
    assert layer.kernel.numpy()[seen_once, 0] == 0.0
    assert layer.kernel.numpy()[seen_twice, 0] > 0.0
    logits = layer(tf.constant(["great moving film", "tired dull film"])).numpy()
    assert logits[0, 0] > 0 > logits[1, 0]
    assert layer.trainable_weights == []


def test_more_classes_are_one_against_the_rest():
    texts = POSITIVE + NEGATIVE + ["the sea", "a calm sea", "sea and sky"]
    labels = np.repeat([0, 1, 2], 3)
    layer = NaiveBayesNgrams(BUCKETS, classes=3, alpha=0.5, min_count=1)
    layer.adapt(texts, labels)
    x = _python_features(texts)
    for k in range(3):
        kernel, bias = _nbsvm(x, labels == k, layer.chosen_c, alpha=0.5, min_count=1)
        np.testing.assert_allclose(layer.kernel.numpy()[:, k], kernel, atol=1e-5)
        np.testing.assert_allclose(layer.bias.numpy()[k], bias, atol=1e-5)
    logits = layer(tf.constant(["calm sky", "great film", "dull film"])).numpy()
    assert logits.argmax(axis=1).tolist() == [2, 0, 1]


def test_c_is_chosen_on_a_held_out_tenth_when_there_is_enough_text():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(words, 8)) for _ in range(120)]
    # The label follows one word, plus noise: a simple, learnable signal.
    labels = np.array([("w3" in t) != (rng.random() < 0.1) for t in texts], int)
    layer = NaiveBayesNgrams(BUCKETS)
    layer.adapt(texts, labels, seed=1)
    assert layer.chosen_c in C_GRID
    # Refitted on all texts at the chosen C.
    kernel, _ = _nbsvm(_python_features(texts), labels == 1, layer.chosen_c)
    np.testing.assert_allclose(layer.kernel.numpy()[:, 0], kernel, atol=1e-5)


def test_hostile_texts_give_finite_logits():
    layer = NaiveBayesNgrams(BUCKETS)
    layer.adapt(POSITIVE + NEGATIVE, [1, 1, 1, 0, 0, 0])
    texts = tf.constant([b"\xff\xfe bad bytes", b"", b"great " * 200_000, b"\x00"])
    logits = layer(texts).numpy()
    assert np.isfinite(logits).all() and logits.shape == (4, 1)
    np.testing.assert_allclose(logits[1], layer.bias.numpy())  # no gram: bias


@pytest.mark.parametrize(
    "kwargs, quoted",
    [
        ({"buckets": 0}, "0"),
        ({"classes": 1}, "classes=1"),
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"alpha": float("nan")}, "alpha=nan"),
        ({"min_count": 0}, "min_count=0"),
    ],
)
def test_rejects_bad_arguments(kwargs, quoted):
    with pytest.raises(ValueError, match=quoted):
        NaiveBayesNgrams(**kwargs)


def test_adapt_rejects_bad_labels():
    layer = NaiveBayesNgrams(BUCKETS)
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        layer.adapt(["a", "b"], [1])
    with pytest.raises(ValueError, match=r"\[0, 2\), got 0..2"):
        layer.adapt(["a", "b"], [0, 2])


def test_config_saving_and_export_keep_the_fit(tmp_path):
    check_config_round_trip(
        NaiveBayesNgrams(64, classes=3, alpha=0.5, min_count=3, name="nb")
    )
    text = keras.Input((), dtype="string")
    layer = NaiveBayesNgrams(BUCKETS)
    model = keras.Model(text, layer(text))
    layer.adapt(POSITIVE + NEGATIVE, [1, 1, 1, 0, 0, 0])
    path = tmp_path / "nb.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    inputs = tf.constant(TEXTS)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    check_export_without_package(
        model, [np.asarray([t.encode() for t in TEXTS])], tmp_path, atol=1e-5
    )
