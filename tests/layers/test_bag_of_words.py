"""TfIdfBagOfWords against scikit-learn's TfidfVectorizer."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_config_round_trip, check_export_without_package
from sklearn.feature_extraction.text import TfidfVectorizer

from recurrent_zoo.layers.bag_of_words import TfIdfBagOfWords

TEXTS = [
    "the cat sat on the mat the end",
    "a dog and a cat",
    "rare words like zyzzyva stay unknown",
    "",
    "mat mat mat mat dog",
]


def _vectorized(max_tokens=7):
    vectorizer = keras.layers.TextVectorization(max_tokens, standardize=None)
    vectorizer.adapt(TEXTS)
    return vectorizer, vectorizer(TEXTS).numpy()


def _adapted(ids, vocabulary_size):
    bag = TfIdfBagOfWords(vocabulary_size)
    bag.adapt(ids)
    return bag


def test_matches_scikit_learn_sublinear_tfidf():
    vectorizer, ids = _vectorized()
    vocabulary = vectorizer.get_vocabulary()
    assert "zyzzyva" not in vocabulary  # words seen once are out of vocabulary
    bag = _adapted(ids, len(vocabulary))
    # scikit-learn, given the same word list, ignores the unknown words too.
    reference = TfidfVectorizer(
        vocabulary=vocabulary[2:], sublinear_tf=True, token_pattern=r"\S+"
    )
    expected = reference.fit_transform(TEXTS).toarray()
    got = bag(ids).numpy()
    np.testing.assert_array_equal(got[:, :2], 0.0)
    np.testing.assert_allclose(got[:, 2:], expected, atol=1e-6)
    np.testing.assert_allclose(bag.idf.numpy()[2:], reference.idf_, rtol=1e-6)
    assert np.all(got[3] == 0.0)  # the empty text: zeros, not NaN


def test_padding_and_unknown_ids_change_nothing():
    _, ids = _vectorized()
    bag = _adapted(ids, 7)
    padded = np.concatenate([ids, np.zeros_like(ids), np.ones_like(ids)], axis=1)
    np.testing.assert_allclose(bag(padded).numpy(), bag(ids).numpy(), atol=1e-7)


def test_adapt_from_a_dataset_of_batches_equals_an_array():
    _, ids = _vectorized()
    from_array = _adapted(ids, 7)
    from_dataset = _adapted(tf.data.Dataset.from_tensor_slices(ids).batch(2), 7)
    np.testing.assert_allclose(from_dataset.idf.numpy(), from_array.idf.numpy())


def test_idf_is_one_before_adapt_and_not_trainable():
    bag = TfIdfBagOfWords(5)
    out = bag(np.array([[2, 2, 3]])).numpy()
    # tf = (1 + log 2, 1): normalized, with every idf 1.
    tf_ = np.array([1 + np.log(2.0), 1.0])
    np.testing.assert_allclose(out[0, 2:4], tf_ / np.linalg.norm(tf_), rtol=1e-6)
    assert bag.trainable_weights == [] and len(bag.non_trainable_weights) == 1


@pytest.mark.parametrize("size, quoted", [(0, "0"), (2, "2"), ("9", "'9'")])
def test_rejects_bad_vocabulary_size(size, quoted):
    with pytest.raises(ValueError, match=quoted):
        TfIdfBagOfWords(size)


def test_adapt_rejects_out_of_range_ids_and_no_texts():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        TfIdfBagOfWords(4).adapt(np.array([[2, 7]]))
    with pytest.raises(ValueError, match="at least one text"):
        TfIdfBagOfWords(4).adapt([])


def test_config_saving_and_export_keep_the_idf(tmp_path):
    _, ids = _vectorized()
    check_config_round_trip(TfIdfBagOfWords(7, name="bag"))
    inputs = keras.Input((None,), dtype="int32")
    bag = TfIdfBagOfWords(7)
    model = keras.Model(inputs, bag(inputs))
    bag.adapt(ids)
    path = tmp_path / "bag.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(ids).numpy(), model(ids).numpy())
    check_export_without_package(model, [ids.astype("int32")], tmp_path)
